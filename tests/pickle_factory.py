"""Write NVIDIA-style network pickles (stylegan2-ada-pytorch / stylegan3 ``.pkl``) without NVIDIA's code.

A real snapshot pickles each network module through ``torch_utils.persistence``: a call of
``_reconstruct_persistent_obj(meta)`` whose ``meta`` holds the class name, the module's ``__dict__``
and the full source text of the networks file. Stand-in classes here emit the same globals
(their names are registered as fake modules only while pickling), so the bytes match what
NVIDIA's training loop writes: protocol 4 from recent Pythons, protocol 3 with ``builtins.set``,
OrderedDict module tables and ``numpy.core`` names from the Python-3.7 era of most released files.

    write_fixture_network_pickle(tmp_path / "net.pkl", fixture_dir("nvidia_stylegan3t_32"))
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import pickle
import re
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# torch_utils.persistence._version in stylegan2-ada-pytorch and stylegan3.
PERSISTENCE_VERSION = 6
# What ``module_src`` holds in a real file: the whole networks module, shared by every record.
STANDIN_MODULE_SRC = (
    "# Stand-in for training/networks.py: a real snapshot embeds the full module source here.\n"
    "import torch\n\n"
    "class Generator(torch.nn.Module):\n"
    "    pass\n"
)
# state_dict entries NVIDIA registers as buffers (everything else is an nn.Parameter).
NVIDIA_BUFFER_NAMES = frozenset(
    {"resample_filter", "noise_const", "w_avg", "transform", "freqs", "phases", "magnitude_ema"}
    | {"up_filter", "down_filter"}
)
# stylegan3's ToRGB layer registers these buffers as None; state_dict() leaves them out.
SG3_OPTIONAL_FILTERS = ("up_filter", "down_filter")
_SG3_LAYER = re.compile(r"L\d+_(\d+)_\d+")
_SYNTHESIS_BLOCK = re.compile(r"b\d+")
# The nn.Module bookkeeping every module's __dict__ carries (empty in saved networks).
_HOOK_TABLES = (
    "_backward_pre_hooks",
    "_backward_hooks",
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:
    """Named like NVIDIA's so the pickle asks for it; our loader must never call the real one."""
    raise AssertionError("stand-in only: pickles name this function, nothing calls it")


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``, the dict NVIDIA keeps keyword arguments in."""


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
EasyDict.__module__ = "dnnlib.util"
_STANDIN_GLOBALS = (_reconstruct_persistent_obj, EasyDict)


@dataclass
class StandInModule:
    """One persistent network module as NVIDIA pickles it: class name, ``__dict__``, module source."""

    class_name: str
    state: dict[str, Any]
    module_src: str = STANDIN_MODULE_SRC

    def __reduce__(self) -> tuple[Any, ...]:
        meta = {
            "type": "class",
            "version": PERSISTENCE_VERSION,
            "module_src": self.module_src,
            "class_name": self.class_name,
            "state": self.state,
        }
        return _reconstruct_persistent_obj, (meta,)


@dataclass
class _Node:
    """A module while its tree is built from dotted state-dict keys."""

    parameters: dict[str, torch.Tensor] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor | None] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)


def module_tree(
    state_dict: Mapping[str, torch.Tensor],
    root_class: str,
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    module_src: str = STANDIN_MODULE_SRC,
    ordered: bool = False,
) -> StandInModule:
    """The persistent-module tree whose ``state_dict()`` is ``state_dict`` (same keys, same order).

    ``ordered`` stores the module tables as OrderedDicts, as torch < 2.0 did.
    """
    root = _Node()
    for key, tensor in state_dict.items():
        *path, name = key.split(".")
        node = root
        for part in path:
            node = node.children.setdefault(part, _Node())
        if name in NVIDIA_BUFFER_NAMES:
            node.buffers[name] = tensor
        else:
            node.parameters[name] = torch.nn.Parameter(tensor, requires_grad=False)
    return _standin(root, "", root_class, dict(init_kwargs or {}), module_src, ordered)


def _standin(
    node: _Node, name: str, class_name: str, kwargs: dict[str, Any], module_src: str, ordered: bool
) -> StandInModule:
    table = collections.OrderedDict if ordered else dict
    if "magnitude_ema" in node.buffers:  # a stylegan3 SynthesisLayer; its ToRGB has no filters
        for filter_name in SG3_OPTIONAL_FILTERS:
            node.buffers.setdefault(filter_name, None)
    state: dict[str, Any] = {
        "training": False,
        "_parameters": table(node.parameters),
        "_buffers": table(node.buffers),
        "_non_persistent_buffers_set": set(),
        **{hooks: table() for hooks in _HOOK_TABLES},
        "_is_full_backward_hook": None,
        "_modules": table(
            (child, _standin(sub, child, _class_for(child), {}, module_src, ordered))
            for child, sub in node.children.items()
        ),
        **_plain_attributes(node, name),
        "_init_args": (),
        "_init_kwargs": {key: _easy(value) for key, value in kwargs.items()},
    }
    return StandInModule(class_name, state, module_src)


def _class_for(name: str) -> str:
    """The NVIDIA class a submodule of this name has (for realistic records only)."""
    if name == "mapping":
        return "MappingNetwork"
    if name == "synthesis":
        return "SynthesisNetwork"
    if name == "input":
        return "SynthesisInput"
    if name == "torgb":
        return "ToRGBLayer"
    if _SYNTHESIS_BLOCK.fullmatch(name):
        return "SynthesisBlock"
    if name.startswith("conv") or _SG3_LAYER.fullmatch(name):
        return "SynthesisLayer"
    return "FullyConnectedLayer"


def _plain_attributes(node: _Node, name: str) -> dict[str, Any]:
    """Attributes NVIDIA modules keep beside their tensors, in the types real files hold."""
    attributes: dict[str, Any] = {}
    weight = node.parameters.get("weight")
    if weight is not None and weight.ndim == 2:  # FullyConnectedLayer keeps a numpy float64 gain
        attributes["weight_gain"] = np.float64(1 / math.sqrt(weight.shape[1]))
        attributes["bias_gain"] = 1.0
    if match := _SG3_LAYER.fullmatch(name):  # stylegan3 layers keep their sizes as numpy arrays
        attributes["out_size"] = np.broadcast_to(np.asarray(int(match.group(1))), [2])
    return attributes


def _easy(value: Any) -> Any:
    """Nested kwargs dicts become EasyDicts, as NVIDIA's training loop passes them."""
    if isinstance(value, dict):
        return EasyDict({key: _easy(item) for key, item in value.items()})
    return value


def dump_network_pickle(path: Path, snapshot: Mapping[str, Any], *, protocol: int = 4) -> Path:
    """Pickle ``snapshot`` as NVIDIA's training loop does; protocol 3 gets numpy-1 global names."""
    with standin_modules(_STANDIN_GLOBALS):
        data = pickle.dumps(dict(snapshot), protocol=protocol)
    if protocol <= 3:
        # GLOBAL opcodes carry "module\nname\n" without a length, so renaming the module is safe.
        for name in (b"scalar", b"_reconstruct"):
            data = data.replace(b"cnumpy._core.multiarray\n" + name, b"cnumpy.core.multiarray\n" + name)
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def standin_modules(standins: tuple[Any, ...]) -> Iterator[None]:
    """Make the modules the stand-ins name (``torch_utils.persistence``, ``dnnlib.util``, ...)
    importable, for pickle's name check only."""
    added: list[str] = []
    try:
        for value in standins:
            parts = value.__module__.split(".")
            for name in (".".join(parts[: depth + 1]) for depth in range(len(parts))):
                if name not in added:
                    assert name not in sys.modules, f"a real {name} is imported"
                    sys.modules[name] = types.ModuleType(name)
                    added.append(name)
            setattr(sys.modules[value.__module__], value.__name__, value)
        yield
    finally:
        for name in added:
            del sys.modules[name]


def write_network_pickle(
    path: Path,
    generator_state_dict: Mapping[str, torch.Tensor],
    init_kwargs: Mapping[str, Any],
    *,
    protocol: int = 4,
    module_src: str = STANDIN_MODULE_SRC,
) -> Path:
    """A full snapshot ``{'training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe'}`` at ``path``.

    ``G_ema`` holds ``generator_state_dict``; ``G`` is a decoy with negated float weights (a loader
    that reads it instead of ``G_ema`` renders different images); ``D`` is a tiny decoy critic.
    """
    ordered = protocol <= 3

    def tree(state: Mapping[str, torch.Tensor], class_name: str, kwargs: Mapping[str, Any]) -> StandInModule:
        return module_tree(state, class_name, init_kwargs=kwargs, module_src=module_src, ordered=ordered)

    resolution = int(init_kwargs.get("img_resolution", 32))
    decoy = {
        key: -value if value.is_floating_point() else value for key, value in generator_state_dict.items()
    }
    snapshot = {
        "training_set_kwargs": {
            "class_name": "training.dataset.ImageFolderDataset",
            "path": "datasets/standin.zip",
            "resolution": resolution,
            "use_labels": False,
            "xflip": False,
        },
        "G": tree(decoy, "Generator", init_kwargs),
        "D": tree(_decoy_discriminator(), "Discriminator", {"c_dim": 0, "img_resolution": resolution}),
        "G_ema": tree(generator_state_dict, "Generator", init_kwargs),
        "augment_pipe": None,
    }
    return dump_network_pickle(path, snapshot, protocol=protocol)


def _decoy_discriminator() -> dict[str, torch.Tensor]:
    weights = torch.Generator().manual_seed(7)
    return {
        "b32.fromrgb.weight": torch.randn(8, 3, 1, 1, generator=weights),
        "b32.fromrgb.bias": torch.zeros(8),
        "b4.out.weight": torch.randn(1, 8, generator=weights),
        "b4.out.bias": torch.zeros(1),
    }


def load_fixture_generator(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``nvidia_state.pt`` (G_ema's state dict) and the init kwargs of ``nvidia_init_kwargs.json``."""
    state = torch.load(folder / "nvidia_state.pt", map_location="cpu", weights_only=True)
    kwargs = json.loads((folder / "nvidia_init_kwargs.json").read_text())["init_kwargs"]
    return state, kwargs


def write_fixture_network_pickle(path: Path, folder: Path, *, protocol: int = 4) -> Path:
    """The NVIDIA ``.pkl`` a fixture folder's generator came from (``nvidia_*`` fixtures)."""
    state, kwargs = load_fixture_generator(folder)
    source = f"# Stand-in for the module of {folder.name}'s generator.\n{STANDIN_MODULE_SRC}"
    return write_network_pickle(path, state, kwargs, protocol=protocol, module_src=source)
