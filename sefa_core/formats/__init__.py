"""One loader per on-disk layout; each turns a safely read checkpoint into a ``Generator``.

``load_checkpoint`` reads the file (see ``container``), then asks each layout (every module in
``LAYOUT_MODULES`` exports ``LAYOUTS``) whether it recognises the content; the first that does
builds the generator.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sefa_core.device import resolve_device
from sefa_core.errors import CheckpointError, SefaError
from sefa_core.formats.container import RawCheckpoint, read_checkpoint
from sefa_core.models.base import Generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """An on-disk layout: how to recognise it and how to build a generator from it."""

    name: str  # shown to users, e.g. "genforce .pth"
    matches: Callable[[RawCheckpoint], bool]
    build: Callable[[RawCheckpoint], Generator]


# Tried in this order; the first whose ``matches`` is true builds the generator.
LAYOUT_MODULES = ("dcgan_tutorial", "genforce", "rosinality", "nvidia", "biggan")


def _layouts() -> tuple[Layout, ...]:
    return tuple(
        layout
        for name in LAYOUT_MODULES
        for layout in importlib.import_module(f"sefa_core.formats.{name}").LAYOUTS
    )


def unwrap_state_dict(content: Any, wrapper_keys: Sequence[str]) -> dict[str, Any] | None:
    """The state dict under the first of ``wrapper_keys`` present, else ``content`` itself if a dict."""
    if not isinstance(content, dict):
        return None
    for key in wrapper_keys:
        if isinstance(content.get(key), dict):
            return content[key]
    return content


def checkpoint_file(path: str | Path) -> Path:
    """A model path as users give it: a file, or a folder holding ``pytorch_model.bin``."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "pytorch_model.bin"
        if not candidate.is_file():
            raise CheckpointError(path, "a model folder must hold pytorch_model.bin")
        return candidate
    return path


def load_checkpoint(path: str | Path, device: str = "auto") -> Generator:
    """Read ``path`` safely, recognise its layout and build the generator on ``device``."""
    raw = read_checkpoint(checkpoint_file(path))
    for layout in _layouts():
        if layout.matches(raw):
            try:
                generator = layout.build(raw)
            except SefaError:
                raise
            except Exception as error:  # noqa: BLE001 - one line for users, traceback to the log
                log.debug("building %s from %s failed", layout.name, raw.path, exc_info=True)
                raise CheckpointError(raw.path, f"{layout.name}: {error}") from error
            generator.digest = raw.digest
            generator.source_format = layout.name
            generator.source_path = str(raw.path)
            return generator.to(resolve_device(device).device).eval()
    raise CheckpointError(raw.path, f"unknown layout ({describe_content(raw.content)})")


def describe_content(content: object) -> str:
    """A short account of unrecognised content, for the error line."""
    if isinstance(content, dict):
        keys = sorted(map(str, content))
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        return f"top-level keys: {shown}" if keys else "an empty dict"
    return f"a {type(content).__name__}"
