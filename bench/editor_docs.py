"""The README's pictures of the editor, made by driving it: a screenshot, and a GIF of a slider dragged.

    .venv/bin/python -m bench.editor_docs            # writes docs/editor_screenshot.png, docs/editor_drag.gif

Starts the app on the default model in a free local port, opens it in headless Chromium (as the
browser tests do), and records what the page shows while slider 0 is dragged from 0 to +5 and back.
"""

from __future__ import annotations

import argparse
import io
import time

from PIL import Image

from bench.common import REPO_ROOT, use_test_helpers

DOCS = REPO_ROOT / "docs"
SCREENSHOT = DOCS / "editor_screenshot.png"
DRAG_GIF = DOCS / "editor_drag.gif"
VIEWPORT = {"width": 1280, "height": 860}
DRAG_FRAMES = 16  # positions there and back
FRAME_WAIT_MS = 120  # per position: the image catches up on a loaded machine
GIF_WIDTH = 560  # px
GIF_FRAME_MS = 100


def drag_frames(page, slider: str, frames: int) -> list[Image.Image]:
    """Screenshots of the image and sliders while the mouse drags ``slider`` right, then back."""
    box = page.locator(slider).bounding_box()
    y = box["y"] + box["height"] / 2
    middle, right = box["x"] + box["width"] / 2, box["x"] + box["width"] * 0.82
    area = page.locator(".st-key-editor_area").first
    page.mouse.move(middle, y)
    page.mouse.down()
    shots = []
    half = frames // 2
    for step in [*range(half + 1), *range(half - 1, -1, -1)]:
        page.mouse.move(middle + (right - middle) * step / half, y)
        page.wait_for_timeout(FRAME_WAIT_MS)
        shots.append(Image.open(io.BytesIO(area.screenshot())).convert("RGB"))
    page.mouse.up()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DRAG_FRAMES)
    args = parser.parse_args()
    use_test_helpers()
    from browser_support import SLIDER, chromium, chromium_missing, open_editor, running_app

    if reason := chromium_missing():
        raise SystemExit(f"cannot drive a browser: {reason}")
    DOCS.mkdir(exist_ok=True)
    started = time.perf_counter()
    with running_app() as (url, _), chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        open_editor(page, url)
        page.locator(SLIDER.format(index=1)).fill("3")  # an edit on screen, so the picture shows one
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SCREENSHOT))
        shots = drag_frames(page, SLIDER.format(index=0), args.frames)
    scale = GIF_WIDTH / shots[0].width
    size = (GIF_WIDTH, round(shots[0].height * scale))
    frames = [shot.resize(size, Image.Resampling.LANCZOS) for shot in shots]
    frames[0].save(
        DRAG_GIF, save_all=True, append_images=frames[1:], duration=GIF_FRAME_MS, loop=0, optimize=True
    )
    print(f"{SCREENSHOT.relative_to(REPO_ROOT)}: {SCREENSHOT.stat().st_size / 1024:.0f} KiB")
    print(
        f"{DRAG_GIF.relative_to(REPO_ROOT)}: {len(frames)} frames, {DRAG_GIF.stat().st_size / 1024:.0f} KiB"
    )
    print(f"in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
