"""Adding a model: check the checkpoint with the safe loader, keep it in checkpoints/, list it in config.yaml.

Nothing is kept before the loader has built a generator from the file, and every write is atomic:
an upload is written beside its final name and renamed into place only once it loads, and
config.yaml is rewritten whole, after the new list of models has passed ``parse_config``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sefa_core.atomic import atomic_write_text
from sefa_core.config import (
    CHECKPOINTS_DIR,
    CONFIG_VERSION,
    DEFAULT_SOURCE,
    AppConfig,
    ModelEntry,
    builtin_config,
    parse_config,
)
from sefa_core.errors import CheckpointError, ConfigError, SefaError
from sefa_core.formats import checkpoint_file, load_checkpoint

MAX_CHECKPOINT_UPLOAD_MB = 1024  # StyleGAN2 FFHQ 1024 px is ~360 MB; uploads are held in memory
CHUNK_BYTES = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint the safe loader accepted, and what it found inside."""

    path: Path
    description: dict[str, Any]


def check_checkpoint(path: str | Path) -> CheckedCheckpoint:
    """Load ``path`` with the safe loader on the CPU; a bad file raises one ``CheckpointError`` line."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    generator = load_checkpoint(path, "cpu")
    return CheckedCheckpoint(path, generator.describe())


def safe_file_name(name: str) -> str:
    """A file name from anything a user typed or uploaded: no folders, no odd characters."""
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._")
    if not cleaned:
        raise SefaError(f"'{name[:40]}' cannot be used as a file name")
    return cleaned


def model_name(file_name: str) -> str:
    """A config name suggested by a checkpoint's file name: ``ffhq-1024.pkl`` -> ``ffhq-1024``."""
    return Path(safe_file_name(file_name)).stem


def store_upload(chunks: Iterable[bytes], file_name: str, config: AppConfig) -> CheckedCheckpoint:
    """Write an uploaded checkpoint into checkpoints/ if, and only if, it loads.

    The bytes go to a hidden file beside the target; a file that fails to load is deleted and the
    error raised; an existing file of the same name is never replaced.
    """
    folder = config.root / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_file_name(file_name)
    if target.exists():
        raise SefaError(
            f"{CHECKPOINTS_DIR}/{target.name} already exists; rename the file or remove the old one"
        )
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".upload", dir=folder)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        checked = check_checkpoint(temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return CheckedCheckpoint(target, checked.description)


def import_checkpoint(source: str | Path, config: AppConfig) -> CheckedCheckpoint:
    """A checkpoint on this machine, checked, and copied into checkpoints/ unless it is there already."""
    checked = check_checkpoint(source)
    folder = (config.root / CHECKPOINTS_DIR).resolve()
    if checked.path.resolve().is_relative_to(folder):
        return checked
    with checked.path.open("rb") as stream:
        return store_upload(iter(lambda: stream.read(CHUNK_BYTES), b""), checked.path.name, config)


def add_model(
    config_path: str | Path,
    config: AppConfig,
    name: str,
    checkpoint: Path,
    display_name: str = "",
    extra: dict[str, Any] | None = None,
) -> AppConfig:
    """List ``checkpoint`` (inside checkpoints/) in config.yaml as ``name``; returns the new config.

    The whole new config is validated before the file is replaced, so a bad entry (a name used
    twice, a path outside checkpoints/) changes nothing.
    """
    config_path = Path(config_path)
    if config_path.is_file():
        data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    else:
        data = {"version": CONFIG_VERSION, "models": [_entry_dict(m) for m in builtin_config().models]}
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ConfigError(f"{config_path}: expected a mapping with a list of models")
    try:
        relative = checkpoint.resolve().relative_to(config.root.resolve())
    except ValueError as error:
        raise ConfigError(f"{checkpoint}: must be inside {config.root / CHECKPOINTS_DIR}") from error
    entry: dict[str, Any] = {"name": name.strip(), "source": relative.as_posix()}
    if display_name.strip():
        entry["display_name"] = display_name.strip()
    entry.update(extra or {})
    data["models"].append(entry)
    updated = parse_config(data, config.root, str(config_path))
    header = _leading_comments(config_path)
    atomic_write_text(config_path, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return updated


def _entry_dict(entry: ModelEntry) -> dict[str, Any]:
    """The YAML of an entry of the built-in config (only the default model)."""
    assert entry.source == DEFAULT_SOURCE, "only the built-in default is written from a ModelEntry"
    return {"name": entry.name, "source": entry.source}


def _leading_comments(path: Path) -> str:
    """The comment block at the top of config.yaml, kept when the file is rewritten."""
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)
