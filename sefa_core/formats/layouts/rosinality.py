"""rosinality/stylegan2-pytorch checkpoints: ``convert_weight.py`` and ``train.py`` files.

- ``convert_weight.py`` (the widely shared converted official weights): ``{'g_ema', 'latent_avg'}``.
- ``train.py``: ``{'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}``; ``args`` is an
  ``argparse.Namespace`` (allow-listed by ``container``) and there is no ``latent_avg``.
- a bare ``g_ema.state_dict()`` saved on its own (no ``latent_avg`` either).
We always use ``g_ema`` (``g`` holds the non-averaged weights). Without ``latent_avg`` the
truncation centre is the mean mapping output over 4096 seeded z (``build_stylegan2``), as
rosinality's scripts compute it with ``g.mean_latent(4096)``. Size, style_dim, n_mlp and the
channel table are read from the tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout, unwrap_state_dict
from sefa_core.models.base import check_file_tensors, check_weight_values, file_key_names
from sefa_core.models.stylegan2 import StyleGAN2Generator, build_stylegan2, shared_resample_filter

EMA_KEY = "g_ema"
LATENT_AVG_KEY = "latent_avg"  # beside g_ema, not in it
CONST_KEY = "input.input"
SIGNATURE_KEYS = ("style.1.weight", CONST_KEY, "conv1.conv.weight", "to_rgb1.conv.weight")
_CONV_PARTS = {
    "conv.weight": "conv.weight",
    "conv.modulation.weight": "conv.affine.weight",
    "conv.modulation.bias": "conv.affine.bias",
    "noise.weight": "noise_strength",
    "activate.bias": "bias",
    "bias": "bias",
}
_MAPPING = re.compile(r"style\.(\d+)\.(weight|bias)")  # style.0 is PixelNorm: dense layers start at 1
_CONV = re.compile(
    r"(conv1|convs\.(\d+))\.(conv\.weight|conv\.modulation\.(?:weight|bias)|noise\.weight|activate\.bias)"
)
_TO_RGB = re.compile(r"(to_rgb1|to_rgbs\.(\d+))\.(conv\.weight|conv\.modulation\.(?:weight|bias)|bias)")
_NOISE = re.compile(r"noises\.noise_(\d+)")


def _generator_state(content: Any) -> Mapping[str, torch.Tensor] | None:
    """``g_ema`` of a train.py or convert_weight.py file, or the file itself if a bare state dict."""
    return unwrap_state_dict(content, (EMA_KEY,))


def matches(raw: RawCheckpoint) -> bool:
    state = _generator_state(raw.content)
    return state is not None and all(key in state for key in SIGNATURE_KEYS)


def canonical_state(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """rosinality keys and shapes -> ``sefa_core.models.stylegan2`` keys."""
    state: dict[str, torch.Tensor] = {}
    filters: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if match := _MAPPING.fullmatch(key):
            state[f"mapping.layers.{int(match[1]) - 1}.{match[2]}"] = value
        elif key == CONST_KEY:
            state["synthesis.const"] = value[0]  # (1, C, 4, 4) -> (C, 4, 4)
        elif match := _CONV.fullmatch(key):
            row = 0 if match[1] == "conv1" else int(match[2]) + 1
            state[f"synthesis.convs.{row}.{_CONV_PARTS[match[3]]}"] = _squeeze(match[3], value)
        elif match := _TO_RGB.fullmatch(key):
            index = 0 if match[1] == "to_rgb1" else int(match[2]) + 1
            state[f"synthesis.to_rgbs.{index}.{_CONV_PARTS[match[3]]}"] = _squeeze(match[3], value)
        elif match := _NOISE.fullmatch(key):
            state[f"synthesis.convs.{match[1]}.noise_const"] = value[0, 0]  # (1, 1, R, R) -> (R, R)
        elif key.endswith(".kernel"):
            filters[key] = value
        else:
            raise ValueError(f"unexpected tensor '{key}' in {EMA_KEY}: not a rosinality StyleGAN2 generator")
    state["synthesis.resample_filter"] = shared_resample_filter(filters)
    return state


def _squeeze(part: str, value: torch.Tensor) -> torch.Tensor:
    """rosinality's extra singleton axes: conv weights (1, O, I, k, k), biases (1, 3, 1, 1), noise (1,)."""
    if part == "conv.weight":
        return value[0]
    if part == "noise.weight":
        return value.reshape(())
    if part == "bias":
        return value.reshape(-1)
    return value


_FILE_PARTS = {model: file for file, model in _CONV_PARTS.items() if model != "bias"}
_FILE_BIASES = {"convs": "activate.bias", "to_rgbs": "bias"}
_FILE_KEYS = {
    "w_avg": LATENT_AVG_KEY,
    "synthesis.const": CONST_KEY,
    "synthesis.resample_filter": "to_rgbs.0.upsample.kernel",
}


def file_key(model_key: str) -> str:
    """The rosinality key ``canonical_state`` reads ``model_key`` from: errors name what the file holds."""
    match model_key.split("."):
        case ["mapping", "layers", index, part]:
            return f"style.{int(index) + 1}.{part}"  # style.0 is PixelNorm
        case ["synthesis", "convs", row, "noise_const"]:
            return f"noises.noise_{row}"
        case ["synthesis", ("convs" | "to_rgbs") as group, index, *parts]:
            first = "conv1" if group == "convs" else "to_rgb1"  # rosinality's row 0 / ToRGB 0
            name = first if index == "0" else f"{group}.{int(index) - 1}"
            part = ".".join(parts)
            return f"{name}.{_FILE_BIASES[group] if part == 'bias' else _FILE_PARTS[part]}"
    return _FILE_KEYS.get(model_key, model_key)


def build(raw: RawCheckpoint) -> StyleGAN2Generator:
    source = _generator_state(raw.content)
    assert source is not None
    check_file_tensors(source)
    state = canonical_state(source)
    if LATENT_AVG_KEY in raw.content:  # canonical_state refused it inside a bare state dict
        latent_avg = raw.content[LATENT_AVG_KEY]
        check_weight_values(LATENT_AVG_KEY, latent_avg, floating=True)
        state["w_avg"] = latent_avg.reshape(-1)  # (style_dim,), sometimes saved as (1, style_dim)
    with file_key_names(file_key):
        return build_stylegan2(state)


LAYOUTS = (Layout("rosinality .pt", matches, build),)
