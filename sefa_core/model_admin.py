"""Adding a model: check the checkpoint with the safe loader, keep it in checkpoints/, list it in config.yaml.

checkpoints/ and config.yaml are shared by every session, so an upload stays private until it is
saved: it is checked, and then waits, in a scratch folder of its own that only the session holding
the ``PrivateUpload`` knows of. ``add_model`` moves it into checkpoints/ and lists it in
config.yaml under one lock, both or neither; ``discard`` removes it (the app also removes a
session's scratch folder when the session disconnects; garbage collection and the process's exit
are the last resort). Every write is atomic, no kept file is ever replaced, and config.yaml
is rewritten whole after the new list of models has passed ``parse_config``. The app adds only
uploads and files already in checkpoints/, so nobody using a shared server can make it read a path
of their choosing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from sefa_core.errors import CheckpointError, ConfigError, InputError, SefaError
from sefa_core.formats import checkpoint_file, load_checkpoint
from sefa_core.registry import model_path
from sefa_core.shared_files import Stamp, locked, refuse_overwrite, stamp

MAX_CHECKPOINT_UPLOAD_MB = 1024  # StyleGAN2 FFHQ 1024 px is ~360 MB; uploads are held in memory
MIB = 1024 * 1024  # what Streamlit means by a megabyte of upload
CHUNK_BYTES = 1 << 20
# What checkpoints are called: the loader reads any name by its content, but an upload named
# .png or .npy is a mistake to point out, not a file to try.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl", ".tar", ".bin", ".ckpt", ".safetensors")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
SCRATCH_PREFIX = "sefa-upload-"  # one upload's private folder (in a session's, or the system temp folder)
NOT_CONDITIONAL = "none"  # typed for the classes: says the model is not class-conditional (classes: [])
MAX_CLASS_COUNT = 100_000  # a typed class count above this is a typo (ImageNet-21k has 21,841)


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint the safe loader accepted, and what it found inside."""

    path: Path
    description: dict[str, Any]
    classes: tuple[str, ...] | None = None  # the class list it was checked with, for config.yaml


@dataclass(frozen=True, eq=False)
class PrivateUpload:
    """An upload that loaded, waiting in its session's scratch folder until it is saved or discarded.

    Nothing of it is in checkpoints/, so no other session can see it. The folder is removed by
    ``discard``, by ``add_model`` once the file is kept, or when the object is garbage-collected
    (its session ended) or the process exits.
    """

    checked: CheckedCheckpoint  # .path is the private copy
    target: Path  # where it is kept once saved: checkpoints/<safe file name>
    folder: Path  # the private scratch folder holding it
    _removal: weakref.finalize = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_removal", weakref.finalize(self, shutil.rmtree, self.folder, True))

    def discard(self) -> None:
        """Remove the private copy (again is harmless)."""
        self._removal()


def check_checkpoint(path: str | Path, classes: Sequence[str] | None = None) -> CheckedCheckpoint:
    """Load ``path`` with the safe loader on the CPU; a bad file raises one ``CheckpointError`` line.

    ``classes`` is what config.yaml's ``classes:`` would say (a conditional DCGAN needs it).
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    classes = None if classes is None else tuple(classes)
    generator = load_checkpoint(path, "cpu", classes=classes)
    return CheckedCheckpoint(path, generator.describe(), classes)


def parse_classes(text: str) -> tuple[str, ...] | None:
    """What a user typed for a model's classes: names, a count, or "none".

    "" -> None (not said: the loader decides); "none" -> () (not class-conditional: ``classes: []``);
    "10" -> ("0", ..., "9"); "cat, dog" -> ("cat", "dog").
    """
    text = text.strip()
    if not text:
        return None
    if text.lower() == NOT_CONDITIONAL:
        return ()
    if text.isdecimal():
        count = int(text)
        if count > MAX_CLASS_COUNT:
            raise InputError(f"classes: {count:,} is more than {MAX_CLASS_COUNT:,} classes")
        return tuple(map(str, range(count)))
    names = tuple(name.strip() for name in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise InputError(f"classes: expected different, non-empty names between commas, got '{text:.60}'")
    return names


def safe_file_name(name: str) -> str:
    """A file name from anything a user typed or uploaded: no folders, no odd characters."""
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._")
    if not cleaned:
        raise SefaError(f"'{name[:40]}' cannot be used as a file name")
    return cleaned


def model_name(file_name: str) -> str:
    """A config name suggested by a checkpoint's file name: ``ffhq-1024.pkl`` -> ``ffhq-1024``."""
    return Path(safe_file_name(file_name)).stem


def upload_target(file_name: str, config: AppConfig, size: int | None = None) -> Path:
    """Where an upload would be kept, after what its name and size alone can refuse.

    One ``SefaError`` line for a name that is not a checkpoint's, a file over the upload limit,
    or a name already taken in checkpoints/ (a kept file is never replaced).
    """
    target = config.root / CHECKPOINTS_DIR / safe_file_name(file_name)
    if target.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise SefaError(f"{file_name}: not a checkpoint file name; expected {', '.join(CHECKPOINT_SUFFIXES)}")
    if size is not None and size > MAX_CHECKPOINT_UPLOAD_MB * MIB:
        raise SefaError(f"{file_name}: {size:,} bytes is over the {MAX_CHECKPOINT_UPLOAD_MB} MB upload limit")
    if target.exists():
        raise SefaError(
            f"{CHECKPOINTS_DIR}/{target.name} already exists; rename the file or remove the old one"
        )
    return target


def check_upload(
    chunks: Iterable[bytes],
    file_name: str,
    config: AppConfig,
    size: int | None = None,
    classes: Sequence[str] | None = None,
    scratch: Path | None = None,
) -> PrivateUpload:
    """Check an uploaded checkpoint in a private scratch folder; nothing goes to checkpoints/.

    What the name and ``size`` (when known) can refuse is refused before a byte is written. The
    bytes then go to a new folder in ``scratch`` (a session's own; the system temp folder if None),
    where the safe loader reads them; a file that does not load is removed with its folder, and
    one that loads waits there.
    """
    target = upload_target(file_name, config, size)
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch))
    try:
        received = folder / target.name
        _write_at_most(chunks, received, MAX_CHECKPOINT_UPLOAD_MB * MIB, file_name)
        checked = check_checkpoint(received, classes)
    except CheckpointError as error:  # name the upload, not the scratch file
        shutil.rmtree(folder, ignore_errors=True)
        raise CheckpointError(file_name, error.problem) from error
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return PrivateUpload(checked, target, folder)


def keep_upload(upload: PrivateUpload) -> Path:
    """Move a private upload into checkpoints/, atomically, never over a file already there.

    The bytes are first moved to a hidden temp file in checkpoints/ (which no listing shows), then
    renamed into place under the folder's lock, after checking again that no other session has
    kept a file of that name meanwhile. Returns where it is kept; the scratch folder stays until
    ``discard``.
    """
    target = upload.target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".upload", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        shutil.move(upload.checked.path, temp)  # a rename where the scratch folder shares the disk
        with locked(target.parent):
            if target.exists():
                raise SefaError(
                    f"{CHECKPOINTS_DIR}/{target.name} has been kept since this upload was checked; "
                    "rename the file and upload it again"
                )
            os.replace(temp, target)
    except BaseException:
        if upload.checked.path.exists():  # the move did not finish: the private copy is whole
            temp.unlink(missing_ok=True)
        elif temp.exists():
            shutil.move(temp, upload.checked.path)  # still this session's, still private
        raise
    return target


def _write_at_most(chunks: Iterable[bytes], path: Path, limit: int, label: str) -> None:
    """Write ``chunks`` to ``path``; refuse, before writing the chunk that would pass ``limit`` bytes."""
    written = 0
    with path.open("wb") as stream:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise SefaError(f"{label}: over the {limit // MIB} MB upload limit")
            stream.write(chunk)
        stream.flush()
        os.fsync(stream.fileno())


def unlisted_checkpoints(config: AppConfig) -> list[Path]:
    """Checkpoints in checkpoints/ that no model in config.yaml uses: what the app offers to add.

    Files with a checkpoint's suffix and model folders (BigGAN's), not hidden, not links that lead
    out of the folder; the app never reads a path typed by a user.
    """
    folder = (config.root / CHECKPOINTS_DIR).resolve()
    if not folder.is_dir():
        return []
    listed = set()
    for entry in config.models:
        try:
            listed.add(model_path(entry, config).resolve())
        except SefaError:  # a configured folder without its weights: listed, though unusable
            listed.add((config.root / entry.source).resolve())
    found = []
    for item in sorted(folder.iterdir()):
        try:
            weights = checkpoint_file(item).resolve()
        except CheckpointError:  # a folder without a model in it
            continue
        if (
            item.name.startswith(".")
            or not weights.is_file()
            or (item.is_file() and item.suffix.lower() not in CHECKPOINT_SUFFIXES)
            or not weights.is_relative_to(folder)
            or weights in listed
            or item.resolve() in listed
        ):
            continue
        found.append(item)
    return found


def check_unlisted(name: str, config: AppConfig, classes: Sequence[str] | None = None) -> CheckedCheckpoint:
    """The unlisted checkpoint called ``name`` in checkpoints/, checked in place.

    Only a name from ``unlisted_checkpoints`` is accepted, so no other path is ever opened.
    """
    offered = {item.name: item for item in unlisted_checkpoints(config)}
    if name not in offered:
        raise SefaError(f"{CHECKPOINTS_DIR}/{name}: not an unlisted checkpoint in that folder")
    checked = check_checkpoint(offered[name], classes)
    return CheckedCheckpoint(offered[name], checked.description, checked.classes)


def import_checkpoint(
    source: str | Path, config: AppConfig, classes: Sequence[str] | None = None
) -> CheckedCheckpoint:
    """A checkpoint on this machine, checked, and copied into checkpoints/ unless it is there already.

    For scripts run by the machine's owner; the app offers ``check_unlisted`` and uploads instead.
    """
    checked = check_checkpoint(source, classes)
    folder = (config.root / CHECKPOINTS_DIR).resolve()
    if checked.path.resolve().is_relative_to(folder):
        return checked
    with checked.path.open("rb") as stream:
        upload = check_upload(
            iter(lambda: stream.read(CHUNK_BYTES), b""), checked.path.name, config, None, classes
        )
    try:
        return CheckedCheckpoint(keep_upload(upload), checked.description, checked.classes)
    finally:
        upload.discard()


def add_model(
    config_path: str | Path,
    config: AppConfig,
    name: str,
    checkpoint: Path | PrivateUpload,
    display_name: str = "",
    extra: dict[str, Any] | None = None,
    *,
    classes: Sequence[str] | None = None,
    saved_by: str = "",
    overwrite: bool = False,
) -> AppConfig:
    """List ``checkpoint`` in config.yaml as ``name``; returns the new config.

    ``checkpoint`` is a file inside checkpoints/, or a session's ``PrivateUpload``, which is kept
    in checkpoints/ only here: under config.yaml's lock, after the entry has passed every check,
    and taken back out if config.yaml cannot be written, so other sessions see both or neither.
    config.yaml is read, changed and replaced under that lock, so models that two sessions (or two
    replicas) add at once are both kept. The entry is stamped with ``saved_by`` and the time, and
    gets ``classes:`` when ``classes`` is given (``[]``: not class-conditional). A name already
    listed raises ``AlreadySavedError`` (who added it, and when) unless ``overwrite``, which
    replaces that entry in place. The whole new config is validated before the file is replaced,
    so a bad entry (a path outside checkpoints/) changes nothing.
    """
    config_path = Path(config_path)
    upload = checkpoint if isinstance(checkpoint, PrivateUpload) else None
    path = upload.target if upload else checkpoint
    try:
        relative = path.resolve().relative_to(config.root.resolve())
    except ValueError as error:
        raise ConfigError(f"{path}: must be inside {config.root / CHECKPOINTS_DIR}") from error
    now = stamp(saved_by)
    entry: dict[str, Any] = {"name": name.strip(), "source": relative.as_posix()}
    if display_name.strip():
        entry["display_name"] = display_name.strip()
    if classes is not None:
        entry["classes"] = list(classes)
    entry.update(extra or {})
    entry |= {"saved_by": now.saved_by, "saved_at": now.saved_at}
    with locked(config_path):
        if config_path.is_file():
            data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        else:
            data = {"version": CONFIG_VERSION, "models": [_entry_dict(m) for m in builtin_config().models]}
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ConfigError(f"{config_path}: expected a mapping with a list of models")
        models: list[Any] = data["models"]
        same = [i for i, m in enumerate(models) if isinstance(m, dict) and m.get("name") == entry["name"]]
        if same and not overwrite:
            listed = models[same[0]]
            refuse_overwrite(
                f"model '{entry['name']}' in config.yaml",
                Stamp(str(listed.get("saved_by", "")), str(listed.get("saved_at", ""))),
            )
        if same:
            models[same[0]] = entry
        else:
            models.append(entry)
        updated = parse_config(data, config.root, str(config_path))
        text = _leading_comments(config_path) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if upload:
            keep_upload(upload)
        try:
            atomic_write_text(config_path, text)
        except BaseException:
            if upload:
                shutil.move(upload.target, upload.checked.path)  # private again, as it was
            raise
    if upload:
        upload.discard()
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
