"""torch's own containers: the zip format (torch >= 1.6) and the legacy pickle stream.

Both go through ``torch.load(weights_only=True)`` with only the extra globals real files need.
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from pathlib import Path
from typing import Any

import torch

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.checks import check_structure, describe_read_error

log = logging.getLogger(__name__)

# Globals a real checkpoint may need beyond torch's weights-only defaults, and why:
# rosinality's train.py stores its command-line ``args`` as an argparse.Namespace.
EXTRA_SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

ZIP_MAGIC = b"PK\x03\x04"
# torch's legacy format pickles this magic number first: 0x1950a86a20f9469cfc6c.
LEGACY_TORCH_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
# torch writes zip entries uncompressed; a zip that inflates to many times its own size is a bomb.
MAX_ZIP_EXPANSION = 4


def is_legacy_torch(head: bytes) -> bool:
    """Whether bytes start like torch's legacy (pre-zip) ``torch.save`` stream."""
    return head[2:14] == LEGACY_TORCH_MAGIC or head[1:13] == LEGACY_TORCH_MAGIC


def read_torch_file(path: Path, container: str) -> Any:
    """Content of a torch zip or legacy file, read weights-only and checked."""
    if container == "torch-zip":
        check_zip_sizes(path)
    try:
        content = torch_load_weights_only(path)
    except Exception as error:  # noqa: BLE001 - every reader failure becomes one line
        log.debug("reading %s failed", path, exc_info=True)
        raise CheckpointError(path, describe_read_error(error, path)) from error
    check_structure(path, content)
    return content


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
