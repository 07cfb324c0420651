"""Models by name or path: what is configured, what is available, and loading it.

``load_generator("default")``, ``load_generator("ffhq")`` (a ``config.yaml`` name) and
``load_generator("checkpoints/my.pkl")`` (any path) all give a ``Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sefa_core.config import DEFAULT_SOURCE, AppConfig, ModelEntry, load_config
from sefa_core.default_model import default_checkpoint_path
from sefa_core.errors import InputError, SefaError
from sefa_core.formats import checkpoint_file, load_checkpoint
from sefa_core.models.base import Generator


@dataclass(frozen=True)
class ModelStatus:
    """A configured model and whether it can be loaded, with the reason when not."""

    entry: ModelEntry
    path: Path | None  # the checkpoint file, when it could be found
    available: bool
    reason: str = ""


def model_path(entry: ModelEntry, config: AppConfig) -> Path:
    """The checkpoint file behind ``entry`` (the packaged file for the default)."""
    if entry.source == DEFAULT_SOURCE:
        return default_checkpoint_path()
    source = config.source_path(entry)
    assert source is not None
    return checkpoint_file(source)


def model_statuses(config: AppConfig | None = None) -> list[ModelStatus]:
    """Every configured model; missing files are listed as unavailable, never raised."""
    config = config or load_config()
    statuses = []
    for entry in config.models:
        try:
            path = model_path(entry, config)
        except SefaError as error:
            statuses.append(ModelStatus(entry, None, False, str(error)))
            continue
        if path.is_file():
            statuses.append(ModelStatus(entry, path, True))
        else:
            statuses.append(ModelStatus(entry, path, False, f"{path}: file not found"))
    return statuses


def resolve_model(
    name_or_path: str | Path, config: AppConfig | None = None
) -> tuple[Path, ModelEntry | None]:
    """A config name or a path -> (checkpoint file, config entry or None)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        return checkpoint_file(candidate), None
    config = config or load_config()
    entry = config.entry(str(name_or_path))
    return model_path(entry, config), entry


def load_generator(
    name_or_path: str | Path = "default",
    device: str = "auto",
    config: AppConfig | None = None,
    *,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> Generator:
    """Load a model by config name or checkpoint path, safely, on ``device``.

    ``classes`` (names) or ``num_classes`` (named 0..N-1) say what config.yaml's ``classes:`` says,
    and take its place: a class-conditional DCGAN needs them to tell its class input from z.
    """
    path, entry = resolve_model(name_or_path, config)
    return load_checkpoint(path, device, classes=class_list(entry, classes, num_classes))


def class_list(
    entry: ModelEntry | None, classes: Sequence[str] | None = None, num_classes: int | None = None
) -> tuple[str, ...] | None:
    """The class names to load a model with: given ones, else numbered ones, else config.yaml's."""
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise InputError(f"num_classes must be a whole number >= 0, got {num_classes!r}")
        if classes is not None and len(classes) != num_classes:
            raise InputError(f"num_classes={num_classes} but {len(classes)} class names are given")
    if classes is not None:
        if isinstance(classes, str):
            raise InputError("classes must be a list of names, not one string")
        return tuple(map(str, classes))
    if num_classes is not None:
        return tuple(map(str, range(num_classes)))
    return entry.classes if entry else None
