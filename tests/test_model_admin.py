"""Adding a model: only a checkpoint the safe loader accepts is kept, and config.yaml stays valid."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch

from sefa_core import model_admin
from sefa_core.config import load_config
from sefa_core.errors import AlreadySavedError, CheckpointError, ConfigError, SefaError
from sefa_core.models.dcgan import DCGANGenerator

CONFIG = """# my models
# (kept when the app adds one)
version: 1
models:
  - name: default
    source: default
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def tiny_checkpoint(path: Path) -> Path:
    """A 16x16 DCGAN with random weights, in the PyTorch tutorial's layout."""
    torch.manual_seed(0)
    torch.save({"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, path)
    return path


def test_an_upload_that_loads_is_kept_in_checkpoints(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    checked = model_admin.store_upload([source.read_bytes()], "my tiny.pt", load_config(root / "config.yaml"))
    assert checked.path == root / "checkpoints" / "my_tiny.pt"
    assert checked.description["architecture"] == "dcgan" and checked.description["resolution"] == 16
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["my_tiny.pt"]


def test_an_upload_that_does_not_load_leaves_nothing_behind(root):
    config = load_config(root / "config.yaml")
    with pytest.raises(CheckpointError):
        model_admin.store_upload([b"PK\x03\x04 not really a zip"], "broken.pt", config)
    assert list((root / "checkpoints").iterdir()) == []


def test_an_upload_never_replaces_a_kept_checkpoint(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    config = load_config(root / "config.yaml")
    model_admin.store_upload([source.read_bytes()], "tiny.pt", config)
    with pytest.raises(SefaError, match="already exists"):
        model_admin.store_upload([source.read_bytes()], "tiny.pt", config)


def test_a_checkpoint_elsewhere_is_copied_in_only_after_it_loads(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    checked = model_admin.import_checkpoint(
        tiny_checkpoint(outside / "tiny.pt"), load_config(root / "config.yaml")
    )
    assert checked.path == root / "checkpoints" / "tiny.pt" and checked.path.read_bytes()
    (outside / "bad.pt").write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(CheckpointError):
        model_admin.import_checkpoint(outside / "bad.pt", load_config(root / "config.yaml"))
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["tiny.pt"]


def test_a_checkpoint_already_in_checkpoints_is_used_in_place(root):
    (root / "checkpoints").mkdir()
    inside = tiny_checkpoint(root / "checkpoints" / "tiny.pt")
    assert model_admin.import_checkpoint(inside, load_config(root / "config.yaml")).path == inside


def test_an_added_model_is_listed_and_the_comments_stay(root):
    (root / "checkpoints").mkdir()
    checkpoint = tiny_checkpoint(root / "checkpoints" / "tiny.pt")
    updated = model_admin.add_model(
        root / "config.yaml", load_config(root / "config.yaml"), "tiny", checkpoint, "Tiny"
    )
    assert [m.name for m in updated.models] == ["default", "tiny"]
    reread = load_config(root / "config.yaml")
    assert reread.entry("tiny").source == "checkpoints/tiny.pt" and reread.entry("tiny").label == "Tiny"
    assert (root / "config.yaml").read_text().startswith("# my models\n# (kept when the app adds one)\n")


@pytest.mark.parametrize(("name", "error"), [("default", AlreadySavedError), ("", ConfigError)])
def test_a_bad_entry_leaves_config_yaml_untouched(root, name, error):
    (root / "checkpoints").mkdir()
    checkpoint = tiny_checkpoint(root / "checkpoints" / "tiny.pt")
    with pytest.raises(error):
        model_admin.add_model(root / "config.yaml", load_config(root / "config.yaml"), name, checkpoint)
    assert (root / "config.yaml").read_text() == CONFIG


def test_a_checkpoint_outside_checkpoints_cannot_be_listed(root, tmp_path_factory):
    outside = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    with pytest.raises(ConfigError):
        model_admin.add_model(root / "config.yaml", load_config(root / "config.yaml"), "tiny", outside)


@pytest.mark.parametrize(
    ("given", "expected"), [("../../etc/passwd", "passwd"), ("my model (v2).pkl", "my_model_v2_.pkl")]
)
def test_file_names_from_users_stay_in_the_folder(given, expected):
    assert model_admin.safe_file_name(given) == expected


def test_a_model_name_is_suggested_from_the_file_name():
    assert model_admin.model_name("ffhq-1024.pkl") == "ffhq-1024"


# ---- config.yaml is shared by every session and every replica ---------------------------------------
WRITERS = 4
MODELS_PER_WRITER = 6


def _add_models(root: Path, writer: int, start: multiprocessing.synchronize.Barrier) -> None:
    """One replica adding models to the shared config.yaml (runs in a process of its own)."""
    config = load_config(root / "config.yaml")  # read once, as a page does; add_model reads again
    start.wait()
    for k in range(MODELS_PER_WRITER):
        checkpoint = root / "checkpoints" / f"w{writer}-{k}.pt"
        model_admin.add_model(
            root / "config.yaml", config, checkpoint.stem, checkpoint, saved_by=f"w{writer}"
        )


def test_replicas_adding_models_at_once_lose_none(root):
    (root / "checkpoints").mkdir()
    for writer in range(WRITERS):
        for k in range(MODELS_PER_WRITER):
            (root / "checkpoints" / f"w{writer}-{k}.pt").touch()  # listing does not open the file
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=_add_models, args=(root, w, start)) for w in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    names = [m.name for m in load_config(root / "config.yaml").models]
    expected = [f"w{w}-{k}" for w in range(WRITERS) for k in range(MODELS_PER_WRITER)]
    assert names[0] == "default" and sorted(names[1:]) == sorted(expected)


def test_an_added_model_says_who_added_it_and_when(root):
    (root / "checkpoints").mkdir()
    checkpoint = tiny_checkpoint(root / "checkpoints" / "tiny.pt")
    before = datetime.now(UTC).replace(microsecond=0)
    model_admin.add_model(
        root / "config.yaml", load_config(root / "config.yaml"), "tiny", checkpoint, saved_by="session 3fa2c1"
    )
    entry = load_config(root / "config.yaml").entry("tiny")
    assert entry.saved_by == "session 3fa2c1"
    assert before <= datetime.fromisoformat(entry.saved_at) <= datetime.now(UTC) + timedelta(seconds=1)
    assert datetime.fromisoformat(entry.saved_at).utcoffset() == timedelta(0)


def test_a_listed_name_is_never_replaced_silently_and_replaced_when_asked(root):
    (root / "checkpoints").mkdir()
    first = tiny_checkpoint(root / "checkpoints" / "first.pt")
    second = tiny_checkpoint(root / "checkpoints" / "second.pt")
    config = load_config(root / "config.yaml")
    model_admin.add_model(root / "config.yaml", config, "faces", first, saved_by="session aaaaaa")
    kept = (root / "config.yaml").read_text()
    with pytest.raises(
        AlreadySavedError,
        match=r"model 'faces' in config.yaml already exists \(saved by session aaaaaa at 20",
    ):
        model_admin.add_model(root / "config.yaml", config, "faces", second, saved_by="session bbbbbb")
    assert (root / "config.yaml").read_text() == kept
    updated = model_admin.add_model(
        root / "config.yaml", config, "faces", second, saved_by="session bbbbbb", overwrite=True
    )
    assert [m.name for m in updated.models] == ["default", "faces"]
    entry = load_config(root / "config.yaml").entry("faces")
    assert (entry.source, entry.saved_by) == ("checkpoints/second.pt", "session bbbbbb")
