"""Read network pickles (NVIDIA PyTorch and TensorFlow) without running anything in them.

Two pickle dialects carry nearly every published GAN, and ``DIALECTS`` lists the only globals
each may ask for:
- NVIDIA PyTorch (stylegan2-ada-pytorch / stylegan3 ``.pkl``): each network is a call of
  ``torch_utils.persistence._reconstruct_persistent_obj`` with a ``meta`` dict holding the class
  name, the module's ``__dict__`` and the full source text of the networks file, which NVIDIA's
  loader ``exec``s. Persistent objects become ``PersistentObject`` records whose source is never
  run or kept; tensors are rebuilt from storages read by ``torch.load(weights_only=True)``.
- TensorFlow (PGGAN's ``tfutil.Network``, StyleGAN / StyleGAN2 / StyleGAN2-ADA's
  ``dnnlib.tflib.network.Network``): each network is an object of that class whose state holds
  ``build_module_src``, the network code TensorFlow's loader imports. It becomes a
  ``TensorFlowNetwork`` record without that text; its variables are numpy arrays.

Before unpickling, the opcodes are scanned (``pickletools.genops``, which runs nothing) for the
globals the file names; the file's dialect is the one whose own globals it uses, and a global
outside that dialect's list is refused naming both. The unpickler then resolves that dialect's
globals only.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.checks import check_structure, describe_read_error, refused_global
from sefa_core.formats.containers.opcodes import globals_named
from sefa_core.formats.containers.torch_files import is_legacy_torch, torch_load_weights_only

log = logging.getLogger(__name__)

# Released snapshots are 50 MB to 400 MB; anything bigger than this is not a network pickle, and
# reading it would only exhaust memory.
MAX_NETWORK_PICKLE_BYTES = 8 * 1024**3
# NVIDIA persistence records stand for ``type='class'`` objects only.
PERSISTENT_TYPE = "class"
# The TensorFlow network's code, which TensorFlow's loader imports; never run, compiled or kept.
TF_BUILD_SOURCE_KEY = "build_module_src"
TF_STATE_VERSIONS = (2, 3, 4, 5)  # PGGAN 2, StyleGAN 3, StyleGAN2 4, StyleGAN2-ADA (TF) 5


@dataclass(frozen=True)
class PickleDialect:
    """A kind of network pickle and every global a real file of that kind asks for."""

    name: str  # shown to users, e.g. "TensorFlow network pickle"
    allowed: frozenset[str]


# numpy's array and scalar reconstruction, under numpy 1 and numpy 2 module names.
NUMPY_GLOBALS = frozenset(
    {
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
    }
)
NVIDIA_PYTORCH = PickleDialect(
    "NVIDIA PyTorch network pickle",
    NUMPY_GLOBALS
    | {
        "collections.OrderedDict",
        "builtins.set",  # protocol-3 pickles store sets as a call of set
        "dnnlib.util.EasyDict",
        "torch_utils.persistence._reconstruct_persistent_obj",
        "torch.storage._load_from_bytes",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
    },
)
TF_NETWORK_CLASSES = frozenset({"tfutil.Network", "dnnlib.tflib.network.Network"})
TENSORFLOW = PickleDialect("TensorFlow network pickle", NUMPY_GLOBALS | TF_NETWORK_CLASSES)
DIALECTS = (NVIDIA_PYTORCH, TENSORFLOW)


class EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict`` (NVIDIA's dict with attribute access): plain data."""


@dataclass(frozen=True)
class PersistentObject:
    """What ``_reconstruct_persistent_obj(meta)`` would have built, as a record.

    ``module_name`` names the embedded source module the way NVIDIA's loader would import it
    (``_imported_module_...``), after the source's sha256: records from one networks file share it,
    while the source text itself is neither run nor kept.
    """

    class_name: str  # e.g. "Generator", "SynthesisLayer"
    module_name: str
    state: dict[str, Any]  # the module's __dict__: _parameters, _buffers, _modules, _init_kwargs, ...


@dataclass(frozen=True, eq=False, init=False)
class TensorFlowNetwork:
    """What a TensorFlow ``Network`` unpickles to, as a record: its state without ``build_module_src``.

    The pickle builds it as ``NEWOBJ`` (no arguments) then ``BUILD`` with the state dict, which
    ``__setstate__`` keeps: ``version``, ``name``, ``static_kwargs``, ``components`` (version >= 3),
    ``build_func_name`` and ``variables``, a list of ``(name, numpy value)`` pairs.
    """

    state: dict[str, Any]

    def __new__(cls) -> TensorFlowNetwork:
        record = super().__new__(cls)
        object.__setattr__(record, "state", {})  # until BUILD sets it; a record never built has none
        return record

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"a TensorFlow network's state is a {type(state).__name__}, not a dict")
        kept = {key: value for key, value in state.items() if key != TF_BUILD_SOURCE_KEY}
        object.__setattr__(self, "state", kept)

    @property
    def name(self) -> str:
        return str(self.state.get("name", "?"))

    @property
    def version(self) -> int:
        return self.state["version"]

    @property
    def static_kwargs(self) -> dict[str, Any]:
        return self.state.get("static_kwargs") or {}

    @property
    def components(self) -> dict[str, TensorFlowNetwork]:
        return self.state.get("components") or {}

    def variables(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """This network's variables and its components', named as TF scopes them (``mapping/Dense0/bias``)."""
        for name, value in self.state["variables"]:
            yield prefix + name, np.asarray(value)
        for component_name, component in self.components.items():
            yield from component.variables(f"{prefix}{component_name}/")


def load_network_pickle(path: Path) -> Any:
    """Unpickle a network pickle with its dialect's globals only; plain data and records out."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_NETWORK_PICKLE_BYTES:
        raise CheckpointError(
            path,
            f"the file is {size / 1024**3:.1f} GiB, larger than any network pickle "
            f"(limit {MAX_NETWORK_PICKLE_BYTES / 1024**3:.0f} GiB)",
        )
    try:
        with path.open("rb") as handle:
            dialect = file_dialect(path, globals_named(handle))
            handle.seek(0)
            content = _NetworkUnpickler(handle, path, dialect).load()
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - every reader failure becomes one line
        log.debug("unpickling %s failed", path, exc_info=True)
        raise CheckpointError(path, describe_read_error(error)) from error
    check_structure(path, content)
    if dialect is TENSORFLOW:
        check_tensorflow_networks(path, content)
    return content


def file_dialect(path: Path, names: list[str]) -> PickleDialect:
    """The dialect a file's globals say it is written in; a global outside it is refused, naming both.

    A dialect's own globals (those no other dialect uses) name the file; a file that uses none of
    them (plain data) is read in the first dialect that allows all its globals.
    """
    named = set(names)
    own = [dialect for dialect in DIALECTS if named & _own_globals(dialect)]
    if len(own) > 1:
        raise CheckpointError(
            path, f"refused to load: the file mixes the globals of {own[0].name}s and {own[1].name}s"
        )
    candidates = own or [dialect for dialect in DIALECTS if named <= dialect.allowed]
    if not candidates:
        refused = next(name for name in names if not any(name in d.allowed for d in DIALECTS))
        kinds = " or ".join(dialect.name for dialect in DIALECTS)
        raise CheckpointError(path, refused_global(refused, f"in any {kinds}"))
    dialect = candidates[0]
    if refused := next((name for name in names if name not in dialect.allowed), None):
        where = f"in a {dialect.name}, which the file looks like"
        raise CheckpointError(path, refused_global(refused, where))
    return dialect


def _own_globals(dialect: PickleDialect) -> frozenset[str]:
    """The globals only ``dialect`` uses: one of them in a file tells what the file is."""
    return dialect.allowed - frozenset().union(*(other.allowed for other in DIALECTS if other is not dialect))


def check_tensorflow_networks(path: Path, content: Any) -> None:
    """Refuse a TensorFlow network whose state is not what the TF code writes, naming what is wrong."""
    networks = list(content) if isinstance(content, tuple) else [content]
    for network in networks:
        if isinstance(network, TensorFlowNetwork):
            _check_tf_network(path, network, network.name)


def _check_tf_network(path: Path, network: TensorFlowNetwork, where: str) -> None:
    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(path, f"refused to load: {TENSORFLOW.name}: network '{where}' {problem}")

    state = network.state
    if state.get("version") not in TF_STATE_VERSIONS:
        raise refuse(f"has state version {state.get('version')!r}, expected one of {TF_STATE_VERSIONS}")
    if not isinstance(state.get("static_kwargs", {}), dict):
        raise refuse("has static_kwargs that are not a dict")
    variables = state.get("variables")
    if not isinstance(variables, list):
        raise refuse("has no list of variables")
    for item in variables:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise refuse("has a variable that is not a (name, value) pair")
        name, value = item
        is_numpy = isinstance(value, (np.ndarray, np.generic))
        if not is_numpy or value.dtype.kind not in "fiub":
            kind = f"{value.dtype} array" if is_numpy else type(value).__name__
            raise refuse(f"has variable '{name}' holding a {kind}, not a numeric numpy array")
    components = state.get("components", {})
    if not isinstance(components, dict):
        raise refuse("has components that are not a dict")
    for name, component in components.items():
        if not isinstance(component, TensorFlowNetwork):
            raise refuse(f"has component '{name}' that is a {type(component).__name__}, not a network")
        _check_tf_network(path, component, f"{where}/{name}")


class _NdarrayToken:
    """What the global ``numpy.ndarray`` unpickles to: the real class would let a file allocate any
    array by calling it; this token is only accepted as the array type ``_reconstruct`` names."""

    def __new__(cls, *args: Any) -> _NdarrayToken:
        raise TypeError("numpy.ndarray may only be rebuilt from its pickled state")


class _NetworkUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` resolving its dialect's globals (``DIALECTS``) only; all else is refused."""

    def __init__(self, handle: io.BufferedReader, path: Path, dialect: PickleDialect) -> None:
        super().__init__(handle)
        self.path = path
        self.dialect = dialect
        # How each global of any dialect is rebuilt; which of them a file may use is the dialect's list.
        self.handlers: dict[str, Callable[..., Any]] = {
            "collections.OrderedDict": collections.OrderedDict,
            "builtins.set": set,
            "dnnlib.util.EasyDict": EasyDict,
            "torch_utils.persistence._reconstruct_persistent_obj": self._persistent_object,
            "torch.storage._load_from_bytes": self._storage,
            "torch._utils._rebuild_tensor_v2": self._tensor,
            "torch._utils._rebuild_parameter": self._parameter,
            "tfutil.Network": TensorFlowNetwork,
            "dnnlib.tflib.network.Network": TensorFlowNetwork,
            "numpy.dtype": self._numpy_dtype,
            "numpy.ndarray": _NdarrayToken,
            "numpy._core.multiarray.scalar": self._numpy_scalar,
            "numpy.core.multiarray.scalar": self._numpy_scalar,  # numpy-1 pickles
            "numpy._core.multiarray._reconstruct": self._numpy_array,
            "numpy.core.multiarray._reconstruct": self._numpy_array,
        }

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        full_name = f"{module}.{name}"
        if full_name not in self.dialect.allowed:
            raise CheckpointError(self.path, refused_global(full_name, f"in a {self.dialect.name}"))
        return self.handlers[full_name]

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(
            self.path, "refused to load: the file refers to outside objects (persistent ids)"
        )

    def _malformed(self, what: str) -> CheckpointError:
        return CheckpointError(self.path, f"refused to load: {what}")

    def _persistent_object(self, meta: Any) -> PersistentObject:
        if not isinstance(meta, dict) or meta.get("type") != PERSISTENT_TYPE:
            raise self._malformed("a persistent object record is not a class record")
        class_name, source, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
        if not (isinstance(class_name, str) and class_name.isidentifier()):
            raise self._malformed("a persistent object record has no valid class name")
        if not isinstance(source, str) or not isinstance(state, dict):
            raise self._malformed(f"the {class_name} record lacks its source text or state dict")
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        return PersistentObject(class_name, f"_imported_module_{digest[:32]}", state)

    def _storage(self, data: Any) -> torch.storage.TypedStorage:
        # Real files hold each storage as a legacy torch.save stream; anything else is not a storage.
        if not isinstance(data, bytes) or not is_legacy_torch(data[:16]):
            raise self._malformed("a tensor storage is not in torch's storage format")
        try:
            storage = torch_load_weights_only(io.BytesIO(data))
        except Exception as error:  # noqa: BLE001 - the inner stream's refusal, as one line
            log.debug("a storage inside %s failed to load", self.path, exc_info=True)
            raise CheckpointError(self.path, f"a tensor storage: {describe_read_error(error)}") from error
        if not isinstance(storage, torch.storage.TypedStorage):
            raise self._malformed(f"a tensor storage holds a {type(storage).__name__}")
        return storage

    def _tensor(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> torch.Tensor:
        # Hooks and metadata would attach behaviour to the tensor; real network pickles have none.
        valid = (
            isinstance(storage, torch.storage.TypedStorage)
            and _is_int(offset)
            and _is_int_tuple(size)
            and _is_int_tuple(stride)
            and len(size) == len(stride)
            and isinstance(requires_grad, bool)
            and not backward_hooks
            and not metadata
        )
        if not valid:
            raise self._malformed("a tensor record is malformed")
        # torch would grow the storage to fit, letting a few bytes of pickle claim gigabytes.
        stored = storage._untyped_storage.nbytes() // storage.dtype.itemsize
        if (
            0 not in size
            and offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True)) >= stored
        ):
            raise self._malformed("a tensor record reaches past the end of its storage")
        return torch._utils._rebuild_tensor_v2(
            storage, offset, size, stride, requires_grad, collections.OrderedDict()
        )

    def _parameter(self, data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
        if not isinstance(data, torch.Tensor) or not isinstance(requires_grad, bool) or backward_hooks:
            raise self._malformed("a parameter record is malformed")
        return torch.nn.Parameter(data, requires_grad)

    def _numpy_dtype(self, spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(spec, str):
            raise self._malformed("a numpy dtype record is malformed")
        return np.dtype(spec, bool(align), bool(copy))

    def _numpy_scalar(self, dtype: Any, data: Any) -> np.generic:
        valid = isinstance(dtype, np.dtype) and not dtype.hasobject and isinstance(data, bytes)
        if not valid or len(data) != dtype.itemsize:
            raise self._malformed("a numpy scalar record is malformed")
        return np.frombuffer(data, dtype=dtype)[0]

    def _numpy_array(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        # ndarray.__reduce__ always starts from an empty array; its BUILD state fills it in.
        if subtype is not _NdarrayToken or shape != (0,) or not isinstance(typecode, bytes):
            raise self._malformed("a numpy array record is malformed")
        return np.ndarray((0,), dtype=np.uint8)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(_is_int(item) for item in value)
