"""Atomic writes: a crash mid-export leaves the old file or none, never half a file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

NEW_FILE_MODE = 0o666  # what open() asks for; the umask takes its bits off, as for any new file
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it into place.

    The result has the permissions of the file it replaces, or of any new file (``tempfile``'s
    private 0600 would leave exports unreadable to the group that serves them).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temp, _TEMP_FLAGS, NEW_FILE_MODE)
    try:
        with os.fdopen(handle, "wb") as stream:
            if path.exists():
                os.chmod(stream.fileno(), path.stat().st_mode & 0o7777)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``atomic_write_bytes`` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))
