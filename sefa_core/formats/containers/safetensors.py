"""safetensors files: a JSON header and raw tensor bytes, nothing in them can run.

What the conversion cache and ``sefa convert`` write. Every failure to read one is a one-line
``CheckpointError``; writes are atomic, so a crash leaves the old file or none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from sefa_core.atomic import atomic_write_bytes
from sefa_core.errors import CheckpointError

log = logging.getLogger(__name__)

HEADER_LENGTH_BYTES = 8  # a little-endian u64, then the JSON header
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit


@dataclass(frozen=True)
class SafetensorsContent:
    """A safetensors file as read: its tensors and its text metadata."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


def is_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are a safetensors header: its length, then a JSON object."""
    length = int.from_bytes(head[:HEADER_LENGTH_BYTES], "little")
    return len(head) > HEADER_LENGTH_BYTES and 2 <= length <= MAX_HEADER_BYTES and head[8:9] == b"{"


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on the CPU) and the text metadata of a safetensors file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as error:  # noqa: BLE001 - every reader failure becomes one line
        log.debug("reading %s failed", path, exc_info=True)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(path, f"not a readable safetensors file ({first[:200]})") from error
    return tensors, metadata


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``tensors`` (contiguous, CPU) and ``metadata`` to ``path`` atomically."""
    data = save({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, metadata)
    return atomic_write_bytes(path, data)
