"""Read NVIDIA network pickles (stylegan2-ada-pytorch / stylegan3 ``.pkl``) without running them.

NVIDIA pickles each network as a call of ``torch_utils.persistence._reconstruct_persistent_obj``
with a ``meta`` dict holding the class name, the module's ``__dict__`` and the full source text of
the networks file, which NVIDIA's own loader ``exec``s. A file from a stranger can put anything in
that text, or ask for any other global (``os.system``). Our unpickler resolves a short allowlist of
globals only; persistent objects become ``PersistentObject`` records whose source is never run or
kept, and tensors are rebuilt from storages read by ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.checks import check_structure, describe_read_error, refused_global
from sefa_core.formats.containers.torch_files import is_legacy_torch, torch_load_weights_only

log = logging.getLogger(__name__)

# Released stylegan2-ada / stylegan3 snapshots are 50 MB to 400 MB; anything bigger than this is
# not a network pickle, and reading it would only exhaust memory.
MAX_NETWORK_PICKLE_BYTES = 8 * 1024**3
# NVIDIA persistence records stand for ``type='class'`` objects only.
PERSISTENT_TYPE = "class"


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


def load_network_pickle(path: Path) -> Any:
    """Unpickle an NVIDIA network pickle with allowlisted globals only; plain data out."""
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
            content = _NetworkUnpickler(handle, path).load()
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - every reader failure becomes one line
        log.debug("unpickling %s failed", path, exc_info=True)
        raise CheckpointError(path, describe_read_error(error)) from error
    check_structure(path, content)
    return content


class _NdarrayToken:
    """What the global ``numpy.ndarray`` unpickles to: the real class would let a file allocate any
    array by calling it; this token is only accepted as the array type ``_reconstruct`` names."""

    def __new__(cls, *args: Any) -> _NdarrayToken:
        raise TypeError("numpy.ndarray may only be rebuilt from its pickled state")


class _NetworkUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from an allowlist; everything else is refused."""

    def __init__(self, handle: io.BufferedReader, path: Path) -> None:
        super().__init__(handle)
        self.path = path
        self.allowed: dict[tuple[str, str], Callable[..., Any]] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("builtins", "set"): set,  # protocol-3 pickles store sets as a call of set
            ("dnnlib.util", "EasyDict"): EasyDict,
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_object,
            ("torch.storage", "_load_from_bytes"): self._storage,
            ("torch._utils", "_rebuild_tensor_v2"): self._tensor,
            ("torch._utils", "_rebuild_parameter"): self._parameter,
            ("numpy", "dtype"): self._numpy_dtype,
            ("numpy", "ndarray"): _NdarrayToken,
            ("numpy._core.multiarray", "scalar"): self._numpy_scalar,
            ("numpy.core.multiarray", "scalar"): self._numpy_scalar,  # numpy-1 pickles
            ("numpy._core.multiarray", "_reconstruct"): self._numpy_array,
            ("numpy.core.multiarray", "_reconstruct"): self._numpy_array,
        }

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise CheckpointError(self.path, refused_global(f"{module}.{name}")) from None

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
