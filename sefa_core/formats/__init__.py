"""From a file to a ``Generator``: container, then layout.

``load_checkpoint`` reads the file safely (``containers``: how bytes become tensors), then asks each
layout (``layouts``: which tensors mean which network) whether it recognises the content; the first
that does builds the generator.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from sefa_core.device import resolve_device
from sefa_core.errors import CheckpointError, SefaError
from sefa_core.formats.containers import RawCheckpoint, read_checkpoint
from sefa_core.formats.layouts import ALL_LAYOUTS
from sefa_core.models.base import Generator

log = logging.getLogger(__name__)


SHOWN_KEYS = 6  # keys listed in an error line


def checkpoint_file(path: str | Path) -> Path:
    """A model path as users give it: a file, or a folder holding ``pytorch_model.bin``."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "pytorch_model.bin"
        if not candidate.is_file():
            raise CheckpointError(path, "a model folder must hold pytorch_model.bin")
        return candidate
    return path


def load_checkpoint(
    path: str | Path, device: str = "auto", classes: Sequence[str] | None = None
) -> Generator:
    """Read ``path`` safely, recognise its layout and build the generator on ``device``.

    ``classes`` names a class-conditional model's classes (config.yaml's ``classes:``); a DCGAN
    needs them to tell a one-hot class input from z, and every model must have that many classes.
    """
    raw = read_checkpoint(checkpoint_file(path))
    if classes is not None:
        raw = dataclasses.replace(raw, classes=tuple(map(str, classes)))
    for layout in ALL_LAYOUTS:
        if layout.matches(raw):
            try:
                generator = layout.build(raw)
            except SefaError:
                raise
            except Exception as error:  # noqa: BLE001 - one line for users, traceback to the log
                log.debug("building %s from %s failed", layout.name, raw.path, exc_info=True)
                raise CheckpointError(raw.path, f"{layout.name}: {describe_build_error(error)}") from error
            if raw.classes is not None and len(raw.classes) != generator.num_classes:
                raise CheckpointError(
                    raw.path,
                    f"{layout.name}: {len(raw.classes)} classes are listed, "
                    f"but the model has {generator.num_classes}",
                )
            generator.class_names = raw.classes or generator.class_names
            generator.digest = raw.digest
            generator.source_format = layout.name
            generator.source_path = str(raw.path)
            return generator.to(resolve_device(device).device).eval()
    raise CheckpointError(raw.path, describe_unknown(raw))


def describe_build_error(error: Exception) -> str:
    """A builder's own message when it raised one on purpose; else what kind of failure it was."""
    text = str(error).strip()
    if isinstance(error, (ValueError, AssertionError)) and text:
        return text
    return f"its tensors do not have the structure this format needs ({type(error).__name__}: {text})"


def describe_unknown(raw: RawCheckpoint) -> str:
    """Why no layout took the file, naming a generator stored under a key its format does not use."""
    problem = f"unknown layout ({describe_content(raw.content)})"
    if not isinstance(raw.content, dict):
        return problem
    nested = {key: value for key, value in raw.content.items() if isinstance(value, dict) and value}
    for key, value in nested.items():
        inner = dataclasses.replace(raw, content=value)
        if found := next((layout.name for layout in ALL_LAYOUTS if layout.matches(inner)), None):
            return f"{problem}: '{key}' holds a generator in the {found} layout, which never stores it there"
    if nested:
        key, value = max(nested.items(), key=lambda item: len(item[1]))
        return f"{problem}: '{key}' holds keys {_key_list(value)}, which match no supported layout"
    return problem


def describe_content(content: object) -> str:
    """A short account of unrecognised content, for the error line."""
    if isinstance(content, dict):
        return f"top-level keys: {_key_list(content)}" if content else "an empty dict"
    return f"a {type(content).__name__}"


def _key_list(mapping: dict) -> str:
    keys = sorted(map(str, mapping))
    return ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
