"""Adding a model: only a checkpoint the safe loader accepts is kept, and config.yaml stays valid.

An upload waits in its session's private scratch folder until it is added: checkpoints/ and
config.yaml, which every session sees, change together or not at all.
"""

from __future__ import annotations

import gc
import multiprocessing
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch
from test_dcgan_family import CLASS_NAMES, conditional_file

from sefa_core import model_admin
from sefa_core.config import load_config
from sefa_core.errors import AlreadySavedError, CheckpointError, ConfigError, InputError, SefaError
from sefa_core.models.dcgan import DCGANGenerator

CONFIG = """# my models
# (kept when the app adds one)
version: 1
models:
  - name: default
    source: default
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    """A config.yaml with the default model; the system temp folder (uploads' scratch) is tmp/scratch."""
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    return tmp_path


def kept_files(root: Path) -> list[str]:
    """What every session sees in checkpoints/ (hidden temp files included)."""
    folder = root / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def scratch_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root / "scratch")) for p in (root / "scratch").rglob("*"))


def tiny_checkpoint(path: Path) -> Path:
    """A 16x16 DCGAN with random weights, in the PyTorch tutorial's layout."""
    torch.manual_seed(0)
    torch.save({"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, path)
    return path


def test_an_upload_that_loads_stays_private_until_it_is_added(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    config = load_config(root / "config.yaml")
    upload = model_admin.check_upload([source.read_bytes()], "my tiny.pt", config)
    assert (
        upload.checked.description["architecture"] == "dcgan"
        and upload.checked.description["resolution"] == 16
    )
    assert kept_files(root) == [] and upload.checked.path.read_bytes() == source.read_bytes()
    assert upload.target == root / "checkpoints" / "my_tiny.pt"

    model_admin.add_model(root / "config.yaml", config, "tiny", upload)
    assert kept_files(root) == ["my_tiny.pt"] and scratch_files(root) == []
    assert load_config(root / "config.yaml").entry("tiny").source == "checkpoints/my_tiny.pt"


def test_an_upload_that_does_not_load_leaves_nothing_behind(root):
    config = load_config(root / "config.yaml")
    with pytest.raises(CheckpointError):
        model_admin.check_upload([b"PK\x03\x04 not really a zip"], "broken.pt", config)
    assert kept_files(root) == [] and scratch_files(root) == []


def test_a_discarded_upload_leaves_nothing_behind(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    upload = model_admin.check_upload([source.read_bytes()], "tiny.pt", load_config(root / "config.yaml"))
    upload.discard()
    upload.discard()
    assert kept_files(root) == [] and scratch_files(root) == []


def test_an_unsaved_upload_is_removed_once_its_session_is_gone(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    session_state = {
        "upload": model_admin.check_upload(
            [source.read_bytes()], "tiny.pt", load_config(root / "config.yaml")
        )
    }
    assert scratch_files(root)
    del session_state
    gc.collect()
    assert kept_files(root) == [] and scratch_files(root) == []


def test_an_upload_never_replaces_a_kept_checkpoint(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    config = load_config(root / "config.yaml")
    first = model_admin.check_upload([source.read_bytes()], "tiny.pt", config)
    second = model_admin.check_upload([source.read_bytes()], "tiny.pt", config)  # another session's
    model_admin.add_model(root / "config.yaml", config, "first", first)
    with pytest.raises(SefaError, match="already exists"):
        model_admin.check_upload([source.read_bytes()], "tiny.pt", config)
    kept = (root / "config.yaml").read_text()
    with pytest.raises(SefaError, match="checkpoints/tiny.pt has been kept since this upload was checked"):
        model_admin.add_model(root / "config.yaml", config, "second", second)
    assert (root / "config.yaml").read_text() == kept and kept_files(root) == ["tiny.pt"]
    assert second.checked.path.is_file()  # still this session's, to discard


def test_a_refused_entry_leaves_the_upload_private(root, tmp_path_factory):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    upload = model_admin.check_upload([source.read_bytes()], "tiny.pt", load_config(root / "config.yaml"))
    with pytest.raises(AlreadySavedError):
        model_admin.add_model(root / "config.yaml", load_config(root / "config.yaml"), "default", upload)
    assert (root / "config.yaml").read_text() == CONFIG and kept_files(root) == []
    assert upload.checked.path.read_bytes() == source.read_bytes()


def test_an_upload_is_taken_back_out_when_config_yaml_cannot_be_written(root, tmp_path_factory, monkeypatch):
    source = tiny_checkpoint(tmp_path_factory.mktemp("elsewhere") / "tiny.pt")
    upload = model_admin.check_upload([source.read_bytes()], "tiny.pt", load_config(root / "config.yaml"))

    def disk_full(path, text):
        assert kept_files(root) == ["tiny.pt"]  # kept first, so a listed model always has its file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_admin, "atomic_write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        model_admin.add_model(root / "config.yaml", load_config(root / "config.yaml"), "tiny", upload)
    assert (root / "config.yaml").read_text() == CONFIG and kept_files(root) == []
    assert upload.checked.path.read_bytes() == source.read_bytes()


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


@pytest.mark.parametrize(
    ("typed", "classes"),
    [
        ("", None),
        ("  ", None),
        ("none", ()),
        ("None", ()),
        ("3", ("0", "1", "2")),
        ("cat, dog ,bird", ("cat", "dog", "bird")),
        ("7 up", ("7 up",)),
    ],
)
def test_typed_classes_are_names_a_count_or_none(typed, classes):
    assert model_admin.parse_classes(typed) == classes


@pytest.mark.parametrize("typed", ["cat,,dog", "cat, cat", "cat,", "1000001"])
def test_typed_classes_that_are_not_a_list_are_refused_in_one_line(typed):
    with pytest.raises(InputError, match="^classes: "):
        model_admin.parse_classes(typed)


@pytest.mark.parametrize(
    ("classes", "written"), [(("cat", "dog"), "classes:\n  - cat\n  - dog\n"), ((), "classes: []\n")]
)
def test_the_classes_an_upload_was_checked_with_go_into_config_yaml(root, classes, written):
    (root / "checkpoints").mkdir()
    checkpoint = tiny_checkpoint(root / "checkpoints" / "tiny.pt")
    model_admin.add_model(
        root / "config.yaml", load_config(root / "config.yaml"), "tiny", checkpoint, classes=classes
    )
    assert written in (root / "config.yaml").read_text()
    assert load_config(root / "config.yaml").entry("tiny").classes == classes


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


def test_a_conditional_dcgan_in_checkpoints_is_checked_with_the_classes_typed(root):
    (root / "checkpoints").mkdir()
    conditional_file(root / "checkpoints")
    config = load_config(root / "config.yaml")
    with pytest.raises(CheckpointError, match="list its classes"):
        model_admin.check_unlisted("cdcgan.pth", config)
    checked = model_admin.check_unlisted("cdcgan.pth", config, CLASS_NAMES)
    assert checked.description["num_classes"] == len(CLASS_NAMES) and checked.classes == tuple(CLASS_NAMES)
