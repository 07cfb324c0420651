"""Checks shared by the YAML and JSON readers (config, recipes, direction sets): one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sefa_core.errors import SefaError

MAX_KEY_SHOWN = 40


def expect_mapping(value: Any, where: str, error: type[SefaError] = SefaError) -> dict:
    """``value`` if it is a mapping, else ``error`` naming ``where``."""
    if not isinstance(value, dict):
        raise error(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def reject_unknown_keys(
    mapping: dict, allowed: set[str], where: str, error: type[SefaError] = SefaError
) -> None:
    """Refuse the first key not in ``allowed``, listing the allowed ones."""
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        shown = unknown[0][:MAX_KEY_SHOWN]
        raise error(f"{where}: unknown key '{shown}' (allowed: {', '.join(sorted(allowed))})")


def read_small_file(path: Path, max_bytes: int, what: str, error: type[SefaError] = SefaError) -> bytes:
    """The bytes of a user's file (config, recipe, direction set), refused if absent or too large."""
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    if path.stat().st_size > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes")
    return path.read_bytes()
