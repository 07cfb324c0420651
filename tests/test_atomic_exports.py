"""Exports survive a crash: an interrupted write leaves the old file whole and no temp file behind.

``atomic_write_bytes`` writes a temp file beside the target and renames it into place; every
exporter (codes, recipes, direction sets, the CLI's outputs) must go through it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from sefa_core import atomic
from sefa_core.atomic import atomic_write_bytes, atomic_write_text
from sefa_core.cli import main
from sefa_core.codes import save_codes
from sefa_core.direction_sets import DirectionSet, SavedDirection, save_direction_set
from sefa_core.models.dcgan import DCGANGenerator
from sefa_core.recipe import Recipe, write_recipe

OLD = b"the export a user already has\n" * 100
NEW = b"a new export that never arrives\n" * 100
DIGEST = "cd" * 32
PROCESS_UMASK = 0o022  # a typical login umask: new files are rw-r--r--


class Interrupted(Exception):
    """What the simulated crash raises where a real one would (disk full, power cut, Ctrl-C)."""


def _raiser(error: BaseException) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


class HalfWriter:
    """A file object that writes half of what it is given, then fails: a crash in mid-write."""

    def __init__(self, stream, error: BaseException) -> None:
        self.stream, self.error = stream, error

    def __enter__(self) -> HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def write(self, data: bytes) -> int:
        self.stream.write(data[: len(data) // 2])
        self.stream.flush()
        raise self.error

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def interrupt(monkeypatch: pytest.MonkeyPatch, where: str, error: BaseException) -> None:
    """Make the next atomic write fail at ``where``: in ``write``, ``fsync`` or the final ``replace``."""
    if where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k), error))
    else:
        monkeypatch.setattr(atomic.os, where, _raiser(error))


def listing(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temp files included."""
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture
def umask():
    """Run with a known umask, and put the process's back afterwards."""
    previous = os.umask(PROCESS_UMASK)
    yield PROCESS_UMASK
    os.umask(previous)


# ---- atomic_write_bytes itself -----------------------------------------------------------------
def test_successful_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "export.png"
    target.write_bytes(OLD)
    assert atomic_write_bytes(target, NEW) == target
    assert target.read_bytes() == NEW and listing(tmp_path) == ["export.png"]
    atomic_write_text(target, "text ✓")
    assert target.read_text(encoding="utf-8") == "text ✓"


def test_write_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "results" / "run 1" / "grid.png"
    atomic_write_bytes(target, NEW)
    assert target.read_bytes() == NEW


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["disk-full", "ctrl-c"]
)
def test_interrupted_write_leaves_the_old_file_and_no_temp_file(
    where: str, error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "codes.npy"
    target.write_bytes(OLD)
    interrupt(monkeypatch, where, error)
    with pytest.raises(type(error)):
        atomic_write_bytes(target, NEW)
    assert target.read_bytes() == OLD
    assert listing(tmp_path) == ["codes.npy"], "the temp file is removed"


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_interrupted_first_write_leaves_no_file_at_all(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupt(monkeypatch, where, Interrupted())
    with pytest.raises(Interrupted):
        atomic_write_bytes(tmp_path / "recipe.yaml", NEW)
    assert listing(tmp_path) == []


def test_the_temp_file_is_written_beside_the_target_and_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename within one folder is atomic; from another filesystem (/tmp) it would be a copy."""
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(source, destination) -> None:
        renames.append((Path(source), Path(destination)))
        assert Path(source).read_bytes() == NEW, "the whole export is on disk before the rename"
        real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", spy)
    target = tmp_path / "sets" / "faces.json"
    atomic_write_bytes(target, NEW)
    [(source, destination)] = renames
    assert destination == target and source.parent == target.parent and source != target


def test_new_export_gets_the_permissions_of_any_new_file(tmp_path: Path, umask: int) -> None:
    """Not tempfile's private 0600: a web server or a colleague in the group must be able to read it."""
    target = atomic_write_bytes(tmp_path / "grid.png", NEW)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_replacing_an_export_keeps_its_permissions(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "private.yaml"
    target.write_bytes(OLD)
    target.chmod(0o600)
    atomic_write_bytes(target, NEW)
    assert target.read_bytes() == NEW and stat.S_IMODE(target.stat().st_mode) == 0o600


# ---- every exporter goes through it --------------------------------------------------------------
def _codes(path: Path, seed: int) -> None:
    save_codes(path, torch.from_numpy(np.random.RandomState(seed).randn(3, 8).astype(np.float32)))


def _recipe(path: Path, seed: int) -> None:
    write_recipe(path, Recipe("default", DIGEST, "all", ((0, 3.0),), seed=seed))


def _direction_set(path: Path, seed: int) -> None:
    vector = np.random.RandomState(seed).randn(8)
    direction = SavedDirection("smile", vector / np.linalg.norm(vector), alpha=1.5, semantic=0)
    save_direction_set(path, DirectionSet("default", DIGEST, "all", (direction,)))


EXPORTERS = [
    pytest.param(_codes, "codes.npy", id="save_codes"),
    pytest.param(_recipe, "edit.yaml", id="write_recipe"),
    pytest.param(_direction_set, "faces.json", id="save_direction_set-json"),
    pytest.param(_direction_set, "faces.npz", id="save_direction_set-npz"),
]


@pytest.mark.parametrize(("export", "name"), EXPORTERS)
def test_exporter_interrupted_before_the_rename_leaves_the_previous_export(
    export: Callable[[Path, int], None], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / name
    export(target, 0)
    previous = target.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "replace", _raiser(Interrupted()))
        with pytest.raises(Interrupted):
            export(target, 1)
    assert target.read_bytes() == previous and listing(tmp_path) == [name]
    export(target, 1)
    assert target.read_bytes() != previous, "the export itself does change the file"


def test_cli_factorize_interrupted_keeps_the_previous_npz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "dcgan.pt"
    torch.save({"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, checkpoint)
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\nmodels:\n  - {name: default, source: default}\n")
    output = tmp_path / "out" / "directions.npz"
    argv = ["--config", str(config), "factorize", str(checkpoint), "-o", str(output), "--device", "cpu"]
    assert main(argv) == 0
    previous = output.read_bytes()
    output.write_bytes(previous + b"marker: the previous run's file")
    marked = output.read_bytes()
    monkeypatch.setattr(atomic.os, "replace", _raiser(OSError(28, "No space left on device")))
    assert main(argv) != 0
    assert "No space left on device" in capsys.readouterr().err
    assert output.read_bytes() == marked and listing(output.parent) == ["directions.npz"]
