"""The ``pytorch-pretrained-biggan`` layout: a ``pytorch_model.bin`` state dict, ``config.json`` beside it.

Sizes come from the tensors; the config supplies only what tensors cannot tell (which blocks upsample,
BatchNorm eps) and is cross-checked against them. Unlike the package, which loads with
``strict=False``, every key must be present and used.

Spectrally normalised layers are stored as ``<m>.weight_orig`` with the power-iteration vectors
``<m>.weight_u`` and ``<m>.weight_v``; the package's eval forward uses ``weight_orig / σ`` with
``σ = u · (W v)`` from the stored vectors as they are (no iteration, no SVD). We fold that into
plain weights here, once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout
from sefa_core.models.base import check_file_tensors
from sefa_core.models.biggan import RGB_CHANNELS, START_SIZE, BigGANGenerator, BlockSpec

CONFIG_NAME = "config.json"
SIGNATURE_KEYS = ("embeddings.weight", "generator.gen_z.weight_orig")
SN_SUFFIXES = ("_orig", "_u", "_v")  # weight -> weight_orig, weight_u, weight_v
_LAYER_INDEX = re.compile(r"generator\.layers\.(\d+)\.")
_OPTIONAL_INT_KEYS = (
    "z_dim",
    "num_classes",
    "channel_width",
    "n_stats",
    "attention_layer_position",
    "output_dim",
)


def matches(raw: RawCheckpoint) -> bool:
    content = raw.content
    return isinstance(content, dict) and all(isinstance(content.get(k), torch.Tensor) for k in SIGNATURE_KEYS)


def _tensor(state: dict[str, Any], key: str, ndim: int, path: Path) -> torch.Tensor:
    """``state[key]`` with ``ndim`` dimensions, or a one-line error naming the key."""
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(path, f"missing key '{key}'")
    if value.ndim != ndim:
        raise CheckpointError(
            path, f"'{key}' should have {ndim} dimensions, found shape {tuple(value.shape)}"
        )
    return value


def read_config(checkpoint: Path) -> dict[str, Any]:
    """``config.json`` beside the weights, with the keys we rely on validated."""
    path = checkpoint.parent / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(checkpoint, f"a pytorch-pretrained-biggan model needs {CONFIG_NAME} beside it")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(path, f"not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(path, "should hold a JSON object")
    layers = config.get("layers")
    if not (
        isinstance(layers, list)
        and layers
        and all(
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], bool)
            and all(type(m) is int and m > 0 for m in entry[1:])
            for entry in layers
        )
    ):
        raise CheckpointError(path, "'layers' should be a list of [up_sample, in_multiple, out_multiple]")
    eps = config.get("eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise CheckpointError(path, f"'eps' should be a positive number, found {eps!r}")
    for key in _OPTIONAL_INT_KEYS:
        if key in config and type(config[key]) is not int:
            raise CheckpointError(path, f"'{key}' should be an integer, found {config[key]!r}")
    return config


def infer_architecture(state: dict[str, Any], config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Constructor arguments of ``BigGANGenerator`` from the tensors, cross-checked with the config."""
    config_path = path.parent / CONFIG_NAME
    z_dim, num_classes = _tensor(state, "embeddings.weight", 2, path).shape
    cond_dim = _tensor(state, "generator.gen_z.weight_orig", 2, path).shape[1]
    if cond_dim != 2 * z_dim:
        raise CheckpointError(path, f"gen_z reads {cond_dim} inputs, expected 2·z_dim = {2 * z_dim}")
    width = _tensor(state, "generator.bn.weight", 1, path).shape[0]
    if width < RGB_CHANNELS:
        raise CheckpointError(path, f"channel width {width} is below 3: conv_to_rgb cannot give RGB")
    n_stats = _tensor(state, "generator.bn.running_means", 2, path).shape[0]
    if n_stats < 2:
        raise CheckpointError(path, f"BatchNorm statistics need at least 2 truncation rows, found {n_stats}")

    indices = sorted({int(m.group(1)) for key in state if (m := _LAYER_INDEX.match(key))})
    if indices != list(range(len(indices))) or not indices:
        raise CheckpointError(path, f"generator.layers indices should run 0..n-1, found {indices}")
    attention = [i for i in indices if f"generator.layers.{i}.gamma" in state]
    if len(attention) > 1:
        raise CheckpointError(path, f"more than one self-attention layer (generator.layers {attention})")
    attention_position = attention[0] if attention else None
    block_indices = [i for i in indices if i != attention_position]
    if attention_position is not None and attention_position >= len(block_indices):
        raise CheckpointError(path, "the self-attention layer should come before a GenBlock")

    layers = config["layers"]
    if len(layers) != len(block_indices):
        raise CheckpointError(
            config_path, f"'layers' lists {len(layers)} blocks, the weights hold {len(block_indices)}"
        )
    blocks = []
    for number, (index, (up_sample, in_multiple, out_multiple)) in enumerate(
        zip(block_indices, layers, strict=True)
    ):
        prefix = f"generator.layers.{index}"
        c_in = _tensor(state, f"{prefix}.conv_0.weight_orig", 4, path).shape[1]
        c_out = _tensor(state, f"{prefix}.conv_3.weight_orig", 4, path).shape[0]
        if (c_in, c_out) != (in_multiple * width, out_multiple * width):
            raise CheckpointError(
                config_path,
                f"layers[{number}] gives {in_multiple * width}->{out_multiple * width} channels "
                f"(channel width {width}), the weights {prefix} have {c_in}->{c_out}",
            )
        if c_out not in (c_in, c_in // 2):
            raise CheckpointError(
                path, f"{prefix} maps {c_in}->{c_out} channels; a GenBlock keeps or halves them"
            )
        blocks.append(BlockSpec(up_sample, c_in, c_out))
    if blocks[-1].out_channels != width:
        raise CheckpointError(
            path, f"the last GenBlock gives {blocks[-1].out_channels} channels, generator.bn has {width}"
        )

    resolution = START_SIZE * 2 ** sum(block.up_sample for block in blocks)
    inferred = {
        "z_dim": z_dim,
        "num_classes": num_classes,
        "channel_width": width,
        "n_stats": n_stats,
        "output_dim": resolution,
    }
    for key, value in inferred.items():
        if key in config and config[key] != value:
            raise CheckpointError(config_path, f"'{key}' is {config[key]} but the weights give {value}")
    if "attention_layer_position" in config:
        position = config["attention_layer_position"]
        expected = position if 0 <= position < len(blocks) else None
        if expected != attention_position:
            found = "none" if attention_position is None else f"before block {attention_position}"
            raise CheckpointError(
                config_path,
                f"'attention_layer_position' is {position} but the weights have attention {found}",
            )
    return {
        "z_dim": z_dim,
        "num_classes": num_classes,
        "blocks": blocks,
        "attention_position": attention_position,
        "n_stats": n_stats,
        "eps": float(config["eps"]),
    }


def spectral_norm_weights(generator: BigGANGenerator) -> set[str]:
    """Weights the reference stores as ``weight_orig/u/v``: every conv and linear inside ``generator``."""
    return {
        f"generator.{name}.weight"
        for name, module in generator.generator.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }


def effective_state_dict(
    state: dict[str, torch.Tensor], generator: BigGANGenerator, path: Path
) -> dict[str, torch.Tensor]:
    """The file's state dict (tensors checked by ``check_file_tensors``) with spectral norm folded in,
    checked key by key against ``generator``."""
    normalised = spectral_norm_weights(generator)
    expected_shapes = {key: tensor.shape for key, tensor in generator.state_dict().items()}
    expected_keys = {
        file_key
        for key in expected_shapes
        for file_key in ([key + suffix for suffix in SN_SUFFIXES] if key in normalised else [key])
    }
    missing = sorted(expected_keys - set(state))
    unexpected = sorted(set(state) - expected_keys)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(path, f"missing key '{missing[0]}'{more}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(path, f"unexpected key '{unexpected[0]}'{more}")

    weights: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes.items():
        if key in normalised:
            weights[key] = _spectral_normalised(state, key, shape, path)
        else:
            tensor = state[key]
            if tensor.shape != shape:
                raise CheckpointError(
                    path, f"'{key}' should have shape {tuple(shape)}, found {tuple(tensor.shape)}"
                )
            weights[key] = tensor.float()
    return weights


def _spectral_normalised(
    state: dict[str, torch.Tensor], key: str, shape: torch.Size, path: Path
) -> torch.Tensor:
    """``weight_orig / (u · (W_mat v))`` with the stored u and v, in float32 as the eval forward does."""
    weight, u, v = (state[key + suffix] for suffix in SN_SUFFIXES)
    out_features = shape[0]
    in_features = shape.numel() // out_features
    for name, tensor, wanted in (
        (key + "_orig", weight, tuple(shape)),
        (key + "_u", u, (out_features,)),
        (key + "_v", v, (in_features,)),
    ):
        if tuple(tensor.shape) != wanted:
            raise CheckpointError(path, f"'{name}' should have shape {wanted}, found {tuple(tensor.shape)}")
    weight, u, v = weight.float(), u.float(), v.float()
    sigma = torch.dot(u, torch.mv(weight.reshape(out_features, -1), v))  # (out, in·kh·kw) @ (in·kh·kw,)
    if not torch.isfinite(sigma) or sigma == 0:
        raise CheckpointError(path, f"'{key}_u' and '{key}_v' give a spectral norm of {sigma.item()}")
    return weight / sigma


def build(raw: RawCheckpoint) -> BigGANGenerator:
    state = raw.content
    check_file_tensors(state)  # as stored: folding spectral norm casts to float and mixes three tensors
    config = read_config(raw.path)
    generator = BigGANGenerator(**infer_architecture(state, config, raw.path))
    generator.load_weights(effective_state_dict(state, generator, raw.path))
    return generator


LAYOUTS = (Layout("pytorch-pretrained-biggan", matches, build),)
