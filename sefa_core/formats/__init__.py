"""From a file to a ``Generator``: container, then layout.

``load_checkpoint`` reads the file safely (``containers``: how bytes become tensors), then asks each
layout (``layouts``: which tensors mean which network) whether it recognises the content; the first
that does builds the generator. A layout that converts (TensorFlow pickles) hands back a
``Conversion``, which ``cache`` keeps under the file's sha256: the next load builds from it directly.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sefa_core.device import resolve_device
from sefa_core.errors import CheckpointError, SefaError
from sefa_core.formats.cache import cached_conversion, store_conversion, write_conversion
from sefa_core.formats.containers import RawCheckpoint, file_digest, read_checkpoint
from sefa_core.formats.layouts import ALL_LAYOUTS, build_conversion
from sefa_core.formats.layouts.common import Conversion
from sefa_core.models.base import Generator

log = logging.getLogger(__name__)


SHOWN_KEYS = 6  # keys listed in an error line
T = TypeVar("T")


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
    file = checkpoint_file(path)
    digest = file_digest(file)
    conversion = cached_conversion(digest)
    if conversion is None:
        raw = read_checkpoint(file, digest)
        if classes is not None:
            raw = dataclasses.replace(raw, classes=tuple(map(str, classes)))
        layout = next((layout for layout in ALL_LAYOUTS if layout.matches(raw)), None)
        if layout is None:
            raise CheckpointError(raw.path, describe_unknown(raw))
        name = layout.name
        if layout.convert is None:
            generator = _guarded(file, name, lambda: layout.build(raw))
        else:
            conversion = _guarded(file, name, lambda: layout.convert(raw))
            generator = _guarded(file, name, lambda: build_conversion(conversion, file))
            store_conversion(digest, conversion)  # once it builds: the cache never holds a refusal
    else:
        name = conversion.source_format
        generator = _guarded(file, name, lambda: build_conversion(conversion, file))
    if classes is not None and len(classes) != generator.num_classes:
        raise CheckpointError(
            file, f"{name}: {len(classes)} classes are listed, but the model has {generator.num_classes}"
        )
    generator.class_names = tuple(map(str, classes)) if classes else generator.class_names
    generator.digest = digest
    generator.source_format = name
    generator.source_path = str(file)
    return generator.to(resolve_device(device).device).eval()


def _guarded(path: Path, layout_name: str, build: Callable[[], T]) -> T:
    """``build()``, its unexpected failures as one line naming the file and the layout."""
    try:
        return build()
    except SefaError:
        raise
    except Exception as error:  # noqa: BLE001 - one line for users, traceback to the log
        log.debug("building %s from %s failed", layout_name, path, exc_info=True)
        raise CheckpointError(path, f"{layout_name}: {describe_build_error(error)}") from error


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


def convert_file(path: str | Path, output: str | Path) -> Conversion:
    """Write the converted generator of a file that needs converting (a TensorFlow pickle) as safetensors.

    The tensors are named as in the layout it converts to (``Conversion.target``); the metadata
    holds the source file's sha256, that layout, its build options and the source format
    (``cache.write_conversion``). The conversion cache is used and filled as by ``load_checkpoint``.
    """
    file = checkpoint_file(path)
    digest = file_digest(file)
    conversion = cached_conversion(digest)
    if conversion is None:
        raw = read_checkpoint(file, digest)
        layout = next((layout for layout in ALL_LAYOUTS if layout.matches(raw)), None)
        if layout is None:
            raise CheckpointError(file, describe_unknown(raw))
        if layout.convert is None:
            raise CheckpointError(file, f"a {layout.name} loads as it is; only TensorFlow pickles convert")
        conversion = _guarded(file, layout.name, lambda: layout.convert(raw))
        _guarded(file, layout.name, lambda: build_conversion(conversion, file))  # refuse what cannot build
        store_conversion(digest, conversion)
    write_conversion(Path(output), conversion, digest)
    return conversion
