"""The editor in a real headless Chromium: the image follows a slider DURING the drag.

Run with ``pytest -m browser``; skipped, with the reason printed, where Chromium or Playwright is
missing. One app and one browser serve every test here, to stay well under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import (
    EDITED_IMAGE,
    ORIGINAL_IMAGE,
    SLIDER,
    chromium,
    chromium_missing,
    image_src,
    open_editor,
    running_app,
    screenshot,
)

from sefa_core.default_model import default_checkpoint_path
from sefa_core.formats import load_checkpoint
from sefa_core.recipe import parse_recipe

pytestmark = pytest.mark.browser

DRAG_STEPS = 40
DRAG_STEP_MS = 25
FRAME_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if reason := chromium_missing():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("studio")
    (root / "latent_codes").mkdir()
    generator = load_checkpoint(default_checkpoint_path(), "cpu")
    np.save(root / "latent_codes" / "faces.npy", generator.sample(4, seed=3).numpy())
    (root / "config.yaml").write_text(
        """version: 1
models:
  - name: default
    source: default
    display_name: Faces
    layer_presets: {"every layer": "all", "first layer": "0"}
    slider: {min: -8.0, max: 8.0, step: 0.1}
    num_semantics: 6
    codes: latent_codes/faces.npy
"""
    )
    with (
        running_app(config=root / "config.yaml", log=root / "streamlit.log") as (url, _),
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_editor(page, url)
        yield page
        screenshot(page, "editor.png")


def wait_for_new_src(page, selector: str, old: str) -> str:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while time.monotonic() < deadline:
        src = image_src(page, selector)
        if src and src != old:
            return src
        page.wait_for_timeout(20)
    raise AssertionError(f"{selector} did not change within {FRAME_TIMEOUT_S} s")


def slider_value(page, index: int) -> float:
    return float(page.locator(SLIDER.format(index=index)).input_value())


def test_the_image_follows_a_slider_during_the_drag(page):
    before = image_src(page, EDITED_IMAGE)
    box = page.locator(SLIDER.format(index=0)).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    seen = {before}
    for step in range(1, DRAG_STEPS + 1):
        page.mouse.move(box["x"] + box["width"] / 2 + step * (box["width"] / 2 - 8) / DRAG_STEPS, y)
        page.wait_for_timeout(DRAG_STEP_MS)
        seen.add(image_src(page, EDITED_IMAGE))
    during = len(seen) - 1
    screenshot(page, "during_drag.png")
    page.mouse.up()
    assert during >= 3, f"only {during} new image(s) appeared before the mouse was released"
    released_at = slider_value(page, 0)
    assert released_at > 6.0
    page.wait_for_timeout(500)  # letting go refreshes the exports
    with page.expect_download() as download:
        page.get_by_role("button", name="Recipe").click()
    recipe = parse_recipe(Path(download.value.path()).read_text())
    assert recipe.alphas == {0: pytest.approx(released_at)}


def test_random_shows_a_new_face(page):
    before = image_src(page, ORIGINAL_IMAGE)
    page.get_by_role("button", name="Random").click()
    wait_for_new_src(page, ORIGINAL_IMAGE, before)


def test_picking_a_prepared_code_shows_it(page):
    page.locator(".st-key-code_pick").click()
    before = image_src(page, ORIGINAL_IMAGE)
    page.get_by_role("option", name="#3").click()
    wait_for_new_src(page, ORIGINAL_IMAGE, before)
    assert page.get_by_text("Original · prepared code #3").is_visible()


def test_reset_puts_the_sliders_back(page):
    page.locator(SLIDER.format(index=2)).fill("4")  # sets the value and fires input + change
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    page.get_by_role("button", name="Reset").click()
    while slider_value(page, 2) != 0.0 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert slider_value(page, 2) == 0.0
    assert page.locator(SLIDER.format(index=5)).is_visible()
    assert not page.get_by_test_id("stException").count()
    path = screenshot(page, "after_reset.png")
    assert Path(path).stat().st_size > 0
