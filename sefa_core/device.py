"""Choosing where generators run: ``auto``, ``cpu`` or ``cuda``, with a visible fallback."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceChoice:
    """The device in use, and a notice for the user when it is not the one asked for."""

    device: torch.device
    notice: str = ""


def resolve_device(requested: str = "auto") -> DeviceChoice:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without CUDA falls back with a notice."""
    requested = (requested or "auto").lower()
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not '{requested}'")
    has_cuda = torch.cuda.is_available()
    if requested == "cpu" or (requested == "auto" and not has_cuda):
        return DeviceChoice(torch.device("cpu"))
    if not has_cuda:
        return DeviceChoice(torch.device("cpu"), "CUDA is not available here; running on the CPU")
    return DeviceChoice(torch.device("cuda"))
