"""Uploads from strangers: too large, the wrong type or hostile, each is refused in one line before
anything is kept, and no code from it runs.

The editor takes ``.npy`` codes, the Models page checkpoints; both are driven through AppTest, and the
functions behind them directly. A refused checkpoint leaves nothing in checkpoints/ nor in the
scratch folder it was checked in (a good one waits there, private, until it is added: see
test_models_page.py), and the Models page only offers files already in checkpoints/.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.runtime.caching import clear_session_resource_cache
from streamlit.testing.v1 import AppTest
from test_safe_loading import call_pickle, marker, torch_zip  # noqa: F401 - marker: a fixture

from sefa_core import model_admin
from sefa_core.codes import load_codes
from sefa_core.config import load_config
from sefa_core.errors import CheckpointError, CodeFileError, SefaError
from sefa_core.models.dcgan import DCGANGenerator
from sefa_core.session import CodeSource

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60
MIB = 1024 * 1024
SMALL_LIMIT_MB = 1  # the upload limits, lowered so that a test file can pass them
CODE_UPLOAD, UPLOADED, EDIT = "code_upload", "uploaded_codes", "edit"  # studio_ui.state's keys
SESSION_ID = "test session id"  # what AppTest calls every session


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def gadget_npy(marker_file: Path) -> bytes:
    """An object-array .npy whose pickled body runs ``touch marker`` when unpickled."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buffer.getvalue() + call_pickle("os", "system", f"touch {shlex.quote(str(marker_file))}")


def gadget_pickle(marker_file: Path) -> bytes:
    return call_pickle("os", "system", f"touch {shlex.quote(str(marker_file))}")


def tiny_checkpoint_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, buffer)
    return buffer.getvalue()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def studio(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A config.yaml with the default model and one listed checkpoint; scratch files go to tmp/scratch."""
    root = tmp_path / "studio"
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "listed.pt").write_bytes(tiny_checkpoint_bytes())
    (root / "config.yaml").write_text(
        "version: 1\nmodels:\n  - name: default\n    source: default\n"
        "  - name: listed\n    source: checkpoints/listed.pt\n"
    )
    monkeypatch.setenv("SEFA_CONFIG", str(root / "config.yaml"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    clear_session_resource_cache(SESSION_ID)  # the session's upload folder (sharing.private_folder) with it
    yield root
    clear_session_resource_cache(SESSION_ID)


@pytest.fixture
def editor(studio) -> AppTest:
    return AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()


@pytest.fixture
def models_page(studio) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    return app.switch_page("pages/3_Models.py").run()


def one_line_refusal(app: AppTest) -> str:
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.error) == 1, [e.value for e in app.error]
    assert "\n" not in app.error[0].value
    return app.error[0].value


# ---- codes on the editor ---------------------------------------------------------------------------
def upload_codes(app: AppTest, name: str, data: bytes) -> AppTest:
    return app.file_uploader(key=CODE_UPLOAD).upload(name, data).run()


def assert_codes_not_kept(app: AppTest) -> None:
    assert UPLOADED not in app.session_state
    assert app.session_state[EDIT].source == CodeSource("seed", 0)


def test_codes_over_the_size_limit_are_refused_in_one_line(editor, default_generator, monkeypatch):
    monkeypatch.setattr("sefa_core.codes.MAX_CODE_FILE_BYTES", SMALL_LIMIT_MB * MIB)
    rows = SMALL_LIMIT_MB * MIB // (4 * default_generator.latent_dim) + 1
    upload_codes(editor, "many.npy", npy_bytes(np.zeros((rows, default_generator.latent_dim), np.float32)))
    assert "over the 1048576 byte limit" in one_line_refusal(editor)
    assert_codes_not_kept(editor)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("codes.txt", b"0.1 0.2 0.3\n", "expected a .npy file"),
        ("codes.npy", b"\x89PNG\r\n\x1a\n not codes", "not a .npy file"),
        ("codes.npy", npy_bytes(np.array(["a", "b"])), "codes must be numbers"),
    ],
    ids=["text file", "png named .npy", "strings"],
)
def test_a_file_that_is_not_codes_is_refused_in_one_line(editor, name, data, reason):
    upload_codes(editor, name, data)
    assert reason in one_line_refusal(editor)
    assert_codes_not_kept(editor)


@pytest.mark.parametrize(
    ("make", "reason"),
    [(gadget_npy, "not a plain .npy array"), (gadget_pickle, "not a .npy file")],
    ids=["object-array npy", "bare pickle"],
)
def test_hostile_codes_are_refused_and_run_nothing(editor, marker, make, reason):  # noqa: F811 - the fixture
    data = make(marker)
    with contextlib.suppress(Exception):
        np.load(io.BytesIO(data), allow_pickle=True)  # what a careless reader does: it runs the payload
    assert marker.exists()
    marker.unlink()

    upload_codes(editor, "codes.npy", data)
    assert reason in one_line_refusal(editor)
    assert_codes_not_kept(editor)
    assert not marker.exists()


def test_load_codes_refuses_a_gadget_without_unpickling_it(default_generator, marker):  # noqa: F811
    with pytest.raises(CodeFileError, match="codes.npy: not a plain .npy array"):
        load_codes(gadget_npy(marker), default_generator, "codes.npy")
    assert not marker.exists()


def test_good_codes_are_still_taken(editor, default_generator):
    upload_codes(editor, "mine.npy", npy_bytes(default_generator.sample(2, seed=5).numpy()))
    assert not editor.error and not editor.exception
    assert editor.session_state[EDIT].source == CodeSource("upload", 0, "mine.npy")


# ---- checkpoints on the Models page ----------------------------------------------------------------
def upload_checkpoint(app: AppTest, name: str, data: bytes) -> AppTest:
    app.file_uploader[0].upload(name, data).run()
    next(b for b in app.button if b.label == "Check the upload").click().run()
    return app


def assert_nothing_kept(studio: Path) -> None:
    assert files_under(studio / "checkpoints") == ["listed.pt"]
    assert files_under(Path(tempfile.gettempdir())) == []


def test_a_checkpoint_over_the_size_limit_is_refused_before_a_byte_is_written(
    studio, models_page, monkeypatch
):
    monkeypatch.setattr(model_admin, "MAX_CHECKPOINT_UPLOAD_MB", SMALL_LIMIT_MB)
    written = []
    monkeypatch.setattr(model_admin, "_write_at_most", lambda *args: written.append(args))
    models_page.run()  # the uploader takes the new limit (and forgets any file it held)
    upload_checkpoint(models_page, "big.pt", tiny_checkpoint_bytes() + bytes(SMALL_LIMIT_MB * MIB))
    assert "over the 1 MB upload limit" in one_line_refusal(models_page)
    assert written == []
    assert_nothing_kept(studio)


def test_chunks_past_the_size_limit_are_refused_while_they_arrive(studio, monkeypatch):
    monkeypatch.setattr(model_admin, "MAX_CHECKPOINT_UPLOAD_MB", SMALL_LIMIT_MB)
    chunks = [bytes(MIB // 2)] * 3  # a stream whose size nobody said
    with pytest.raises(SefaError, match="over the 1 MB upload limit"):
        model_admin.check_upload(chunks, "big.pt", load_config(studio / "config.yaml"))
    assert_nothing_kept(studio)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("faces.png", b"\x89PNG\r\n\x1a\n", "faces.png: not a checkpoint file name"),
        ("codes.npy", npy_bytes(np.zeros((2, 100), np.float32)), "codes.npy: not a checkpoint file name"),
        ("model.pt", b"\x89PNG\r\n\x1a\n an image", "model.pt: not a torch checkpoint or pickle"),
        ("model.pt", b"\x80\x04garbage", "model.pt: "),
    ],
    ids=["png", "npy", "png named .pt", "broken pickle"],
)
def test_a_file_that_is_not_a_checkpoint_is_refused_and_not_kept(studio, models_page, name, data, reason):
    upload_checkpoint(models_page, name, data)
    assert one_line_refusal(models_page).startswith(reason)
    assert_nothing_kept(studio)


@pytest.mark.parametrize("container", ["pickle", "torch zip"])
def test_a_hostile_checkpoint_is_refused_runs_nothing_and_is_not_kept(
    studio,
    models_page,
    marker,  # noqa: F811 - the fixture
    container,
):
    payload = gadget_pickle(marker)
    data = payload if container == "pickle" else torch_zip(payload)
    upload_checkpoint(models_page, "model.pkl" if container == "pickle" else "model.pt", data)
    assert "refused to load: the file asks for the global 'os.system'" in one_line_refusal(models_page)
    assert not marker.exists()
    assert_nothing_kept(studio)


def test_a_good_checkpoint_waits_in_one_private_scratch_folder(studio, models_page):
    upload_checkpoint(models_page, "mine.pt", tiny_checkpoint_bytes())
    assert not models_page.error and not models_page.exception
    assert files_under(studio / "checkpoints") == ["listed.pt"]
    [copy] = files_under(Path(tempfile.gettempdir()))
    assert Path(copy).name == "mine.pt" and Path(copy).parent.name.startswith(model_admin.SCRATCH_PREFIX)


# ---- the Models page never reads a path a user typed -------------------------------------------------
def test_the_models_page_offers_only_unlisted_checkpoints_in_its_folder(studio, models_page, tmp_path):
    folder = studio / "checkpoints"
    (folder / "new.pt").write_bytes(tiny_checkpoint_bytes())
    (folder / ".hidden.pt").write_bytes(tiny_checkpoint_bytes())
    (folder / "README.md").write_text("not a model")
    (tmp_path / "outside.pt").write_bytes(tiny_checkpoint_bytes())
    (folder / "link-out.pt").symlink_to(tmp_path / "outside.pt")
    (folder / "biggan").mkdir()
    (folder / "biggan" / "pytorch_model.bin").write_bytes(b"")
    models_page.run()
    assert not [t for t in models_page.text_input if "path" in t.label.lower()]
    picker = next(s for s in models_page.selectbox if "checkpoints/" in s.label)
    assert picker.options == ["biggan", "new.pt"]

    picker.set_value("new.pt").run()
    next(b for b in models_page.button if b.label == "Check").click().run()
    assert not models_page.error and not models_page.exception
    assert models_page.session_state["models.checked"].path == folder / "new.pt"


@pytest.mark.parametrize("name", ["../outside.pt", "link-out.pt", "listed.pt", "/etc/passwd", ".hidden.pt"])
def test_check_unlisted_opens_nothing_but_an_offered_checkpoint(studio, tmp_path, name, monkeypatch):
    (tmp_path / "outside.pt").write_bytes(tiny_checkpoint_bytes())
    (studio / "checkpoints" / "link-out.pt").symlink_to(tmp_path / "outside.pt")
    (studio / "checkpoints" / ".hidden.pt").write_bytes(tiny_checkpoint_bytes())
    opened = []
    monkeypatch.setattr(model_admin, "check_checkpoint", opened.append)
    with pytest.raises(SefaError, match="not an unlisted checkpoint"):
        model_admin.check_unlisted(name, load_config(studio / "config.yaml"))
    assert opened == []


def test_check_upload_names_the_upload_not_its_scratch_copy(studio):
    with pytest.raises(CheckpointError) as refused:
        model_admin.check_upload([b"\x80\x04garbage"], "mine.pt", load_config(studio / "config.yaml"))
    assert str(refused.value).startswith("mine.pt: ")
    assert_nothing_kept(studio)
