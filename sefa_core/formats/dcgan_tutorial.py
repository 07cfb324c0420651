"""The PyTorch-tutorial DCGAN layout: ``main.{i}.weight`` transposed convs with BatchNorm between.

Found as a bare state dict, or under ``netG_state_dict`` (the embedded default model's
``weights.tar``), ``generator`` or ``state_dict``. Channel widths come from the tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from sefa_core.formats import Layout
from sefa_core.formats.container import RawCheckpoint
from sefa_core.models.dcgan import DCGANGenerator

WRAPPER_KEYS = ("netG_state_dict", "netG", "generator", "state_dict")


def _state_dict(content: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(content, dict):
        return None
    for key in WRAPPER_KEYS:
        if isinstance(content.get(key), dict):
            return content[key]
    return content


def matches(raw: RawCheckpoint) -> bool:
    state = _state_dict(raw.content)
    if not state:
        return False
    first = state.get("main.0.weight")
    return isinstance(first, torch.Tensor) and first.ndim == 4 and first.shape[2:] == (4, 4)


def build(raw: RawCheckpoint) -> DCGANGenerator:
    state = _state_dict(raw.content)
    assert state is not None
    conv_keys = sorted(
        (k for k in state if k.startswith("main.") and k.endswith(".weight") and state[k].ndim == 4),
        key=lambda k: int(k.split(".")[1]),
    )
    channels = [state[conv_keys[0]].shape[0]] + [state[k].shape[1] for k in conv_keys]
    generator = DCGANGenerator(channels)
    generator.load_state_dict(state, strict=True)
    return generator


LAYOUT = Layout("PyTorch-tutorial DCGAN", matches, build)
