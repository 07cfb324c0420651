"""Convert once: a converted file (a TensorFlow pickle) is kept as safetensors, keyed by its sha256.

An entry is ``<SEFA_CACHE_DIR>/<sha256>.safetensors``, written as ``sefa convert`` writes
(``layouts.converted``): the converted state dict under the target layout's key names, and in its
metadata the digest of the file it came from, the layout that builds it and its build options. The
digest inside is compared on every read: an entry whose digest does not match (a renamed or damaged
file) or that cannot be read is rebuilt, never trusted. A cache that cannot be written (read-only
disk) only costs the next load its conversion.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sefa_core.errors import CheckpointError
from sefa_core.formats.containers.safetensors import read_safetensors, write_safetensors
from sefa_core.formats.layouts.common import Conversion
from sefa_core.formats.layouts.converted import (
    CONVERSION_VERSION,
    DIGEST_KEY,
    VERSION_KEY,
    conversion_from,
    conversion_metadata,
)

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "SEFA_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "converted"


def cache_dir() -> Path:
    """Where conversions are kept: ``$SEFA_CACHE_DIR``, else ``<project>/.cache/converted``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def cache_entry(digest: str) -> Path:
    return cache_dir() / f"{digest}.safetensors"


def write_conversion(path: Path, conversion: Conversion, digest: str) -> Path:
    """Write a conversion as a safetensors file that names its source file's sha256 (``converted``)."""
    return write_safetensors(path, conversion.state, conversion_metadata(conversion, digest))


def read_conversion(path: Path) -> tuple[Conversion, dict[str, str]]:
    """A conversion written by ``write_conversion``, and its metadata (the source file's sha256, ...)."""
    tensors, metadata = read_safetensors(path)
    return conversion_from(path, tensors, metadata), metadata


def cached_conversion(digest: str) -> Conversion | None:
    """The cached conversion of the file with this sha256, or None when there is none to trust."""
    entry = cache_entry(digest)
    if not entry.is_file():
        return None
    try:
        conversion, metadata = read_conversion(entry)
    except CheckpointError as error:
        log.warning("ignoring the unreadable cache entry %s", error)
        return None
    if metadata[DIGEST_KEY] != digest or metadata.get(VERSION_KEY) != CONVERSION_VERSION:
        log.warning("cache entry %s does not match its file; converting again", entry)
        return None
    return conversion


def store_conversion(digest: str, conversion: Conversion) -> None:
    """Keep a conversion for the next load; a cache that cannot be written is only logged."""
    try:
        write_conversion(cache_entry(digest), conversion, digest)
    except OSError as error:
        log.warning("could not write the conversion cache in %s: %s", cache_dir(), error)
