"""The editor and its pages through Streamlit's AppTest (no browser; the live drag is in test_browser.py).

The slider bank is a custom component that AppTest cannot drag, so these tests do what its
callback does: put new slider values in the session's ``EditState`` and run the app again.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest
from test_stylegan2 import _nvidia_state, _tiny_generator

from sefa_core import session
from sefa_core.default_model import default_checkpoint_path
from sefa_core.factorize import factorize
from sefa_core.formats import load_checkpoint
from sefa_core.models.dcgan import DCGANGenerator
from sefa_core.recipe import apply_recipe, parse_recipe
from sefa_core.render import to_uint8
from sefa_core.session import CodeSource

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60
NUM_PREPARED = 3
PREPARED_SEED = 21


@pytest.fixture(scope="module")
def generator():
    return load_checkpoint(default_checkpoint_path(), "cpu")


@pytest.fixture
def studio(tmp_path: Path, monkeypatch, generator) -> Path:
    """A config.yaml with the default model and its prepared codes, a tiny model and a missing one."""
    (tmp_path / "latent_codes").mkdir()
    np.save(tmp_path / "latent_codes" / "faces.npy", generator.sample(NUM_PREPARED, PREPARED_SEED).numpy())
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    torch.save(
        {"netG_state_dict": DCGANGenerator([8, 16, 8, 3]).state_dict()}, tmp_path / "checkpoints" / "tiny.pt"
    )
    torch.save(_nvidia_state(_tiny_generator(1)), tmp_path / "checkpoints" / "styled.pt")  # 16 px, W+
    (tmp_path / "config.yaml").write_text(
        """version: 1
models:
  - name: default
    source: default
    display_name: Faces
    slider: {min: -6.0, max: 6.0, step: 0.5}
    num_semantics: 6
    codes: latent_codes/faces.npy
  - name: tiny
    source: checkpoints/tiny.pt
    num_semantics: 4
  - name: missing
    source: checkpoints/missing.pt
  - name: styled
    source: checkpoints/styled.pt
    num_semantics: 4
"""
    )
    monkeypatch.setenv("SEFA_CONFIG", str(tmp_path / "config.yaml"))
    return tmp_path


@pytest.fixture
def app(studio) -> AppTest:
    return AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()


@pytest.fixture
def downloads(monkeypatch) -> dict[str, Callable[[], object]]:
    """file name -> the function a download button runs when clicked (the app defers every export)."""
    made: dict[str, Callable[[], object]] = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data
        return original(self, data, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return made


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def edit(at: AppTest) -> session.EditState:
    return at.session_state["edit"]


def component_data(at: AppTest, key: str) -> dict:
    for element in at.get("bidi_component"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.json)
    raise AssertionError(f"no component with key {key}")


def shown_pixels(at: AppTest, key: str = "edited") -> np.ndarray:
    src = component_data(at, key)["src"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def set_sliders(at: AppTest, alphas: tuple[float, ...]) -> AppTest:
    """What the slider bank's callback does when a slider moves."""
    at.session_state["edit"] = edit(at).with_alphas(alphas)
    return at.run()


def test_the_editor_opens_on_the_first_prepared_code_with_every_slider_at_zero(app, generator):
    no_errors(app)
    assert edit(app).source == CodeSource("prepared", 0)
    assert edit(app).alphas == (0.0,) * 6
    np.testing.assert_array_equal(edit(app).code, generator.sample(NUM_PREPARED, PREPARED_SEED)[:1].numpy())
    sliders = component_data(app, "sliders")
    assert sliders["labels"][3].startswith("Semantic 003 · λ=")
    assert (sliders["min"], sliders["max"], sliders["step"]) == (-6.0, 6.0, 0.5)
    assert app.title[0].value == "Faces"


def test_moving_a_slider_changes_the_edited_image_only(app):
    before_edited, before_original = shown_pixels(app), shown_pixels(app, "original")
    set_sliders(app, (0.0, 5.0, 0.0, 0.0, 0.0, 0.0))
    no_errors(app)
    assert np.abs(shown_pixels(app).astype(int) - before_edited).mean() > 2
    np.testing.assert_array_equal(shown_pixels(app, "original"), before_original)


def test_reset_puts_every_slider_back_to_zero(app):
    set_sliders(app, (1.0, -2.0, 0.0, 3.5, 0.0, 0.0))
    revision = component_data(app, "sliders")["revision"]
    app.button(key="reset").click().run()
    no_errors(app)
    assert edit(app).alphas == (0.0,) * 6
    sliders = component_data(app, "sliders")
    assert sliders["values"] == [0.0] * 6 and sliders["revision"] > revision  # the browser moves them back


def test_random_steps_through_the_prepared_codes_then_shows_fresh_seeds(app, generator):
    shown = []
    for _ in range(NUM_PREPARED + 1):
        app.button(key="random").click().run()
        no_errors(app)
        shown.append(edit(app).source)
    assert [s.index for s in shown[: NUM_PREPARED - 1]] == [1, 2]
    seeds = shown[NUM_PREPARED - 1 :]
    assert all(s.kind == "seed" for s in seeds) and seeds[0].index != seeds[1].index
    assert app.number_input(key="seed_input").value == seeds[1].index  # shown, so it can be noted
    np.testing.assert_array_equal(edit(app).code, generator.sample(1, seeds[1].index).numpy())


def test_typing_a_seed_brings_that_face_back(app, generator):
    app.number_input(key="seed_input").set_value(1234).run()
    no_errors(app)
    assert edit(app).source == CodeSource("seed", 1234)
    np.testing.assert_array_equal(edit(app).code, generator.sample(1, 1234).numpy())


def test_picking_a_prepared_code_shows_it_and_keeps_the_sliders(app, generator):
    set_sliders(app, (2.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    app.selectbox(key="code_pick").set_value(2).run()
    no_errors(app)
    assert edit(app).source == CodeSource("prepared", 2) and edit(app).alphas[0] == 2.0
    np.testing.assert_array_equal(edit(app).code, generator.sample(NUM_PREPARED, PREPARED_SEED)[2:].numpy())


def test_an_uploaded_code_file_is_shown_a_bad_one_is_one_line_and_clearing_goes_back(app, generator):
    buffer = io.BytesIO()
    np.save(buffer, generator.sample(2, seed=77).numpy())
    app.file_uploader(key="code_upload").upload("mine.npy", buffer.getvalue()).run()
    no_errors(app)
    assert edit(app).source == CodeSource("upload", 0, "mine.npy")
    np.testing.assert_array_equal(edit(app).code, generator.sample(2, seed=77)[:1].numpy())

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 7), np.float32))
    app.file_uploader(key="code_upload").upload("wrong.npy", buffer.getvalue()).run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "wrong.npy: shape (2, 7) does not fit this model; expected (N, 100)"
    ]
    assert edit(app).source == CodeSource("upload", 0, "mine.npy")

    app.file_uploader(key="code_upload").clear().run()
    no_errors(app)
    assert edit(app).source == CodeSource("prepared", 0)


def test_switching_model_shows_the_other_model(app):
    app.sidebar.selectbox(key="keep.model").set_value("tiny").run()
    no_errors(app)
    assert edit(app).model == "tiny" and edit(app).alphas == (0.0,) * 4
    assert shown_pixels(app).shape == (16, 16, 3)
    assert len(component_data(app, "sliders")["labels"]) == 4
    app.sidebar.selectbox(key="keep.model").set_value("default").run()
    assert edit(app).model == "default" and shown_pixels(app).shape == (64, 64, 3)


def test_an_unavailable_model_says_what_is_missing(app):
    assert any("missing" in c.value and "file not found" in c.value for c in app.sidebar.caption)
    app.sidebar.selectbox(key="keep.model").set_value("missing").run()
    assert not app.exception
    assert len(app.error) == 1 and "missing.pt: file not found" in app.error[0].value


def test_a_bad_layer_spec_is_one_line_and_the_last_good_result_stays(app):
    app.sidebar.selectbox(key="keep.model").set_value("styled").run()
    set_sliders(app, (0.0, 0.0, 3.0, 0.0))
    before = shown_pixels(app)
    app.sidebar.selectbox(key="keep.layers.styled").set_value(session.CUSTOM_LAYERS).run()
    app.sidebar.text_input(key="keep.spec.styled").input("2,x").run()
    assert not app.exception
    assert len(app.error) == 1 and "cannot read 'x'" in app.error[0].value and "\n" not in app.error[0].value
    assert "valid layers are 0-" in app.error[0].value and "999" not in app.error[0].value
    assert edit(app).layers == "all" and edit(app).alphas[2] == 3.0
    np.testing.assert_array_equal(shown_pixels(app), before)


def test_asking_for_cuda_without_it_says_so_and_runs_on_the_cpu(app):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    app.sidebar.selectbox(key="keep.device").set_value("cuda").run()
    no_errors(app)
    assert any("CUDA is not available" in w.value for w in app.sidebar.warning)
    assert any("Running on **cpu**" in c.value for c in app.sidebar.caption)


def test_a_generator_that_raises_is_one_line_for_this_session(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nwith a long traceback")

    monkeypatch.setattr(session, "render_edit", broken)
    set_sliders(app, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    assert not app.exception
    assert [e.value for e in app.error] == ["rendering: RuntimeError: out of memory"]
    assert component_data(app, "sliders")  # the sliders are still there


def test_the_downloaded_recipe_replays_to_the_same_pixels(studio, downloads, generator):
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    app.button(key="random").click().run()  # a prepared code: the recipe carries the code itself
    set_sliders(app, (2.5, 0.0, -1.5, 0.0, 0.0, 4.0))
    no_errors(app)
    name = "sefa_default_prepared1"
    recipe = parse_recipe(downloads[f"{name}.yaml"]())
    replayed = to_uint8(apply_recipe(recipe, generator))[0]
    exported = np.asarray(Image.open(io.BytesIO(downloads[f"{name}.png"]())))
    np.testing.assert_array_equal(replayed, exported)
    assert np.abs(shown_pixels(app).astype(int) - exported).mean() < 3  # the live view is JPEG

    semantics = factorize(generator, "all")
    code = np.load(io.BytesIO(downloads[f"{name}.npy"]()), allow_pickle=False)
    np.testing.assert_array_equal(code, session.edited_code(generator, semantics, edit(app)).numpy())

    gif = Image.open(io.BytesIO(downloads[f"{name}_semantic000.gif"]()))
    assert gif.n_frames > 10 and gif.size == (64, 64)


def test_a_seed_recipe_replays_too(studio, downloads, generator):
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    app.number_input(key="seed_input").set_value(99).run()
    set_sliders(app, (0.0, -3.0, 0.0, 0.0, 0.0, 0.0))
    recipe = parse_recipe(downloads["sefa_default_seed99.yaml"]())
    assert recipe.seed == 99
    exported = np.asarray(Image.open(io.BytesIO(downloads["sefa_default_seed99.png"]())))
    np.testing.assert_array_equal(to_uint8(apply_recipe(recipe, generator))[0], exported)


def test_explore_renders_the_grid_of_the_current_face(app):
    set_sliders(app, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    app.switch_page("pages/1_Explore.py").run()
    no_errors(app)
    app.button[0].click().run()
    no_errors(app)
    assert [b.label for b in app.get("download_button")] == ["Grid as PNG", "Page as HTML"]
    grid = app.session_state["explore.result"][1]
    assert grid.shape == (1, 5, 11, 64, 64, 3)  # top 5 semantics x 11 distances


def test_directions_saves_the_sliders_you_pick(app, studio):
    set_sliders(app, (0.0, 2.0, 0.0, -1.0, 0.0, 0.0))
    app.switch_page("pages/2_Directions.py").run()
    no_errors(app)
    app.text_input(key="keep.directions.name").input("faces").run()
    app.button[0].click().run()
    no_errors(app)
    saved = json.loads((studio / "direction_sets" / "faces.json").read_text())
    assert [(d["semantic"], d["alpha"]) for d in saved["directions"]] == [(1, 2.0), (3, -1.0)]


def test_models_lists_every_model_with_its_architecture(app):
    app.switch_page("pages/3_Models.py").run()
    no_errors(app)
    table = app.dataframe[0].value
    assert list(table["name"]) == ["default", "tiny", "missing", "styled"]
    assert list(table["resolution"][:2]) == [64, 16]
    assert table["status"][2].startswith("unavailable")


def test_going_to_a_page_and_back_keeps_the_model_and_the_sliders(app):
    app.sidebar.selectbox(key="keep.model").set_value("tiny").run()
    set_sliders(app, (1.0, 0.0, 0.0, 0.0))
    app.switch_page("pages/1_Explore.py").run()
    app.switch_page("pages/0_Editor.py").run()
    no_errors(app)
    assert edit(app).model == "tiny" and edit(app).alphas == (1.0, 0.0, 0.0, 0.0)


def test_an_uploaded_checkpoint_is_checked_then_kept_and_added_to_config(app, studio):
    app.switch_page("pages/3_Models.py").run()
    app.file_uploader[0].upload("not a model.pt", b"\x80\x04garbage").run()
    next(b for b in app.button if b.label == "Check the upload").click().run()
    assert not app.exception and len(app.error) == 1
    assert sorted(p.name for p in (studio / "checkpoints").iterdir()) == ["styled.pt", "tiny.pt"]  # none kept

    app.file_uploader[0].upload("small faces.pt", (studio / "checkpoints" / "tiny.pt").read_bytes()).run()
    next(b for b in app.button if b.label == "Check the upload").click().run()
    no_errors(app)
    assert not (studio / "checkpoints" / "small_faces.pt").exists()  # private until added
    next(t for t in app.text_input if t.label == "Name in config.yaml").input("small")  # in a form:
    next(b for b in app.button if b.label == "Add to config.yaml").click().run()  # sent on submit
    no_errors(app)
    assert "small" in list(app.dataframe[0].value["name"])
    assert "source: checkpoints/small_faces.pt" in (studio / "config.yaml").read_text()
    assert (studio / "checkpoints" / "small_faces.pt").is_file()
