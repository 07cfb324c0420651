"""Read a checkpoint file without executing anything in it.

The container is sniffed from the bytes, never trusted from the extension:
- torch zip (``.pt``/``.pth``/``.tar`` since torch 1.6) and torch legacy pickle go through
  ``torch.load(weights_only=True)`` with only the extra globals real files need;
- a plain pickle (NVIDIA ``network-snapshot.pkl``) goes through our restricted unpickler;
- the legacy tar layout (torch < 0.4) is refused: torch cannot read it without running its pickles.
Whatever comes out is then checked for shapes no checkpoint has (nesting, cycles, shared-reference
bombs) before a layout loader walks it. The result is plain data (dicts, tensors, records).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import pickle
import re
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sefa_core.errors import CheckpointError

log = logging.getLogger(__name__)

# Globals a real checkpoint may need beyond torch's weights-only defaults, and why:
# rosinality's train.py stores its command-line ``args`` as an argparse.Namespace.
EXTRA_SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

ZIP_MAGIC = b"PK\x03\x04"
# torch's legacy format pickles this magic number first: 0x1950a86a20f9469cfc6c.
LEGACY_TORCH_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
TAR_MAGIC_OFFSET = 257
# torch writes zip entries uncompressed; a zip that inflates to many times its own size is a bomb.
MAX_ZIP_EXPANSION = 4
# Checkpoints nest a few dicts deep (NVIDIA module trees about 20 levels); walking code recurses.
MAX_NESTING_DEPTH = 100
# Items met walking the content as a tree, shared references counted each time they are met.
MAX_EXPANDED_ITEMS = 10_000_000

_REFUSED_GLOBAL = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)")
_WEIGHTS_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+)")
# A reader running off the end of the data: torch's weights-only unpickler indexes what read() gave.
_TRUNCATED_ERRORS = (EOFError, IndexError, struct.error, tarfile.ReadError, zipfile.BadZipFile)
_TRUNCATED = re.compile(
    r"failed finding central directory|PytorchStreamReader failed|pickle data was truncated|unexpected EOF"
)


@dataclass(frozen=True)
class RawCheckpoint:
    """A safely read checkpoint: where it came from and the plain data it holds."""

    path: Path
    digest: str  # sha256 of the file bytes
    container: str  # "torch-zip" | "torch-legacy" | "pickle"
    content: Any


def file_digest(path: Path) -> str:
    """sha256 of a file, read in chunks so large checkpoints do not sit in memory twice."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def is_legacy_torch(head: bytes) -> bool:
    """Whether bytes start like torch's legacy (pre-zip) ``torch.save`` stream."""
    return head[2:14] == LEGACY_TORCH_MAGIC or head[1:13] == LEGACY_TORCH_MAGIC


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
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    raise CheckpointError(path, "not a torch checkpoint or pickle (unrecognised first bytes)")


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Sniff and safely read ``path``; every failure is a one-line ``CheckpointError``."""
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
    if container == "pickle":
        from sefa_core.formats.nvidia_pickle import load_network_pickle

        content = load_network_pickle(path)  # checks its own content
    else:
        if container == "torch-zip":
            check_zip_sizes(path)
        try:
            content = torch_load_weights_only(path)
        except Exception as error:  # noqa: BLE001 - every reader failure becomes one line
            log.debug("reading %s failed", path, exc_info=True)
            raise CheckpointError(path, describe_read_error(error)) from error
        check_structure(path, content)
    return RawCheckpoint(path, file_digest(path), container, content)


def torch_load_weights_only(path: Path | Any) -> Any:
    """``torch.load`` that refuses every global outside torch's weights-only set and ours."""
    with torch.serialization.safe_globals(list(EXTRA_SAFE_GLOBALS)):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=False)


def check_zip_sizes(path: Path) -> None:
    """Refuse a zip whose entries claim to inflate far beyond the file (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        log.debug("reading the zip directory of %s failed", path, exc_info=True)
        raise CheckpointError(path, "the file is truncated or corrupt (bad zip directory)") from error
    limit = MAX_ZIP_EXPANSION * path.stat().st_size
    if claimed > limit:
        raise CheckpointError(
            path,
            f"refused to load: the zip entries claim {claimed:,} bytes, more than "
            f"{MAX_ZIP_EXPANSION}x the file's size (a zip bomb?)",
        )


def check_structure(path: Path, content: Any) -> None:
    """Refuse content no checkpoint has, before code that walks it recursively meets it.

    Deep nesting would end in a RecursionError, a reference cycle in an endless walk, and a few
    shared references nested in each other (a "billion laughs" pickle) in an exponential one.
    The walk is iterative and visits each container once.
    """
    done: dict[int, tuple[int, int]] = {}  # id -> (levels below, items when walked as a tree)
    _refuse_object_array(path, content)
    if not _children(content):
        return
    # One frame per open container: [object, iterator over its children, levels below, items].
    stack: list[list[Any]] = [[content, iter(_children(content)), 0, 1]]
    open_ids = {id(content)}
    while stack:
        frame = stack[-1]
        child = next(frame[1], _END)
        if child is _END:
            stack.pop()
            open_ids.discard(id(frame[0]))
            _merge(path, stack, done, frame[0], frame[2], frame[3])
            continue
        _refuse_object_array(path, child)
        children = _children(child)
        if not children:
            frame[3] += 1
        elif id(child) in done:
            _merge(path, stack, done, child, *done[id(child)])
        elif id(child) in open_ids:
            raise CheckpointError(
                path, "refused to load: the file's data contains itself (a reference cycle)"
            )
        else:
            open_ids.add(id(child))
            stack.append([child, iter(children), 0, 1])


_END = object()


def _refuse_object_array(path: Path, value: Any) -> None:
    # Its items would escape the walk; checkpoints hold numeric arrays only.
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        raise CheckpointError(path, "refused to load: the file holds a numpy array of Python objects")


def _merge(path: Path, stack: list[list[Any]], done: dict, node: Any, levels: int, items: int) -> None:
    """Record a finished container and add its depth and size to its parent's."""
    done[id(node)] = (levels, items)
    if len(stack) + levels > MAX_NESTING_DEPTH:
        raise CheckpointError(
            path, f"refused to load: the file's data is nested more than {MAX_NESTING_DEPTH} levels deep"
        )
    if items > MAX_EXPANDED_ITEMS:
        raise CheckpointError(
            path,
            f"refused to load: the file's data expands to more than {MAX_EXPANDED_ITEMS:,} items "
            "through shared references",
        )
    if stack:
        parent = stack[-1]
        parent[2] = max(parent[2], levels + 1)
        parent[3] += items


def _children(value: Any) -> tuple[Any, ...]:
    """The objects a container holds; empty for leaves (tensors, numbers, strings)."""
    if isinstance(value, dict):
        return (*value.keys(), *value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    if isinstance(value, argparse.Namespace):
        return tuple(vars(value).values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(getattr(value, field.name) for field in dataclasses.fields(value))
    return ()


def refused_global(name: str) -> str:
    """The one-line reason for a global a file asks for and may not have."""
    return f"refused to load: the file asks for the global '{name}', which is not allowed"


def describe_read_error(error: BaseException) -> str:
    """One line for a reader failure, naming a refused global where there is one."""
    text = str(error)
    if match := _REFUSED_GLOBAL.search(text):
        name = match.group(1)
        # torch names builtins without their module ("GLOBAL eval").
        return refused_global(name if "." in name else f"builtins.{name}")
    if isinstance(error, MemoryError):
        return "the file claims more memory than there is (corrupt or hostile)"
    if isinstance(error, _TRUNCATED_ERRORS) or _TRUNCATED.search(text):
        return "the file is truncated or corrupt"
    if match := _WEIGHTS_UNPICKLER_ERROR.search(text):
        return f"refused to load: {match.group(1).strip()[:200]}"
    if isinstance(error, (pickle.UnpicklingError, RuntimeError, ValueError, TypeError)):
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return f"the file is corrupt or not a checkpoint ({first[:200]})"
    return f"could not read the file ({type(error).__name__}: {text[:200]})"
