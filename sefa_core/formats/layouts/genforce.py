"""genforce ``.pth`` files (the sefa / genforce model zoo): PGGAN, StyleGAN and StyleGAN2.

genforce's converters write ``{'generator': G, 'discriminator': D, 'generator_smooth': G_ema}``
(state dicts); sefa's ``load_generator`` uses ``generator_smooth`` when present, else
``generator``. A bare generator state dict is accepted too. The GAN type is told by the keys;
resolution, z/w sizes, mapping depth and channel widths by the tensor shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout, unwrap_state_dict
from sefa_core.models.base import Generator, check_file_tensors
from sefa_core.models.pggan import INIT_RES, PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator

LAYOUT_NAME = "genforce .pth"
GENERATOR_KEYS = ("generator_smooth", "generator")  # in sefa's order of preference
LOD_KEYS = {"pggan": "lod", "stylegan": "synthesis.lod"}

StateDict = Mapping[str, Any]


def generator_state(content: Any) -> StateDict | None:
    """The generator state dict inside a genforce file, or None if there is no dict at all."""
    return unwrap_state_dict(content, GENERATOR_KEYS)


def gan_type(state: StateDict) -> str | None:
    """The GAN type told by genforce's key names: pggan, stylegan, stylegan2, or None if not genforce."""
    if "mapping.dense0.weight" in state:
        if "synthesis.early_layer.const" in state or "synthesis.layer0.noise_strength" in state:
            return "stylegan2"
        if "synthesis.layer0.apply_noise.weight" in state:
            return "stylegan"
        return None
    first = state.get("layer0.weight")
    is_dense_conv = isinstance(first, torch.Tensor) and first.ndim == 4 and first.shape[2:] == (INIT_RES,) * 2
    return "pggan" if is_dense_conv and "output0.weight" in state else None


def matches(raw: RawCheckpoint) -> bool:
    state = generator_state(raw.content)
    return bool(state) and gan_type(state) is not None


def build(raw: RawCheckpoint) -> Generator:
    state = generator_state(raw.content)
    assert state is not None
    check_file_tensors(state)  # as stored: StyleGAN2's conversion shifts the style biases
    kind = gan_type(state)
    if kind == "stylegan2":
        from sefa_core.formats.layouts.genforce_stylegan2 import build_genforce_stylegan2

        return build_genforce_stylegan2(state)
    context = f"{LAYOUT_NAME} ({kind})"
    generator = _build_pggan(state, raw, context) if kind == "pggan" else _build_stylegan(state, raw, context)
    generator.load_weights(state)
    lod = float(state[LOD_KEYS[kind]])
    if lod != 0.0:
        raise CheckpointError(
            raw.path,
            f"{context}: lod is {lod:g}, a progressive-training snapshot below full resolution; "
            "only lod 0 is supported",
        )
    return generator


def _build_pggan(state: StateDict, raw: RawCheckpoint, context: str) -> PGGANGenerator:
    z_dim = _tensor(state, "layer0.weight", raw, context).shape[1]  # (C, z_dim, 4, 4)
    channels = [state[f"output{b}.weight"].shape[1] for b in range(_count(state, r"output(\d+)\.weight"))]
    return PGGANGenerator(z_dim, channels)


def _build_stylegan(state: StateDict, raw: RawCheckpoint, context: str) -> StyleGANGenerator:
    if "mapping.label_weight" in state:
        raise CheckpointError(
            raw.path, f"{context}: class-conditional StyleGAN (label_weight) is not supported"
        )
    mapping_layers = _count(state, r"mapping\.dense(\d+)\.weight")
    first = _tensor(state, "mapping.dense0.weight", raw, context)  # (hidden, z_dim)
    last = _tensor(state, f"mapping.dense{mapping_layers - 1}.weight", raw, context)  # (w_dim, hidden)
    _tensor(state, "synthesis.output0.weight", raw, context)
    num_blocks = _count(state, r"synthesis\.output(\d+)\.weight")
    channels = [state[f"synthesis.output{b}.weight"].shape[1] for b in range(num_blocks)]  # (3, C, 1, 1)
    return StyleGANGenerator(
        z_dim=first.shape[1],
        w_dim=last.shape[0],
        mapping_hidden=first.shape[0],
        mapping_layers=mapping_layers,
        channels=channels,
    )


def _tensor(state: StateDict, key: str, raw: RawCheckpoint, context: str) -> torch.Tensor:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(raw.path, f"{context}: missing tensor '{key}'")
    return value


def _count(state: StateDict, pattern: str) -> int:
    """How many consecutive indices 0, 1, ... have a key matching ``pattern`` (one ``(\\d+)`` group)."""
    found = {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}
    count = 0
    while count in found:
        count += 1
    return count


LAYOUTS = (Layout(LAYOUT_NAME, matches, build),)
