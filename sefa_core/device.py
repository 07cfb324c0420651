"""Choosing where generators run: ``auto``, ``cpu`` or ``cuda``, with a visible fallback."""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
T = TypeVar("T")


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


def render_threads(concurrent_renders: int = 1) -> int:
    """Torch threads for one CPU render when ``concurrent_renders`` run at once: the cores shared out.

    One interactive session gets every core; a Ray sweep with a worker per core gets 1 each. More
    threads than there are free cores only spin against each other.
    """
    return max(1, (os.cpu_count() or 1) // max(1, concurrent_renders))


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
NEVER_TRIM = 2**31 - 1  # bytes: the largest threshold mallopt takes
KEEP_FREED_MEMORY_ENV = "SEFA_KEEP_FREED_MEMORY"  # "0" turns keep_freed_memory off


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse instead of handing it back to the kernel.

    By default glibc maps every allocation over 32 MiB on its own and unmaps it when freed, so each
    forward pass faults its large activations in again: 35-45 thousand page faults an image for a
    256 px StyleGAN2, which made a batch of 8 cost as much per image as one image (BENCHMARKS.md,
    section 8). Kept, a batch of 8 costs 0.85-0.89x. The price is that the process keeps its peak
    memory, so only processes that render in batches call this: the ``sefa`` command and Ray
    workers, not the editor's server. Returns whether it took effect (glibc only; ``"0"`` in
    ``SEFA_KEEP_FREED_MEMORY`` turns it off).
    """
    if os.environ.get(KEEP_FREED_MEMORY_ENV, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded into this process
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tell
        return False
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM), (M_ARENA_MAX, 1))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def run_with_cpu_fallback(generator: torch.nn.Module, work: Callable[[], T]) -> tuple[T, str]:
    """Run ``work``; if CUDA runs out of memory or fails, move ``generator`` to the CPU and retry.

    Returns the result and a notice for the user ("" when nothing happened).
    """
    try:
        return work(), ""
    except RuntimeError as error:  # torch.OutOfMemoryError and torch.AcceleratorError included
        on_cuda = any(p.is_cuda for p in generator.parameters())
        if not on_cuda or not _is_cuda_failure(error):
            raise
        failure = type(error).__name__
    # Out of the except block, so the failed attempt's frames and their GPU tensors are freed first.
    generator.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return work(), f"The GPU failed ({failure}); this model now runs on the CPU"


_CUDA_FAILURE = re.compile(r"cuda|cudnn|out of memory", re.IGNORECASE)  # cuBLAS errors say "CUDA error"


def _is_cuda_failure(error: BaseException) -> bool:
    """Whether ``error`` came from the GPU (memory, driver, kernels, cuDNN) rather than from the work."""
    return isinstance(error, (torch.OutOfMemoryError, torch.AcceleratorError)) or bool(
        _CUDA_FAILURE.search(str(error))
    )
