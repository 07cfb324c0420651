"""``config.yaml`` -> validated, frozen dataclasses.

Every error names the key and what was expected. Model files must live under ``checkpoints/``
and code files under ``latent_codes/`` (paths that escape them are refused), except the
packaged default model, whose source is the word ``default``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sefa_core.errors import ConfigError
from sefa_core.validation import expect_mapping, read_small_file, reject_unknown_keys

CONFIG_VERSION = 1
DEFAULT_SOURCE = "default"
CHECKPOINTS_DIR = "checkpoints"
CODES_DIR = "latent_codes"
CONFIG_ENV = "SEFA_CONFIG"
DEFAULT_NUM_SEMANTICS = 10
MAX_NUM_SEMANTICS = 64
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SliderRange:
    """Range and step of every semantic slider for one model."""

    min: float = -5.0
    max: float = 5.0
    step: float = 0.1


@dataclass(frozen=True)
class ModelEntry:
    """One model in ``config.yaml``."""

    name: str
    source: str  # "default" or a path under checkpoints/
    display_name: str = ""
    layer_presets: dict[str, str] = field(default_factory=lambda: {"all": "all"})
    trunc_psi: float = 1.0
    trunc_layers: int | None = None
    slider: SliderRange = field(default_factory=SliderRange)
    num_semantics: int = DEFAULT_NUM_SEMANTICS
    codes: str = ""  # a .npy under latent_codes/, or "" for none
    saved_by: str = ""  # who added it (the Models page writes a session's label), "" if typed in
    saved_at: str = ""  # when, ISO 8601 UTC
    classes: tuple[str, ...] | None = None  # a class-conditional model's class names; None: not listed

    @property
    def label(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class AppConfig:
    """The whole ``config.yaml``: where it lives and the models it lists, in order."""

    root: Path  # the folder holding config.yaml; relative paths start here
    models: tuple[ModelEntry, ...]

    def entry(self, name: str) -> ModelEntry:
        for model in self.models:
            if model.name == name:
                return model
        names = ", ".join(m.name for m in self.models)
        raise ConfigError(f"no model named '{name}' in config.yaml (models: {names})")

    def source_path(self, entry: ModelEntry) -> Path | None:
        """The checkpoint path of ``entry``; None for the packaged default."""
        if entry.source == DEFAULT_SOURCE:
            return None
        return self.root / entry.source

    def codes_path(self, entry: ModelEntry) -> Path | None:
        return self.root / entry.codes if entry.codes else None


_TOP_KEYS = {"version", "models"}
_MODEL_KEYS = {
    "name",
    "source",
    "display_name",
    "layer_presets",
    "trunc_psi",
    "trunc_layers",
    "slider",
    "num_semantics",
    "codes",
    "saved_by",
    "saved_at",
    "classes",
}
_SLIDER_KEYS = {"min", "max", "step"}


def default_config_path() -> Path:
    """``$SEFA_CONFIG``, else ``config.yaml`` in the working folder, else the repository's."""
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    local = Path.cwd() / "config.yaml"
    return local if local.is_file() else Path(__file__).resolve().parents[1] / "config.yaml"


def builtin_config(root: Path | None = None) -> AppConfig:
    """The config used when no ``config.yaml`` exists: the packaged default model only."""
    return AppConfig(root or Path.cwd(), (ModelEntry(name="default", source=DEFAULT_SOURCE),))


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read and validate ``config.yaml``; a missing default file means the built-in config."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file() and path == default_config_path() and CONFIG_ENV not in os.environ:
        return builtin_config()
    raw = read_small_file(path, MAX_CONFIG_BYTES, "config file", ConfigError)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from error
    return parse_config(data, path.resolve().parent, str(path))


def parse_config(data: Any, root: Path, label: str = "config.yaml") -> AppConfig:
    """Validate already-parsed YAML."""
    mapping = expect_mapping(data, label, ConfigError)
    reject_unknown_keys(mapping, _TOP_KEYS, label, ConfigError)
    version = mapping.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"{label}: version: expected {CONFIG_VERSION}, got {version!r}")
    models = mapping.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{label}: models: expected a non-empty list of models")
    entries = tuple(_model(item, root, f"{label}: models[{i}]") for i, item in enumerate(models))
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(f"{label}: models: the name '{entry.name}' is used twice")
        seen.add(entry.name)
    return AppConfig(root, entries)


def _model(item: Any, root: Path, where: str) -> ModelEntry:
    mapping = expect_mapping(item, where, ConfigError)
    reject_unknown_keys(mapping, _MODEL_KEYS, where, ConfigError)
    name = _text(mapping, "name", where, required=True)
    where = f"{where} ('{name}')"
    source = _text(mapping, "source", where, required=True)
    if source != DEFAULT_SOURCE:
        _inside(root, source, CHECKPOINTS_DIR, f"{where}.source")
    codes = _text(mapping, "codes", where)
    if codes:
        _inside(root, codes, CODES_DIR, f"{where}.codes")
        if not codes.endswith(".npy"):
            raise ConfigError(f"{where}.codes: expected a .npy file, got '{codes}'")
    presets = mapping.get("layer_presets", {"all": "all"})
    if (
        not isinstance(presets, dict)
        or not presets
        or not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in presets.items())
    ):
        raise ConfigError(f"{where}.layer_presets: expected a mapping of names to layer specs")
    trunc_psi = _number(mapping, "trunc_psi", where, 1.0)
    if not 0.0 <= trunc_psi <= 1.0:
        raise ConfigError(f"{where}.trunc_psi: expected a number in [0, 1], got {trunc_psi}")
    trunc_layers = mapping.get("trunc_layers")
    if trunc_layers is not None and (
        not isinstance(trunc_layers, int) or isinstance(trunc_layers, bool) or trunc_layers < 0
    ):
        raise ConfigError(f"{where}.trunc_layers: expected a whole number >= 0 or null")
    num_semantics = mapping.get("num_semantics", DEFAULT_NUM_SEMANTICS)
    if (
        not isinstance(num_semantics, int)
        or isinstance(num_semantics, bool)
        or not (1 <= num_semantics <= MAX_NUM_SEMANTICS)
    ):
        raise ConfigError(f"{where}.num_semantics: expected a whole number from 1 to {MAX_NUM_SEMANTICS}")
    return ModelEntry(
        name=name,
        source=source,
        display_name=_text(mapping, "display_name", where),
        layer_presets=dict(presets),
        trunc_psi=trunc_psi,
        trunc_layers=trunc_layers,
        slider=_slider(mapping.get("slider", {}), f"{where}.slider"),
        num_semantics=num_semantics,
        codes=codes,
        saved_by=_text(mapping, "saved_by", where),
        saved_at=_text(mapping, "saved_at", where),
        classes=_classes(mapping, where),
    )


def _classes(mapping: dict, where: str) -> tuple[str, ...] | None:
    """``classes: [names…]`` in index order; ``[]`` says the model is not class-conditional."""
    if "classes" not in mapping:
        return None
    value = mapping["classes"]
    if not isinstance(value, list) or not all(
        isinstance(name, str | int) and not isinstance(name, bool) for name in value
    ):
        raise ConfigError(f"{where}.classes: expected a list of class names, got {value!r:.80}")
    names = [str(name).strip() for name in value]
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"{where}.classes: class names must be non-empty and all different")
    return tuple(names)


def _slider(item: Any, where: str) -> SliderRange:
    mapping = expect_mapping(item, where, ConfigError)
    reject_unknown_keys(mapping, _SLIDER_KEYS, where, ConfigError)
    defaults = SliderRange()
    low = _number(mapping, "min", where, defaults.min)
    high = _number(mapping, "max", where, defaults.max)
    step = _number(mapping, "step", where, defaults.step)
    if not low < high or not 0 < step <= high - low:
        raise ConfigError(f"{where}: expected min < max and 0 < step <= max - min")
    return SliderRange(low, high, step)


def _text(mapping: dict, key: str, where: str, required: bool = False) -> str:
    value = mapping.get(key, "")
    if required and (value is None or value == ""):
        raise ConfigError(f"{where}.{key}: required text is missing")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected text, got {type(value).__name__}")
    return value.strip()


def _number(mapping: dict, key: str, where: str, default: float) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _inside(root: Path, relative: str, folder: str, where: str) -> None:
    """Refuse paths that escape ``root/folder`` (``../../etc/passwd``, absolute paths, links out)."""
    base = (root / folder).resolve()
    target = (root / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(base):
        raise ConfigError(f"{where}: '{relative}' must be a path inside {folder}/")
