"""The PyTorch-tutorial DCGAN layout: ``main.{i}.weight`` transposed convs with BatchNorm between.

Found as a bare state dict, or under ``netG_state_dict`` (the embedded default model's
``weights.tar``), genforce's ``generator_smooth`` / ``generator`` (sefa's order) or ``state_dict``.
Channel widths come from the tensors.
"""

from __future__ import annotations

import torch

from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout, unwrap_state_dict
from sefa_core.formats.layouts.genforce import GENERATOR_KEYS
from sefa_core.models.dcgan import DCGANGenerator

WRAPPER_KEYS = ("netG_state_dict", "netG", *GENERATOR_KEYS, "state_dict")


def matches(raw: RawCheckpoint) -> bool:
    state = unwrap_state_dict(raw.content, WRAPPER_KEYS)
    if not state:
        return False
    first = state.get("main.0.weight")
    return isinstance(first, torch.Tensor) and first.ndim == 4 and first.shape[2:] == (4, 4)


def build(raw: RawCheckpoint) -> DCGANGenerator:
    state = unwrap_state_dict(raw.content, WRAPPER_KEYS)
    assert state is not None
    conv_keys = sorted(
        (k for k in state if k.startswith("main.") and k.endswith(".weight") and state[k].ndim == 4),
        key=lambda k: int(k.split(".")[1]),
    )
    channels = [state[conv_keys[0]].shape[0]] + [state[k].shape[1] for k in conv_keys]
    generator = DCGANGenerator(channels)
    generator.load_weights(state)
    return generator


LAYOUTS = (Layout("PyTorch-tutorial DCGAN", matches, build),)
