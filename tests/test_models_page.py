"""The Models page, as two people using one server see it: an upload stays its session's own until
"Add to config.yaml", and a class-conditional DCGAN is added with the classes typed beside it.

Each ``AppTest`` is one browser session with its own state; both read the same config.yaml and
checkpoints/, as two sessions (or two replicas) of one server do.
(AppTest gives every session the same id, so they share ``sharing.private_folder``; each upload
still has a folder of its own in it.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from streamlit.runtime.caching import clear_session_resource_cache
from streamlit.testing.v1 import AppTest
from test_dcgan_family import (
    CLASS_NAMES,
    CONDITIONAL,
    NUM_CLASSES,
    NZ,
    conditional_file,
    main_keys,
    make_sequential,
    save,
)
from test_uploads import (
    SESSION_ID,
    TIMEOUT_S,
    files_under,
    studio,  # noqa: F401 - the fixture behind root
    tiny_checkpoint_bytes,
)

from sefa_core import model_admin

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_PAGE, EDITOR_PAGE = "pages/3_Models.py", "pages/0_Editor.py"
CHECKED, CLASSES, MODEL = "models.checked", "models.classes", "keep.model"  # the pages' state keys


@pytest.fixture
def root(studio: Path) -> Path:  # noqa: F811 - the fixture
    """A config.yaml with the default model and one listed checkpoint; uploads wait in tmp/scratch."""
    return studio


def tiny_checkpoint(path: Path) -> Path:
    """A 16x16 DCGAN with random weights, in the PyTorch tutorial's layout."""
    path.write_bytes(tiny_checkpoint_bytes())
    return path


def models_page() -> AppTest:
    """A new session, on the Models page."""
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    return app.switch_page(MODELS_PAGE).run()


def no_errors(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def check_upload(app: AppTest, path: Path, name: str | None = None, classes: str = "") -> AppTest:
    app.text_input(key=CLASSES).input(classes)
    app.file_uploader[0].upload(name or path.name, path.read_bytes()).run()
    next(b for b in app.button if b.label == "Check the upload").click().run()
    return app


def add_to_config(app: AppTest, name: str) -> AppTest:
    next(t for t in app.text_input if t.label == "Name in config.yaml").input(name)  # in a form:
    next(b for b in app.button if b.label == "Add to config.yaml").click().run()  # sent on submit
    return app


def listed(app: AppTest) -> list[str]:
    """The models the session's Models page lists."""
    return list(app.run().dataframe[0].value["name"])


def offered(app: AppTest) -> list[str]:
    """What the session's "Already in checkpoints/" tab offers to add."""
    return next(s for s in app.selectbox if "checkpoints/" in s.label).options


def editor_models(app: AppTest) -> list[str]:
    """The session's model picker in the editor (it comes back to the Models page after)."""
    app.switch_page(EDITOR_PAGE).run()
    options = list(app.sidebar.selectbox(key=MODEL).options)
    app.switch_page(MODELS_PAGE).run()
    return options


def scratch_files() -> list[str]:
    """The files in the system temp folder: where uploads wait, in their session's folder."""
    return files_under(Path(tempfile.gettempdir()))


# ---- an upload is its session's own until it is added ---------------------------------------------------
def test_an_upload_is_seen_by_no_other_session_until_it_is_added(root, tmp_path):
    mine, theirs = models_page(), models_page()
    check_upload(mine, tiny_checkpoint(tmp_path / "faces.pt"))
    no_errors(mine)
    assert "private to this session" in mine.success[0].value
    assert files_under(root / "checkpoints") == ["listed.pt"]
    assert listed(theirs) == ["default", "listed"] and offered(theirs) == []
    assert editor_models(theirs) == ["default", "listed"]

    add_to_config(mine, "faces")
    no_errors(mine)
    assert files_under(root / "checkpoints") == ["faces.pt", "listed.pt"]
    assert scratch_files() == []  # the private copy went into checkpoints/
    assert listed(theirs) == ["default", "listed", "faces"] and offered(theirs) == []
    assert editor_models(theirs) == ["default", "listed", "faces"]
    label = mine.session_state["keep.shared.saved_by"]
    assert theirs.dataframe[0].value["added"][2].startswith(f"saved by {label} at 20")


def test_a_discarded_upload_leaves_nothing_anywhere(root, tmp_path):
    app = check_upload(models_page(), tiny_checkpoint(tmp_path / "faces.pt"))
    assert scratch_files()
    next(b for b in app.button if b.label == "Discard").click().run()
    no_errors(app)
    assert not [b for b in app.button if b.label == "Add to config.yaml"]
    assert scratch_files() == [] and files_under(root / "checkpoints") == ["listed.pt"]


def test_a_second_upload_replaces_the_first_in_the_scratch_folder(root, tmp_path):
    app = check_upload(models_page(), tiny_checkpoint(tmp_path / "first.pt"))
    check_upload(app, tiny_checkpoint(tmp_path / "second.pt"))
    no_errors(app)
    [copy] = scratch_files()
    assert Path(copy).name == "second.pt"


def test_an_upload_left_unsaved_is_removed_when_its_session_disconnects(root, tmp_path):
    app = check_upload(models_page(), tiny_checkpoint(tmp_path / "faces.pt"))
    assert scratch_files()
    clear_session_resource_cache(SESSION_ID)  # what Streamlit does when the connection closes
    assert scratch_files() == [] and files_under(root / "checkpoints") == ["listed.pt"]
    app.run()  # the browser came back: the session's state remains, its upload does not
    assert (
        not app.exception
        and "faces.pt was removed when this session's connection closed" in app.info[0].value
    )
    assert not [b for b in app.button if b.label == "Add to config.yaml"]
    check_upload(app, tiny_checkpoint(tmp_path / "faces.pt"))
    no_errors(app)  # the next upload gets a session folder again
    assert [Path(f).name for f in scratch_files()] == ["faces.pt"]


# ---- class-conditional DCGANs: the classes are typed beside the upload -----------------------------------
def test_a_conditional_dcgan_without_its_classes_is_refused_in_one_line(root, tmp_path):
    _, path = conditional_file(tmp_path)
    app = check_upload(models_page(), path)
    assert not app.exception and len(app.error) == 1
    refusal = app.error[0].value
    assert "\n" not in refusal and refusal.startswith(
        "cdcgan.pth: DCGAN-like state dict: the first layer takes"
    )
    assert (
        "if the model is class-conditional, list its classes" in refusal
        and "classes: [] if it is not" in refusal
    )
    assert CHECKED not in app.session_state
    assert scratch_files() == [] and files_under(root / "checkpoints") == ["listed.pt"]


@pytest.mark.parametrize(
    ("typed", "names"),
    [(", ".join(CLASS_NAMES), CLASS_NAMES), (str(NUM_CLASSES), [str(k) for k in range(NUM_CLASSES)])],
    ids=["names", "count"],
)
def test_a_conditional_dcgan_with_its_classes_is_added_and_the_editor_offers_them(
    root, tmp_path, typed, names
):
    _, path = conditional_file(tmp_path)
    app = check_upload(models_page(), path, "mnist.pth", classes=typed)
    no_errors(app)
    description = app.session_state[CHECKED].checked.description
    assert (description["num_classes"], description["latent_dim"]) == (NUM_CLASSES, NZ)
    add_to_config(app, "mnist")
    no_errors(app)
    [entry] = [
        m for m in yaml.safe_load((root / "config.yaml").read_text())["models"] if m["name"] == "mnist"
    ]
    assert (entry["source"], entry["classes"]) == ("checkpoints/mnist.pth", names)
    row = list(app.dataframe[0].value["name"]).index("mnist")
    assert app.dataframe[0].value["status"][row] == "available"
    assert app.dataframe[0].value["num_classes"][row] == NUM_CLASSES

    app.switch_page(EDITOR_PAGE).run()
    app.sidebar.selectbox(key=MODEL).set_value("mnist").run()
    no_errors(app)
    picker = next(s for s in app.sidebar.selectbox if s.label == "Class")
    assert len(picker.options) == NUM_CLASSES and picker.options[3] == f"3 · {names[3]}"


def test_none_adds_an_unusual_z_size_as_an_unconditional_dcgan(root, tmp_path):
    path = save(main_keys(make_sequential(CONDITIONAL)), tmp_path / "odd.pth")  # 30 inputs: not a z size
    app = check_upload(models_page(), path)
    assert "list its classes" in app.error[0].value
    check_upload(app, path, classes=model_admin.NOT_CONDITIONAL)
    no_errors(app)
    description = app.session_state[CHECKED].checked.description
    assert (description["num_classes"], description["latent_dim"]) == (0, CONDITIONAL.inputs)
    add_to_config(app, "odd")
    no_errors(app)
    assert "  classes: []\n" in (root / "config.yaml").read_text()
    app.switch_page(EDITOR_PAGE).run()
    app.sidebar.selectbox(key=MODEL).set_value("odd").run()
    no_errors(app)
    assert not [s for s in app.sidebar.selectbox if s.label == "Class"]


def test_classes_that_are_not_a_list_are_refused_in_one_line(root, tmp_path):
    app = check_upload(models_page(), tiny_checkpoint(tmp_path / "faces.pt"), classes="cat,,dog")
    assert not app.exception and len(app.error) == 1 and app.error[0].value.startswith("classes: expected")
    assert scratch_files() == []
