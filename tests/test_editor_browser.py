"""The editor in headless Chromium, as a new user sees it (issue 17): nothing fetched from outside,
the sidebar, narrow windows, exact slider values, links that bring the same image back.

Run with ``pytest -m browser``; skipped, with the reason printed, where Chromium or Playwright is
missing. One app serves every test here; each test opens its own page.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

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

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
INLINE_SCHEMES = {"data", "blob", "about"}
FRAME_TIMEOUT_S = 30.0
SIDEBAR_TITLE = "[data-testid='stSidebar'] h1"
PAGE_LINKS = "[data-testid='stSidebar'] [data-testid='stPageLink-NavLink']"
PAGES = ("Editor", "Explore", "Directions", "Models")  # the sidebar's page list, in order


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
    slider: {min: -8.0, max: 8.0, step: 0.1}
    num_semantics: 6
    codes: latent_codes/faces.npy
"""
    )
    with (
        running_app(config=root / "config.yaml", log=root / "streamlit.log") as (url, _),
        chromium() as browser,
    ):
        yield url, browser


def new_page(server, width: int = 1440, height: int = 1000):
    url, browser = server
    context = browser.new_context(viewport={"width": width, "height": height})
    return context, context.new_page(), url


def wait_for_new_src(page, selector: str, old: str) -> str:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while time.monotonic() < deadline:
        src = image_src(page, selector)
        if src and src != old:
            return src
        page.wait_for_timeout(30)
    raise AssertionError(f"{selector} did not change within {FRAME_TIMEOUT_S} s")


def test_no_request_leaves_localhost_on_any_page(server):
    context, page, url = new_page(server)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    open_editor(page, url)
    page.wait_for_load_state("networkidle")
    for label in PAGES[1:]:
        page.locator(PAGE_LINKS).filter(has_text=label).first.click()
        page.get_by_role("heading").first.wait_for()
        page.wait_for_load_state("networkidle")
    context.close()
    outside = [
        u
        for u in requests
        if urlsplit(u).scheme not in INLINE_SCHEMES and urlsplit(u).hostname not in LOCAL_HOSTS
    ]
    assert len(requests) > 10 and outside == []
    assert console_errors == []


def test_every_page_has_the_title_above_the_page_list_and_the_editor_named_editor(server):
    context, page, url = new_page(server)
    open_editor(page, url)
    for label in PAGES:
        page.locator(PAGE_LINKS).filter(has_text=label).first.click()
        page.get_by_role("heading").first.wait_for()
        title = page.locator(SIDEBAR_TITLE).first
        assert title.inner_text() == "SeFa Studio"
        links = page.locator(PAGE_LINKS)
        assert links.all_inner_texts()[0].strip().endswith("Editor")
        assert title.bounding_box()["y"] < links.first.bounding_box()["y"]
    context.close()


@pytest.mark.parametrize("width", [820, 390])
def test_narrow_windows_wrap_buttons_and_phones_put_the_sliders_under_the_image(server, width):
    context, page, url = new_page(server, width=width, height=900)
    open_editor(page, url)
    cut = page.locator("button p, button div").evaluate_all(
        "els => els.filter(e => e.offsetWidth > 0 && e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.textContent)"
    )
    assert cut == []
    image = page.locator(EDITED_IMAGE).bounding_box()
    slider = page.locator(SLIDER.format(index=0)).bounding_box()
    if width == 390:
        assert slider["y"] >= image["y"] + image["height"]
    screenshot(page, f"editor_{width}px.png")
    context.close()


def test_a_typed_value_moves_the_slider_and_the_image(server):
    context, page, url = new_page(server)
    open_editor(page, url)
    before = image_src(page, EDITED_IMAGE)
    exact = page.locator(".st-key-sliders input[data-exact='1']")
    exact.fill("3.7")
    exact.press("Enter")
    wait_for_new_src(page, EDITED_IMAGE, before)
    assert float(page.locator(SLIDER.format(index=1)).input_value()) == pytest.approx(3.7)
    assert page.locator(".st-key-sliders .count").inner_text() == "1 edit active"
    strip = page.locator(".st-key-sliders .strip").nth(1).locator("img")
    assert strip.count() == 3 and all(
        (strip.nth(k).get_attribute("src") or "").startswith("data:image/") for k in range(3)
    )
    context.close()


def test_a_link_brings_the_same_image_back(server):
    context, page, url = new_page(server)
    open_editor(page, url)
    page.get_by_role("button", name="Random").click()
    page.locator(".st-key-original figcaption").filter(has_text="#1").wait_for()
    before = image_src(page, EDITED_IMAGE)
    page.locator(SLIDER.format(index=2)).fill("-4")
    edited = wait_for_new_src(page, EDITED_IMAGE, before)
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while "a=2" not in page.url and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    link = page.url
    assert "code=p1" in link and "a=2%3A-4" in link or "a=2:-4" in link
    context.close()
    context, page, _ = new_page(server)
    open_editor(page, link)
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while image_src(page, EDITED_IMAGE) != edited and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert image_src(page, EDITED_IMAGE) == edited
    assert float(page.locator(SLIDER.format(index=2)).input_value()) == -4.0
    assert page.locator(ORIGINAL_IMAGE).is_visible()
    context.close()


def test_copy_link_puts_the_address_that_shows_this_image_on_the_clipboard(server):
    url, browser = server
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    open_editor(page, url)
    page.locator(SLIDER.format(index=0)).fill("2")
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while "a=0" not in page.url and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.get_by_role("button", name="Copy link").click()
    page.get_by_role("button", name="Link copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == page.url
    context.close()
