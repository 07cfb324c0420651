"""genforce's StyleGAN2 state dict (``models/stylegan2_generator.py``, the sefa ``.pth`` files).

``sefa_core.formats.layouts.genforce`` recognises the ``.pth`` container and hands the StyleGAN2 state
dict (``generator_smooth`` when present) to ``build_genforce_stylegan2``. Keys:
``mapping.dense{i}``, ``truncation.w_avg``, ``synthesis.early_layer.const``,
``synthesis.layer{i}`` (the conv reading W+ row i; odd i up-sample), ``synthesis.output{k}``
(ToRGB k) and the FIR copies ``synthesis.layer{i}.filter.kernel`` / ``synthesis.upsample.kernel``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from sefa_core.models.base import file_key_names
from sefa_core.models.stylegan2 import (
    LABEL_WEIGHT_KEY,
    StyleGAN2Generator,
    build_stylegan2,
    shared_resample_filter,
)

STYLE_BIAS_OFFSET = 1.0  # genforce's DenseBlock(additional_bias=1.0): added at run time, not stored
W_AVG_KEY = "truncation.w_avg"  # genforce's converters and trainer always store it
CONST_KEY = "synthesis.early_layer.const"
_CONV_PARTS = {
    "weight": "conv.weight",
    "style.weight": "conv.affine.weight",
    "style.bias": "conv.affine.bias",
    "bias": "bias",
    "noise_strength": "noise_strength",
    "noise": "noise_const",
}
_LAYER = re.compile(r"synthesis\.layer(\d+)\.(weight|bias|noise_strength|noise|style\.weight|style\.bias)")
_OUTPUT = re.compile(r"synthesis\.output(\d+)\.(weight|bias|style\.weight|style\.bias)")
_MAPPING = re.compile(r"mapping\.dense(\d+)\.(weight|bias)")


def canonical_state(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """genforce keys and conventions -> ``sefa_core.models.stylegan2`` keys."""
    state: dict[str, torch.Tensor] = {}
    filters: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if match := _MAPPING.fullmatch(key):
            state[f"mapping.layers.{match[1]}.{match[2]}"] = value
        elif key == W_AVG_KEY:
            state["w_avg"] = value
        elif key == LABEL_WEIGHT_KEY:  # a class-conditional mapping (label_size > 0), same math
            state[key] = value
        elif key == CONST_KEY:
            state["synthesis.const"] = value[0]  # (1, C, 4, 4) -> (C, 4, 4)
        elif match := _LAYER.fullmatch(key):
            row, part = int(match[1]), match[2]
            if part == "weight" and row % 2 == 1:
                value = value.flip(2, 3)  # up-sampling conv: TF orientation -> transposed-conv kernel
            elif part == "style.bias":
                value = value + STYLE_BIAS_OFFSET
            elif part == "noise":
                value = value[0, 0]  # (1, 1, R, R) -> (R, R)
            state[f"synthesis.convs.{row}.{_CONV_PARTS[part]}"] = value
        elif match := _OUTPUT.fullmatch(key):
            part = match[2]
            if part == "style.bias":
                value = value + STYLE_BIAS_OFFSET
            state[f"synthesis.to_rgbs.{match[1]}.{_CONV_PARTS[part]}"] = value
        elif key.endswith(".kernel"):
            filters[key] = value
        else:
            raise ValueError(f"unexpected tensor '{key}': only the 'skip' StyleGAN2 generator is supported")
    state["synthesis.resample_filter"] = shared_resample_filter(filters)
    return state


_FILE_PARTS = {model: file for file, model in _CONV_PARTS.items()}
_FILE_KEYS = {
    "w_avg": W_AVG_KEY,
    "synthesis.const": CONST_KEY,
    "synthesis.resample_filter": "synthesis.upsample.kernel",
}


def file_key(model_key: str) -> str:
    """The genforce key ``canonical_state`` reads ``model_key`` from: errors name what the file holds."""
    match model_key.split("."):
        case ["mapping", "layers", index, part]:
            return f"mapping.dense{index}.{part}"
        case ["synthesis", "convs", row, *part]:
            return f"synthesis.layer{row}.{_FILE_PARTS['.'.join(part)]}"
        case ["synthesis", "to_rgbs", index, *part]:
            return f"synthesis.output{index}.{_FILE_PARTS['.'.join(part)]}"
    return _FILE_KEYS.get(model_key, model_key)


def build_genforce_stylegan2(state_dict: Mapping[str, torch.Tensor]) -> StyleGAN2Generator:
    """A genforce StyleGAN2 state dict (its tensors checked by the caller) -> generator.

    Sizes come from its tensors; errors name keys as genforce spells them.
    """
    if W_AVG_KEY not in state_dict:
        raise ValueError(f"missing key '{W_AVG_KEY}': genforce always stores the truncation centre")
    with file_key_names(file_key):
        return build_stylegan2(canonical_state(state_dict))
