"""Read a checkpoint file without executing anything in it.

The container is sniffed from the bytes, never trusted from the extension:
- torch zip (``.pt``/``.pth``/``.tar`` since torch 1.6) and torch legacy pickle go through
  ``torch.load(weights_only=True)`` with only the extra globals real files need;
- a plain pickle (NVIDIA ``network-snapshot.pkl``, TensorFlow ``(G, D, Gs)``) goes through our
  restricted unpickler;
- safetensors (what ``sefa convert`` writes) are a JSON header and raw tensor bytes;
- the legacy tar layout (torch < 0.4) is refused: torch cannot read it without running its pickles.
Whatever comes out is then checked (``checks``) for shapes no checkpoint has (nesting, cycles,
shared-reference bombs) before a layout loader walks it. The result is plain data (dicts, tensors, records).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.pickles import load_network_pickle
from sefa_core.formats.containers.safetensors import SafetensorsContent, is_safetensors, read_safetensors
from sefa_core.formats.containers.torch_files import ZIP_MAGIC, is_legacy_torch, read_torch_file

TAR_MAGIC_OFFSET = 257


@dataclass(frozen=True)
class RawCheckpoint:
    """A safely read checkpoint: where it came from and the plain data it holds."""

    path: Path
    digest: str  # sha256 of the file bytes
    container: str  # "torch-zip" | "torch-legacy" | "pickle" | "safetensors"
    content: Any
    classes: tuple[str, ...] | None = None  # class names the user gave (config.yaml); None: not given


def file_digest(path: Path) -> str:
    """sha256 of a file, read in chunks so large checkpoints do not sit in memory twice."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def sniff_container(path: Path) -> str:
    """Name the container from the file's first bytes."""
    with path.open("rb") as handle:
        head = handle.read(TAR_MAGIC_OFFSET + 8)
    if not head:
        raise CheckpointError(path, "the file is empty")
    if head.startswith(ZIP_MAGIC):
        return "torch-zip"
    if is_legacy_torch(head):
        return "torch-legacy"
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "torch-tar"
    if is_safetensors(head):  # before the pickle test: a header length may start with 0x80 0x02
        return "safetensors"
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    raise CheckpointError(path, "not a torch checkpoint or pickle (unrecognised first bytes)")


def read_checkpoint(path: str | Path, digest: str | None = None) -> RawCheckpoint:
    """Sniff and safely read ``path``; every failure is a one-line ``CheckpointError``.

    ``digest``: the file's sha256 when the caller has it already.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    container = sniff_container(path)
    if container == "torch-tar":
        raise CheckpointError(
            path,
            "the legacy torch .tar format (torch < 0.4) cannot be read without running code from the "
            "file; load it and save it again with torch.save on a machine you trust",
        )
    # Each reader checks its own content.
    if container == "pickle":
        content: Any = load_network_pickle(path)
    elif container == "safetensors":
        content = SafetensorsContent(*read_safetensors(path))
    else:
        content = read_torch_file(path, container)
    return RawCheckpoint(path, digest or file_digest(path), container, content)
