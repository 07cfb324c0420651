"""The DCGAN family: a PyTorch ``nn.Sequential`` of transposed convs, found by its keys.

Recognised as a bare state dict or under ``netG_state_dict`` (the embedded default model's
``weights.tar``), ``netG``, ``G``, genforce's ``generator_smooth`` / ``generator``, ``state_dict``,
or the ``*_state_dict`` keys training loops use (``WRAPPER_KEYS``);
keys ``{index}.{param}`` under an optional ``module.`` (DataParallel) and Sequential name (``main.``).
The structure comes from the tensors: modules sorted by index, 4-D weights are transposed convs
(with or without bias), modules with running statistics their BatchNorms. Indices need not be
consecutive: Dropout, Identity and activations hold no tensors. A label embedding
(``label_emb.weight``, (classes, width)) makes the model conditional on its own; a one-hot class
input is told apart from z only by the class list the user gives (``RawCheckpoint.classes``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from sefa_core.errors import CheckpointError, InputError
from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.layouts.common import Layout, unwrap_state_dict
from sefa_core.formats.layouts.genforce import GENERATOR_KEYS
from sefa_core.models.base import WeightError, check_file_tensors, file_key_names
from sefa_core.models.dcgan import UP_KERNEL, DCGANGenerator, DCGANSpec, UpConv

WRAPPER_KEYS = (
    "netG_state_dict",
    "netG",
    "G",
    *GENERATOR_KEYS,
    "state_dict",
    "generator_state_dict",  # {"generator_state_dict", "discriminator_state_dict", ...} training loops
    "G_state_dict",
    "model_state_dict",  # the PyTorch "saving a general checkpoint" recipe's key
)
WHAT = "DCGAN-like state dict"  # how refusals name a file this layout recognised
# ``[module.][name.]{index}.{param}``: DataParallel's prefix, then the Sequential's attribute name.
SEQUENTIAL_KEY = re.compile(r"(?P<prefix>(?:module\.)?(?:[A-Za-z_]\w*\.)?)(?P<index>\d+)\.(?P<param>\w+)")
# ``nn.Embedding(classes, width)``, alone or first in a Sequential, beside the generator's Sequential.
EMBEDDING_KEY = re.compile(
    r"(?:module\.)?(?:label_emb|label_embedding|label_embed|embed|emb)(?:\.0)?\.weight"
)
CONV_PARAMS = frozenset({"weight", "bias"})
NORM_STATS = ("running_mean", "running_var")
BATCH_COUNTER = "num_batches_tracked"
NORM_PARAMS = frozenset({"weight", "bias", *NORM_STATS, BATCH_COUNTER})
# z sizes published DCGANs use: powers of two (64, 128, ...) and multiples of 50 (the tutorial's 100).
# Any other input count is most likely z plus a one-hot class, which only the user can split.
ROUND_NZ = 50


@dataclass(frozen=True)
class Sequential:
    """The file's generator Sequential: its key prefix and its modules' tensors by index."""

    prefix: str
    modules: dict[int, dict[str, torch.Tensor]]

    def key(self, index: int, param: str) -> str:
        return f"{self.prefix}{index}.{param}"


def find_sequential(state: Mapping[str, object]) -> Sequential | None:
    """The Sequential holding most of ``state`` whose first module is a square-kernel conv, if any."""
    groups: dict[str, dict[int, dict[str, torch.Tensor]]] = {}
    for key, value in state.items():
        if isinstance(key, str) and (match := SEQUENTIAL_KEY.fullmatch(key)):
            module = groups.setdefault(match["prefix"], {}).setdefault(int(match["index"]), {})
            module[match["param"]] = value
    candidates = []
    for prefix, modules in groups.items():
        first = modules[min(modules)].get("weight")
        is_conv = isinstance(first, torch.Tensor) and first.ndim == 4 and first.shape[2] == first.shape[3]
        size = sum(map(len, modules.values()))
        if is_conv and 2 * size > len(state):
            candidates.append((size, prefix, modules))
    if not candidates:
        return None
    _, prefix, modules = max(candidates, key=lambda candidate: candidate[0])
    return Sequential(prefix, dict(sorted(modules.items())))


def matches(raw: RawCheckpoint) -> bool:
    state = unwrap_state_dict(raw.content, WRAPPER_KEYS)
    return bool(state) and find_sequential(state) is not None


@dataclass(frozen=True)
class Block:
    """One transposed conv of the file and the BatchNorm after it, by their Sequential indices."""

    conv: int
    norm: int | None = None


def read_blocks(sequential: Sequential) -> list[Block]:
    """Sequential modules -> conv blocks, naming the first key that does not fit a DCGAN."""
    blocks: list[Block] = []
    for index, tensors in sequential.modules.items():
        weight = tensors.get("weight")
        if isinstance(weight, torch.Tensor) and weight.ndim == 4:
            odd = sorted(set(tensors) - CONV_PARAMS)
            if odd:
                raise WeightError(
                    sequential.key(index, odd[0]), "unexpected key {key} beside a transposed conv"
                )
            blocks.append(Block(index))
        elif isinstance(weight, torch.Tensor) and weight.ndim != 1:
            raise WeightError(
                sequential.key(index, "weight"),
                f"{{key}} has shape {tuple(weight.shape)}: a layer with a {weight.ndim}-D weight; "
                "a DCGAN holds only transposed convs (4-D) and BatchNorms (1-D)",
            )
        else:
            blocks[-1:] = [_with_norm(sequential, index, tensors, blocks[-1] if blocks else None)]
    return blocks


def _with_norm(
    sequential: Sequential, index: int, tensors: dict[str, torch.Tensor], block: Block | None
) -> Block:
    """``block`` with the BatchNorm at ``index`` after its conv, once that BatchNorm's keys are checked."""
    if "weight" not in tensors and not any(stat in tensors for stat in NORM_STATS):
        raise WeightError(sequential.key(index, "weight"), "missing key {key} beside its bias")
    odd = sorted(set(tensors) - NORM_PARAMS)
    if odd:
        raise WeightError(sequential.key(index, odd[0]), "unexpected key {key} in a BatchNorm layer")
    missing = [param for param in NORM_STATS if param not in tensors]
    if "weight" in tensors or "bias" in tensors:
        missing += [param for param in ("weight", "bias") if param not in tensors]
    if missing:
        raise WeightError(sequential.key(index, missing[0]), "missing key {key} of a BatchNorm layer")
    if block is None or block.norm is not None:
        conv = index - 1  # where every DCGAN keeps the conv a BatchNorm normalises
        if conv not in sequential.modules:
            raise WeightError(
                sequential.key(conv, "weight"), "missing key {key}: a BatchNorm follows no conv"
            )
        raise WeightError(
            sequential.key(index, "running_mean"), "{key}: a BatchNorm follows no transposed conv"
        )
    return Block(block.conv, index)


def read_convs(sequential: Sequential, blocks: list[Block]) -> tuple[UpConv, ...]:
    """The transposed convs the tensors describe, checked to chain into one up-sampling stack."""
    convs: list[UpConv] = []
    for position, block in enumerate(blocks):
        tensors = sequential.modules[block.conv]
        weight = tensors["weight"]
        c_in, c_out, height, width = weight.shape  # ConvTranspose2d: (in, out, kH, kW)
        key = sequential.key(block.conv, "weight")
        if height != width or (position > 0 and height != UP_KERNEL):
            expected = "a square kernel" if position == 0 else f"a {UP_KERNEL}x{UP_KERNEL} kernel"
            raise WeightError(
                key,
                f"{{key}} has shape {tuple(weight.shape)}: a {height}x{width} kernel, expected {expected} "
                "(after the first layer every transposed conv doubles the map with stride 2, padding 1)",
            )
        if position > 0 and c_in != convs[-1].out_channels:
            raise WeightError(
                key,
                f"{{key}} has shape {tuple(weight.shape)}: it takes {c_in} channels, but the layer "
                f"before gives {convs[-1].out_channels}",
            )
        norm = sequential.modules.get(block.norm, {})
        convs.append(UpConv(c_in, c_out, height, "bias" in tensors, block.norm is not None, "weight" in norm))
    if blocks[-1].norm is not None:
        raise WeightError(
            sequential.key(blocks[-1].norm, "running_mean"),
            "{key}: the last layer is a BatchNorm; the image comes from a transposed conv",
        )
    return tuple(convs)


def split_inputs(
    path: Path, convs: tuple[UpConv, ...], embedding: torch.Tensor | None, classes: tuple[str, ...] | None
) -> DCGANSpec:
    """How the first layer's inputs split into z and a class: from the label embedding, else ``classes``."""
    inputs = convs[0].in_channels
    if embedding is not None:
        num_classes, width = embedding.shape
        if classes is not None and len(classes) != num_classes:
            raise CheckpointError(
                path, f"{WHAT}: its label embedding has {num_classes} classes, but {len(classes)} are listed"
            )
        return DCGANSpec(convs, num_classes, width)
    if classes is None and not plausible_nz(inputs):
        raise CheckpointError(
            path,
            f"{WHAT}: the first layer takes {inputs} inputs; if the model is class-conditional, list its "
            "classes in config.yaml (classes: [] if it is not)",
        )
    num_classes = len(classes or ())
    if num_classes >= inputs:
        raise CheckpointError(
            path,
            f"{WHAT}: the first layer takes {inputs} inputs, too few for z and the {num_classes} "
            "classes listed",
        )
    return DCGANSpec(convs, num_classes)


def plausible_nz(size: int) -> bool:
    """Whether ``size`` looks like a z on its own rather than z plus a one-hot class."""
    return size & (size - 1) == 0 or size % ROUND_NZ == 0


def build(raw: RawCheckpoint) -> DCGANGenerator:
    """The DCGAN the file's tensors describe; every refusal says the file is DCGAN-like and why."""
    try:
        return _build(raw)
    except (WeightError, InputError) as error:
        raise CheckpointError(raw.path, f"{WHAT}: {error}") from error


def _build(raw: RawCheckpoint) -> DCGANGenerator:
    """The generator, its weights loaded under the file's key names (errors name the file's keys)."""
    state = unwrap_state_dict(raw.content, WRAPPER_KEYS)
    sequential = find_sequential(state) if state else None
    if sequential is None:
        raise CheckpointError(raw.path, f"{WHAT}: no transposed conv at the start of its Sequential")
    check_file_tensors(state)
    embedding_keys = [key for key in state if isinstance(key, str) and EMBEDDING_KEY.fullmatch(key)]
    used = {
        sequential.key(index, param) for index, tensors in sequential.modules.items() for param in tensors
    }
    unexpected = [key for key in state if key not in used and key not in embedding_keys[:1]]
    if unexpected:
        raise WeightError(
            str(unexpected[0]), "unexpected key {key}: it is not part of the generator's Sequential"
        )
    embedding = state[embedding_keys[0]] if embedding_keys else None
    if embedding is not None and embedding.ndim != 2:
        raise WeightError(
            embedding_keys[0], f"{{key}} has shape {tuple(embedding.shape)}, expected (classes, width)"
        )
    blocks = read_blocks(sequential)
    spec = split_inputs(raw.path, read_convs(sequential, blocks), embedding, raw.classes)
    generator = DCGANGenerator(spec, raw.classes or ())
    file_keys = _file_keys(generator, sequential, blocks, embedding_keys)
    model_state = {key: state[file_key] for key, file_key in file_keys.items() if file_key in state}
    for key, value in generator.state_dict().items():
        if key.endswith(BATCH_COUNTER):  # files from torch < 0.4.1 lack it; eval never reads it
            model_state.setdefault(key, value)
    with file_key_names(lambda key: file_keys.get(key, key)):
        generator.load_weights(model_state)
    return generator


def _file_keys(
    generator: DCGANGenerator, sequential: Sequential, blocks: list[Block], embedding_keys: list[str]
) -> dict[str, str]:
    """Model key -> the file key it is read from, for every tensor the model holds."""
    file_keys: dict[str, str] = {}
    for block, (conv, norm) in zip(blocks, generator.block_indices, strict=True):
        for param in CONV_PARAMS:
            file_keys[f"main.{conv}.{param}"] = sequential.key(block.conv, param)
        if norm is not None and block.norm is not None:
            for param in NORM_PARAMS:
                file_keys[f"main.{norm}.{param}"] = sequential.key(block.norm, param)
    if embedding_keys:
        file_keys["label_emb.weight"] = embedding_keys[0]
    return {key: file_keys.get(key, key) for key in generator.state_dict()}


LAYOUTS = (Layout("PyTorch-tutorial DCGAN", matches, build),)
