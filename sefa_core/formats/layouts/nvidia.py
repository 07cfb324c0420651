"""NVIDIA stylegan2-ada-pytorch and stylegan3 networks: a network ``.pkl`` or a bare state dict.

- ``.pkl`` (``{'G', 'D', 'G_ema', ...}``): ``read_checkpoint`` turns every network into a
  ``PersistentObject`` record (``containers.pickles``); we rebuild ``G_ema``'s state dict from it and
  read its constructor kwargs (``conv_clamp``, the mapping learning-rate multiplier).
- a bare ``G_ema.state_dict()`` (``mapping.fc0.weight``, ``synthesis.b4.const``, ...), or one saved
  under ``G_ema``: everything is read from the tensors. Such a file does not record
  ``conv_clamp``; we use NVIDIA train.py's 256, which only bites on activations beyond +-256.
StyleGAN3 state dicts (``synthesis.input.affine.weight``) go to ``sefa_core.models.stylegan3``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from sefa_core.formats.containers import RawCheckpoint
from sefa_core.formats.containers.pickles import PersistentObject
from sefa_core.formats.layouts.common import Layout
from sefa_core.models.base import Generator, check_file_tensors, file_key_names
from sefa_core.models.stylegan2 import (
    INIT_RESOLUTION,
    LABEL_WEIGHT_KEY,
    MAPPING_LR_MULTIPLIER,
    build_stylegan2,
    shared_resample_filter,
)
from sefa_core.models.stylegan3 import W_AVG_KEY, build_stylegan3, nvidia_key

EMA_KEY = "G_ema"
STYLEGAN3_KEY = "synthesis.input.affine.weight"
STYLEGAN2_KEY = "synthesis.b4.const"
MAPPING_KEY = "mapping.fc0.weight"
TRAIN_PY_CONV_CLAMP = 256.0  # stylegan2-ada-pytorch train.py sets conv_clamp=256 for every config
_CONV_PARTS = {
    "weight": "conv.weight",
    "affine.weight": "conv.affine.weight",
    "affine.bias": "conv.affine.bias",
    "bias": "bias",
    "noise_strength": "noise_strength",
    "noise_const": "noise_const",
}
_MAPPING = re.compile(r"mapping\.fc(\d+)\.(weight|bias)")
_EMBED = re.compile(r"mapping\.embed\.(weight|bias)")  # c_dim > 0: the class embedding
_LAYER = re.compile(
    r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(weight|bias|noise_strength|noise_const|affine\.weight|affine\.bias)"
)


def _is_record(value: Any) -> bool:
    return isinstance(value, PersistentObject)


def _bare_state(content: Any) -> Mapping[str, torch.Tensor] | None:
    """The generator's state dict in a bare-state-dict file, or None."""
    if isinstance(content, dict) and isinstance(content.get(EMA_KEY), Mapping):
        content = content[EMA_KEY]
    is_generator = isinstance(content, Mapping) and MAPPING_KEY in content
    if is_generator and (STYLEGAN2_KEY in content or STYLEGAN3_KEY in content):
        return content
    return None


def matches_pickle(raw: RawCheckpoint) -> bool:
    return (
        raw.container == "pickle" and isinstance(raw.content, dict) and _is_record(raw.content.get(EMA_KEY))
    )


def matches_state_dict(raw: RawCheckpoint) -> bool:
    return raw.container != "pickle" and _bare_state(raw.content) is not None


def build_pickle(raw: RawCheckpoint) -> Generator:
    record = raw.content[EMA_KEY]
    return build_network(module_state_dict(record), init_kwargs(record))


def build_state_dict(raw: RawCheckpoint) -> Generator:
    state = _bare_state(raw.content)
    assert state is not None
    return build_network(state, None)


def build_network(state: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any] | None) -> Generator:
    """An NVIDIA ``G_ema`` state dict (+ its constructor kwargs when known) -> generator.

    Errors name keys as NVIDIA spells them.
    """
    check_file_tensors(state)
    if W_AVG_KEY not in state:
        raise ValueError(f"missing key '{W_AVG_KEY}': NVIDIA's generators always store the truncation centre")
    if STYLEGAN3_KEY in state:
        return build_stylegan3(dict(state), None if kwargs is None else dict(kwargs))
    if kwargs is None:  # a bare state dict records no constructor options
        options: dict[str, Any] = {"conv_clamp": TRAIN_PY_CONV_CLAMP}
    else:
        synthesis = kwargs.get("synthesis_kwargs") or {}
        mapping = kwargs.get("mapping_kwargs") or {}
        architecture = synthesis.get("architecture", "skip")
        if architecture != "skip":
            raise ValueError(f"only the 'skip' generator architecture is supported, not '{architecture}'")
        options = {
            "conv_clamp": synthesis.get("conv_clamp"),
            "mapping_lr_multiplier": mapping.get("lr_multiplier", MAPPING_LR_MULTIPLIER),
        }
    with file_key_names(file_key):
        return build_stylegan2(canonical_state(state), **options)


def canonical_state(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """NVIDIA stylegan2-ada keys -> ``sefa_core.models.stylegan2`` keys."""
    state: dict[str, torch.Tensor] = {}
    filters: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if match := _MAPPING.fullmatch(key):
            state[f"mapping.layers.{match[1]}.{match[2]}"] = value
        elif key == W_AVG_KEY:
            state["w_avg"] = value
        elif key == LABEL_WEIGHT_KEY or _EMBED.fullmatch(key):  # the class input of a conditional network
            state[key] = value  # (``mapping.label_weight`` is TF StyleGAN2's LabelConcat)
        elif key == STYLEGAN2_KEY:
            state["synthesis.const"] = value
        elif match := _LAYER.fullmatch(key):
            block = int(math.log2(int(match[1]) // INIT_RESOLUTION))  # b4 -> 0, b8 -> 1, ...
            layer, part = match[2], match[3]
            row = 2 * block - (layer == "conv0")  # conv0 (up) reads row 2*block - 1, conv1 row 2*block
            name = f"to_rgbs.{block}" if layer == "torgb" else f"convs.{row}"
            state[f"synthesis.{name}.{_CONV_PARTS[part]}"] = value
        elif key.endswith("resample_filter"):
            filters[key] = value
        else:
            raise ValueError(f"unexpected tensor '{key}': only the 'skip' StyleGAN2 generator is supported")
    state["synthesis.resample_filter"] = shared_resample_filter(filters)
    return state


_FILE_PARTS = {model: file for file, model in _CONV_PARTS.items()}
_FILE_KEYS = {"synthesis.const": STYLEGAN2_KEY, "synthesis.resample_filter": "synthesis.b4.resample_filter"}


def file_key(model_key: str) -> str:
    """The NVIDIA key ``canonical_state`` reads ``model_key`` from: errors name what the file holds."""
    match model_key.split("."):
        case ["synthesis", "convs", row, *part]:
            block = (int(row) + 1) // 2  # rows 2b - 1 and 2b are block b's conv0 (up) and conv1
            layer = "conv1" if int(row) % 2 == 0 else "conv0"
            return f"synthesis.b{INIT_RESOLUTION * 2**block}.{layer}.{_FILE_PARTS['.'.join(part)]}"
        case ["synthesis", "to_rgbs", block, *part]:
            return f"synthesis.b{INIT_RESOLUTION * 2 ** int(block)}.torgb.{_FILE_PARTS['.'.join(part)]}"
    return _FILE_KEYS.get(model_key) or nvidia_key(model_key)  # the mapping network is StyleGAN3's


PICKLE_LAYOUT = Layout("NVIDIA stylegan2-ada .pkl", matches_pickle, build_pickle)
STATE_DICT_LAYOUT = Layout("NVIDIA state dict", matches_state_dict, build_state_dict)
LAYOUTS = (PICKLE_LAYOUT, STATE_DICT_LAYOUT)


def module_state_dict(obj: PersistentObject) -> dict[str, torch.Tensor]:
    """The ``state_dict()`` the module would return: parameters and buffers under dotted names."""
    return dict(_named_tensors(obj, prefix=""))


def init_kwargs(obj: PersistentObject) -> dict[str, Any]:
    """The constructor keyword arguments NVIDIA recorded (``_init_kwargs``), as plain dicts."""
    kwargs = obj.state.get("_init_kwargs")
    if not isinstance(kwargs, dict):
        raise ValueError(f"the {obj.class_name} record has no _init_kwargs dict")
    return _plain(kwargs)


def _named_tensors(obj: PersistentObject, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    # nn.Module.state_dict order: own parameters, own buffers, then each child in turn.
    for table in ("_parameters", "_buffers"):
        for name, tensor in _entries(obj, table):
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"{prefix}{name} in {obj.class_name}.{table} is a {type(tensor).__name__}")
            yield prefix + name, tensor.detach()
    for name, child in _entries(obj, "_modules"):
        if not isinstance(child, PersistentObject):
            raise ValueError(f"submodule {prefix}{name} is a {type(child).__name__}, not a network record")
        yield from _named_tensors(child, prefix=f"{prefix}{name}.")


def _entries(obj: PersistentObject, table: str) -> Iterator[tuple[str, Any]]:
    """The non-None entries of a module table (a dict, or an OrderedDict in older files)."""
    entries = obj.state.get(table, {})
    if not isinstance(entries, dict):
        raise ValueError(f"{obj.class_name}.{table} is a {type(entries).__name__}, not a dict")
    return ((str(name), value) for name, value in entries.items() if value is not None)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value
