"""Files every session and every replica shares: written under a lock, stamped with who and when.

Saved direction sets and config.yaml live on one disk that all sessions (and all ``sefa serve``
replicas) see. Each read-modify-write takes a file lock beside the file, so two replicas saving at
once lose nothing, and each saved item carries ``saved_by`` (a session's label) and ``saved_at``
(ISO 8601, UTC). Saving over a name someone already used raises ``AlreadySavedError`` unless the
caller passes ``overwrite=True`` after asking.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from sefa_core.errors import AlreadySavedError, SefaError

LOCK_TIMEOUT_S = 30.0  # a write holds the lock for milliseconds; this long means something is stuck
MAX_LABEL_LENGTH = 60
SESSION_LABEL_HEX = 3  # "session 3fa2c1": tells sessions apart without naming anyone
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Stamp:
    """Who saved a shared item, and when (ISO 8601 UTC, to the second)."""

    saved_by: str = ""
    saved_at: str = ""

    def describe(self) -> str:
        """``saved by session 3fa2c1 at 2026-12-03T14:00:00+00:00``, or "" for an item without one."""
        if not self.saved_by and not self.saved_at:
            return ""
        return f"saved by {self.saved_by or UNKNOWN} at {self.saved_at or 'an unknown time'}"


def stamp(saved_by: str) -> Stamp:
    """A stamp for something saved now by ``saved_by`` (trimmed to one short line)."""
    label = " ".join(str(saved_by).split())[:MAX_LABEL_LENGTH] or UNKNOWN
    return Stamp(label, datetime.now(UTC).isoformat(timespec="seconds"))


def session_label() -> str:
    """A fresh label for one session, kept in its state: ``session 3fa2c1``."""
    return f"session {secrets.token_hex(SESSION_LABEL_HEX)}"


def lock_path(path: str | Path) -> Path:
    """The lock file beside ``path`` (a file, or a folder locked whole): hidden, and outside a locked
    folder, so no listing of it ever shows the lock."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold the lock of ``path`` (across threads and processes on one disk) while the block runs."""
    target = lock_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(target, timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout as error:
        raise SefaError(f"{path}: locked by another session for {LOCK_TIMEOUT_S:.0f} s; try again") from error


def refuse_overwrite(what: str, existing: Stamp) -> None:
    """Raise the one-line ``AlreadySavedError`` for ``what``, naming who saved it and when."""
    saved = existing.describe() or "saved before"
    raise AlreadySavedError(f"{what} already exists ({saved}); choose another name or replace it")
