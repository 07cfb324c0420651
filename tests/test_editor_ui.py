"""What a new user notices in the editor (issue 17), through Streamlit's AppTest: paths, one-layer
models, pickers that name the face shown, edits kept across layer sets, names, links, sharp pixels.

Shares the studio of test_app.py (the default DCGAN with prepared codes, a tiny DCGAN, a missing
file and a tiny W+ StyleGAN2).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace

import numpy as np
import test_app
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app import REPO_ROOT, TIMEOUT_S, component_data, edit, no_errors, set_sliders, shown_pixels

from sefa_core import session
from sefa_core.factorize import factorize
from sefa_core.formats import load_checkpoint
from sefa_core.recipe import apply_recipe, parse_recipe
from sefa_core.render import downscale, to_uint8
from sefa_core.session import CodeSource

# test_app.py's studio and fixtures, shared by name
studio, app, generator, downloads = test_app.studio, test_app.app, test_app.generator, test_app.downloads


def on_model(app: AppTest, name: str) -> AppTest:
    app.sidebar.selectbox(key="keep.model").set_value(name).run()
    no_errors(app)
    return app


def texts(app: AppTest) -> str:
    """Every caption, markdown, alert and table cell on the page, as one text."""
    parts = [
        e.value for kind in ("caption", "markdown", "success", "info", "error") for e in getattr(app, kind)
    ]
    parts += [str(t.value) for t in app.table] + [str(d.value) for d in app.dataframe]
    return "\n".join(str(p) for p in parts)


def test_no_page_shows_a_server_path(app, studio):
    assert str(studio) not in texts(app)  # the missing model's reason names checkpoints/missing.pt
    assert "checkpoints/missing.pt" in texts(app)
    set_sliders(app, (0.0, 2.0, 0.0, 0.0, 0.0, 0.0))
    app.switch_page("pages/2_Directions.py").run()
    app.text_input(key="keep.directions.name").input("faces").run()
    next(b for b in app.button if b.label == "Save set").click().run()
    no_errors(app)
    assert "direction_sets/faces.json" in texts(app)
    app.switch_page("pages/3_Models.py").run()
    no_errors(app)
    files = [row["file"] for row in app.table[0].value.to_dict("records")]
    assert "built-in" in files
    shown = texts(app)
    assert str(studio) not in shown and "site-packages" not in shown and str(REPO_ROOT) not in shown


def test_a_one_layer_model_shows_its_layer_as_a_caption_and_every_page_names_it_alike(app):
    assert not [s for s in app.sidebar.selectbox if s.key.startswith("keep.layers.")]
    assert any("only factorizable layer" in c.value for c in app.sidebar.caption)
    app.switch_page("pages/1_Explore.py").run()
    explore = next(c.value for c in app.caption if "Faces ·" in c.value)
    app.switch_page("pages/2_Directions.py").run()
    directions = next(c.value for c in app.caption if "Faces ·" in c.value)
    assert " · layer 0 · " in explore and " · layer 0." in directions


def test_the_seed_box_and_the_code_picker_name_only_the_face_shown(app):
    assert app.selectbox(key="code_pick").value == 0 and app.number_input(key="seed_input").value is None
    app.number_input(key="seed_input").set_value(1234).run()
    no_errors(app)
    assert edit(app).source == CodeSource("seed", 1234)
    assert app.selectbox(key="code_pick").value is None  # not "#0" while seed 1234 is shown
    app.selectbox(key="code_pick").set_value(2).run()
    no_errors(app)
    assert edit(app).source == CodeSource("prepared", 2) and app.number_input(key="seed_input").value is None


def test_edits_on_a_layer_set_come_back_when_it_is_picked_again(app):
    on_model(app, "styled")
    set_sliders(app, (0.0, 2.0, 0.0, -1.0))
    app.sidebar.selectbox(key="keep.layers.styled").set_value(session.CUSTOM_LAYERS).run()
    assert edit(app).alphas == (0.0, 2.0, 0.0, -1.0)  # the custom box starts on the same layers
    app.sidebar.text_input(key="keep.spec.styled").input("0-1").run()
    no_errors(app)
    assert edit(app).alphas == (0.0,) * 4  # other layers, other directions
    assert any("put aside" in t.value for t in app.toast)
    app.sidebar.text_input(key="keep.spec.styled").input("all").run()
    no_errors(app)
    assert edit(app).alphas == (0.0, 2.0, 0.0, -1.0)


def test_random_keeps_the_edits_unless_told_to_reset_them(app):
    set_sliders(app, (1.5, 0.0, 0.0, 0.0, 0.0, 0.0))
    app.button(key="random").click().run()
    assert edit(app).alphas[0] == 1.5
    app.sidebar.toggle(key="keep.reset_on_random").set_value(True).run()
    app.button(key="random").click().run()
    no_errors(app)
    assert edit(app).alphas == (0.0,) * 6 and edit(app).source == CodeSource("prepared", 2)


def test_named_sliders_show_their_name_and_their_share_of_energy_and_go_into_the_recipe(
    studio, downloads, generator
):
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    names = {1: "smile"}
    app.session_state["edit"] = edit(app).with_names(names)
    set_sliders(app, (0.0, 2.0, 0.0, 0.0, 0.0, 0.0))
    no_errors(app)
    labels = component_data(app, "sliders")["labels"]
    assert labels[1].startswith("smile (#1) · λ=") and labels[0].startswith("Semantic 000 · λ=")
    shares = [float(label.rsplit("·", 1)[1].strip(" %")) for label in labels]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100
    recipe = parse_recipe(downloads["sefa_default_prepared0.yaml"]())
    assert dict(recipe.names) == names


def test_the_address_keeps_the_model_layers_code_sliders_and_names(app, studio):
    on_model(app, "styled")
    app.sidebar.selectbox(key="keep.layers.styled").set_value(session.CUSTOM_LAYERS).run()
    app.sidebar.text_input(key="keep.spec.styled").input("0-1").run()
    app.number_input(key="seed_input").set_value(42).run()
    app.session_state["edit"] = edit(app).with_names({2: "hair, long"})
    set_sliders(app, (0.0, 0.0, 1.5, 0.0))
    no_errors(app)
    params = {k: v[0] if isinstance(v, list) else v for k, v in app.query_params.items()}
    assert params == {
        "model": "styled",
        "layers": "0-1",
        "code": "s42",
        "a": "2:1.5",
        "names": "2:hair  long",
    }

    opened = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=TIMEOUT_S)
    opened.query_params.update(params)
    opened.run()
    no_errors(opened)
    shown = edit(opened)
    assert (shown.model, shown.layers, shown.source) == ("styled", "0-1", CodeSource("seed", 42))
    assert shown.alphas == (0.0, 0.0, 1.5, 0.0) and shown.named == {2: "hair  long"}
    np.testing.assert_array_equal(shown_pixels(opened), shown_pixels(app))


def test_small_images_are_sent_lossless_and_drawn_with_sharp_pixels(app, generator):
    data = component_data(app, "edited")
    assert data["src"].startswith("data:image/png;base64,") and data["pixelated"]
    expected = session.render_original(generator, edit(app))
    np.testing.assert_array_equal(shown_pixels(app, "original"), expected)  # lossless: every pixel


def test_the_difference_view_shows_where_the_edit_acts(app):
    set_sliders(app, (0.0, 4.0, 0.0, 0.0, 0.0, 0.0))
    edited, original = shown_pixels(app).astype(int), shown_pixels(app, "original").astype(int)
    app.segmented_control(key="keep.view").set_value("Difference").run()
    no_errors(app)
    expected = np.clip(np.abs(edited - original) * 4, 0, 255)
    np.testing.assert_array_equal(shown_pixels(app), expected)
    app.select_slider(key="keep.zoom").set_value(4).run()
    assert component_data(app, "edited")["zoom"] == 4


def test_the_gif_has_the_steps_size_and_speed_asked_for(app, downloads):
    popover = app.get("popover") if hasattr(app, "get") else []
    assert popover is not None
    steps = next(s for s in app.select_slider if s.label == "Steps")
    steps.set_value(8)
    next(s for s in app.select_slider if s.label == "Size (px)").set_value(128)
    next(s for s in app.select_slider if s.label == "Frames per second").set_value(20)
    app.run()
    no_errors(app)
    gif = Image.open(io.BytesIO(downloads["sefa_default_prepared0_semantic000.gif"]()))
    assert gif.size == (64, 64)  # 64 px frames are never upscaled
    assert gif.n_frames == 2 * 8 - 2  # there and back
    assert gif.info["duration"] == 50


def test_the_sidebar_puts_the_title_above_the_pages_and_names_the_editor(app):
    """AppTest draws the router's sidebar on the first page only; the browser test checks every page."""
    kinds = [node.type for node in app.sidebar.children.values()]
    assert kinds[:2] == ["title", "page_link"] and app.sidebar.title[0].value == "SeFa Studio"
    assert page_links(app)[:4] == ["Editor", "Explore", "Directions", "Models"]


def page_links(app: AppTest) -> list[str]:
    return [node.proto.label for node in app.sidebar.children.values() if node.type == "page_link"]


def test_upload_limits_are_worded_in_mb(app):
    labels = [u.proto.label for u in app.get("file_uploader")]
    assert labels and all(" MB)" in label and "MiB" not in label for label in labels)


def test_the_sliders_are_the_leading_directions_of_the_full_factorization(app, generator):
    full = factorize(generator, "all")
    labels = component_data(app, "sliders")["labels"]
    assert labels == session.slider_labels(full, (), 6)  # same λ and the same share of all the energy


def test_use_the_layers_that_hold_90_percent_of_a_direction(app):
    on_model(app, "styled")
    button = next(b for b in app.button if b.label.startswith("Use the layers that hold 90 %"))
    held = button.label.rsplit("(", 1)[1].rstrip(")")
    button.click().run()
    no_errors(app)
    assert edit(app).layers == held and held != "all"
    assert app.sidebar.text_input(key="keep.spec.styled").value == held


def test_a_photo_gets_a_code_that_the_sliders_then_edit(app, generator):
    photo = session.render_original(
        generator,
        session.new_state(
            "default", generator, CodeSource("seed", 5), session.CodeRows(), session.Settings("all", 1)
        ),
    )
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "PNG")
    app.file_uploader(key="photo_upload").upload("me.png", buffer.getvalue()).run()
    next(n for n in app.number_input if n.label == "Steps").set_value(40)
    next(n for n in app.number_input if n.label == "Restarts").set_value(2)
    next(b for b in app.button if b.label == "Find its code").click().run()
    no_errors(app)
    assert edit(app).source == CodeSource("upload", 0, "me.png (photo)")
    assert app.session_state["photo"][2] > 0  # its PSNR, shown under the fitted photo
    found = shown_pixels(app, "original").astype(int)
    assert component_data(app, "original")["caption"] == "Original · me.png (photo) #0"
    other_face = session.render_original(generator, replace(edit(app), code=generator.sample(1, 6).numpy()))
    assert np.abs(found - photo).mean() < np.abs(other_face.astype(int) - photo).mean()
    set_sliders(app, (0.0, 3.0, 0.0, 0.0, 0.0, 0.0))
    assert np.abs(shown_pixels(app).astype(int) - found).mean() > 1


def test_the_explore_grid_is_labelled_and_marks_alpha_zero(app, downloads, generator):
    app.session_state["edit"] = edit(app).with_names({0: "smile"})
    app.switch_page("pages/1_Explore.py").run()
    next(b for b in app.button if b.label == "Render grid").click().run()
    no_errors(app)
    grid = np.asarray(Image.open(io.BytesIO(downloads["sefa_grid.png"]())))
    cells = app.session_state["explore.result"][1][0]  # (5, 11, 64, 64, 3)
    assert grid.shape[0] > cells.shape[0] * 64 and grid.shape[1] > cells.shape[1] * 64  # room for labels
    rows, columns, zero = session.grid_labels(
        factorize(generator, "all"), ("smile",), 5, list(range(-6, 7, 6))
    )
    assert rows[0].startswith("smile  ") and columns == ["-6.0", "0", "+6.0"] and zero == 1
    red = (grid[..., 0] > 200) & (grid[..., 1] < 120) & (grid[..., 2] < 120)
    assert red.sum() > 2 * 5 * 64  # the frame round the α = 0 column
    margin = grid[:, : grid.shape[1] - cells.shape[1] * 66]
    assert (margin < 128).any()  # row labels drawn


def test_a_direction_set_opens_in_the_editor_with_each_direction_on_its_own_rows(app, studio, downloads):
    on_model(app, "styled")
    set_sliders(app, (2.0, 0.0, -1.5, 0.0))
    app.switch_page("pages/2_Directions.py").run()
    app.text_input(key="keep.directions.name").input("mine").run()
    next(b for b in app.button if b.label == "Save set").click().run()
    no_errors(app)
    saved = studio / "direction_sets" / "mine.json"
    data = json.loads(saved.read_text())
    data["directions"][0]["layers"] = "0-1"  # the first direction moves the coarse rows only
    saved.write_text(json.dumps(data))
    set_sliders(app, (0.0, 0.0, 0.0, 0.0))
    app.switch_page("pages/2_Directions.py").run()
    next(s for s in app.selectbox if s.label.startswith("Saved in")).set_value(saved).run()
    next(b for b in app.button if b.label == "Open in editor").click().run()
    no_errors(app)
    shown = edit(app)
    assert shown.alphas == (2.0, 0.0, -1.5, 0.0) and shown.own_rows == {0: "0-1"}
    assert component_data(app, "sliders")["labels"][0].endswith(" · rows 0-1")
    recipe = parse_recipe(downloads["sefa_styled_seed0.yaml"]())
    assert dict(recipe.rows) == {0: "0-1"}
    styled = load_checkpoint(studio / "checkpoints" / "styled.pt", "cpu")
    exported = np.asarray(Image.open(io.BytesIO(downloads["sefa_styled_seed0.png"]())))
    np.testing.assert_array_equal(to_uint8(apply_recipe(recipe, styled))[0], exported)
    everywhere = replace(shown, rows=())  # the same sliders on the layer set's own rows differ
    assert not np.array_equal(session.render_edit(styled, factorize(styled, "all"), everywhere), exported)


def test_each_slider_has_a_preview_strip_at_minus_zero_and_plus_alpha(app, generator):
    previews = component_data(app, "previews")["previews"]
    assert len(previews) == 6 and all(len(strip) == 3 for strip in previews)
    thumbs = [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))) for src in previews[2]
    ]
    semantics = factorize(generator, "all")
    code = torch.from_numpy(edit(app).code)
    moved = session.render_code(
        generator, code + 6.0 * torch.from_numpy(semantics.directions[2]).float(), edit(app)
    )
    np.testing.assert_array_equal(thumbs[2], downscale(moved, 40))  # +α is the slider's max, 6
    np.testing.assert_array_equal(thumbs[1], downscale(session.render_original(generator, edit(app)), 40))
    assert not np.array_equal(thumbs[0], thumbs[2])
    set_sliders(app, (0.0, 3.0, 0.0, 0.0, 0.0, 0.0))
    assert component_data(app, "previews")["previews"] == previews  # kept while the sliders move
