"""Latent-code files (``.npy``): prepared codes, uploads and exports.

Always read with ``allow_pickle=False``. A file may hold edit-space codes (N, *code_shape), one
code (*code_shape), or z codes (N, latent_dim) that are mapped into the edit space.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from sefa_core.atomic import atomic_write_bytes
from sefa_core.errors import CodeFileError
from sefa_core.models.base import Generator

MAX_CODE_FILE_BYTES = 64 * 1024 * 1024  # 64 MiB: far more than any sensible set of codes


def read_code_array(source: str | Path | bytes, name: str = "") -> np.ndarray:
    """A float array from an ``.npy`` path or its bytes; pickles and oversize files refused."""
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes):
        size, stream = len(source), io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise CodeFileError(f"{label}: no such file")
        size, stream = path.stat().st_size, path.open("rb")
    if size > MAX_CODE_FILE_BYTES:
        raise CodeFileError(f"{label}: {size} bytes is over the {MAX_CODE_FILE_BYTES} byte limit")
    try:
        with stream:
            array = np.load(stream, allow_pickle=False)
    except ValueError as error:
        raise CodeFileError(f"{label}: not a plain .npy array ({str(error).splitlines()[0][:120]})") from error
    except Exception as error:  # noqa: BLE001 - corrupt files of every kind become one line
        raise CodeFileError(f"{label}: not a readable .npy file ({type(error).__name__})") from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise CodeFileError(f"{label}: codes must be numbers, got dtype {getattr(array, 'dtype', '?')}")
    if not np.all(np.isfinite(array)):
        raise CodeFileError(f"{label}: codes contain NaN or Inf")
    return array.astype(np.float32)


def codes_for_generator(array: np.ndarray, generator: Generator, label: str = "codes") -> torch.Tensor:
    """Fit an array to ``generator``'s edit space: (N, *code_shape) on its device."""
    shape = generator.code_shape
    if tuple(array.shape) == shape:
        array = array[None]  # one code -> a batch of one
    if tuple(array.shape[1:]) == shape:
        return torch.from_numpy(np.ascontiguousarray(array)).to(generator.device)
    if array.ndim == 2 and array.shape[1] == generator.latent_dim:
        return generator.to_edit_space(torch.from_numpy(np.ascontiguousarray(array)))
    expected = f"(N, {', '.join(map(str, shape))})"
    if shape != (generator.latent_dim,):
        expected += f" or z codes (N, {generator.latent_dim})"
    raise CodeFileError(f"{label}: shape {tuple(array.shape)} does not fit this model; expected {expected}")


def load_codes(source: str | Path | bytes, generator: Generator, name: str = "") -> torch.Tensor:
    """Read and validate a code file for ``generator``."""
    label = name or (str(source) if not isinstance(source, bytes) else "upload")
    return codes_for_generator(read_code_array(source, label), generator, label)


def codes_to_npy_bytes(codes: torch.Tensor) -> bytes:
    """Codes as ``.npy`` bytes (float32, no pickle), for downloads."""
    buffer = io.BytesIO()
    np.save(buffer, codes.detach().cpu().numpy().astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def save_codes(path: str | Path, codes: torch.Tensor) -> Path:
    """Write codes atomically as ``.npy``."""
    return atomic_write_bytes(path, codes_to_npy_bytes(codes))
