"""genforce ``.pth`` files (the sefa / genforce model zoo): PGGAN, StyleGAN and StyleGAN2.

genforce's converters write ``{'generator': G, 'discriminator': D, 'generator_smooth': G_ema}``
(state dicts); sefa's ``load_generator`` uses ``generator_smooth`` when present, else
``generator``. A bare generator state dict is accepted too. The GAN type is told by the keys;
resolution, z/w sizes, mapping depth and channel widths by the tensor shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout, unwrap_state_dict
from sefa_core.models.base import Generator, check_file_tensors
from sefa_core.models.pggan import INIT_RES, PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator
from sefa_core.models.stylegan2 import LABEL_WEIGHT_KEY

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
    return build_state(state, raw.path)


def build_state(state: StateDict, path: Path, num_classes: int = 0) -> Generator:
    """A genforce generator state dict -> generator; ``num_classes`` > 0 for a conditional PGGAN,
    whose first layer reads z and then the one-hot class (genforce's ``label_size``)."""
    check_file_tensors(state)  # as stored: StyleGAN2's conversion shifts the style biases
    kind = gan_type(state)
    if kind == "stylegan2":
        from sefa_core.formats.layouts.genforce_stylegan2 import build_genforce_stylegan2

        return build_genforce_stylegan2(state)
    context = f"{LAYOUT_NAME} ({kind})"
    if kind == "pggan":
        generator: Generator = _build_pggan(state, path, context, num_classes)
    else:
        generator = _build_stylegan(state, path, context)
    generator.load_weights(state)
    lod = float(state[LOD_KEYS[kind]])
    if lod != 0.0:
        raise CheckpointError(
            path,
            f"{context}: lod is {lod:g}, a progressive-training snapshot below full resolution; "
            "only lod 0 is supported",
        )
    return generator


def _build_pggan(state: StateDict, path: Path, context: str, num_classes: int) -> PGGANGenerator:
    first = _tensor(state, "layer0.weight", path, context)  # (C, z_dim + num_classes, 4, 4)
    z_dim = first.shape[1] - num_classes
    channels = [state[f"output{b}.weight"].shape[1] for b in range(_count(state, r"output(\d+)\.weight"))]
    return PGGANGenerator(z_dim, channels, num_classes=num_classes)


def _build_stylegan(state: StateDict, path: Path, context: str) -> StyleGANGenerator:
    """Sizes from the tensors; a conditional one's ``label_weight`` (num_classes, z_dim) gives its classes."""
    mapping_layers = _count(state, r"mapping\.dense(\d+)\.weight")
    first = _tensor(state, "mapping.dense0.weight", path, context)  # (hidden, z_dim), or 2 * z_dim inputs
    labels = _tensor(state, LABEL_WEIGHT_KEY, path, context) if LABEL_WEIGHT_KEY in state else None
    last = _tensor(state, f"mapping.dense{mapping_layers - 1}.weight", path, context)  # (w_dim, hidden)
    _tensor(state, "synthesis.output0.weight", path, context)
    num_blocks = _count(state, r"synthesis\.output(\d+)\.weight")
    channels = [state[f"synthesis.output{b}.weight"].shape[1] for b in range(num_blocks)]  # (3, C, 1, 1)
    return StyleGANGenerator(
        z_dim=first.shape[1] if labels is None else labels.shape[1],
        w_dim=last.shape[0],
        mapping_hidden=first.shape[0],
        mapping_layers=mapping_layers,
        channels=channels,
        num_classes=0 if labels is None else labels.shape[0],
    )


def _tensor(state: StateDict, key: str, path: Path, context: str) -> torch.Tensor:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(path, f"{context}: missing tensor '{key}'")
    return value


def _count(state: StateDict, pattern: str) -> int:
    """How many consecutive indices 0, 1, ... have a key matching ``pattern`` (one ``(\\d+)`` group)."""
    found = {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}
    count = 0
    while count in found:
        count += 1
    return count


LAYOUTS = (Layout(LAYOUT_NAME, matches, build),)
