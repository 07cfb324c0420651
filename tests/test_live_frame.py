"""What one slider move costs the page (issue 17's speed goal). While a slider is dragged, each
position is one HTTP request whose answer is the new image (``studio_ui.frames``): nothing goes
over Streamlit's websocket, no script runs. Letting go, or a frame request that fails, goes through
Streamlit, and then the server sends the edited image and the slider bank, in one script run, and
nothing else the move did not change.

Run with ``pytest -m browser``; skipped, with the reason printed, where Chromium or Playwright is
missing.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from browser_support import (
    ALL_SLIDERS,
    EDITED_IMAGE,
    ORIGINAL_IMAGE,
    SLIDER,
    chromium,
    chromium_missing,
    image_src,
    open_editor,
    running_app,
)
from PIL import Image
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

pytestmark = pytest.mark.browser

FRAME_TIMEOUT_S = 30.0
SETTLE_MS = 500  # after the new image: the run's last messages (script_finished) arrive
FRAME_ROUTE = "**/sefa/frame/*"
# A drag's move: the value and an ``input`` event, no ``change`` (a release would refresh the exports).
DRAG_TO = (
    "(slider, value) => { slider.value = value; slider.dispatchEvent(new Event('input', {bubbles: true})); }"
)
RELEASE = "slider => slider.dispatchEvent(new Event('change', {bubbles: true}))"
# The bytes behind the edited image's src (a blob: or data: URL), as base64.
IMAGE_BYTES = """async img => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let text = ""; for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}"""


def received_messages(frames: list[str]) -> list[ForwardMsg]:
    messages = []
    for payload in frames:
        message = ForwardMsg()
        message.ParseFromString(base64.b64decode(payload))
        messages.append(message)
    return messages


def _wait_for_new_src(page, before: str) -> str:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while (now := image_src(page, EDITED_IMAGE)) == before:
        assert time.monotonic() < deadline, "no new image after a slider move"
        page.wait_for_timeout(20)
    return now


def _pixels(page) -> np.ndarray:
    encoded = page.locator(EDITED_IMAGE).evaluate(IMAGE_BYTES)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"), dtype=np.int16)


def _websocket_traffic(page) -> dict[str, list[str]]:
    """Every websocket frame the page receives and sends from now on."""
    traffic: dict[str, list[str]] = {"received": [], "sent": []}
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.on(
        "Network.webSocketFrameReceived", lambda e: traffic["received"].append(e["response"]["payloadData"])
    )
    network.on("Network.webSocketFrameSent", lambda e: traffic["sent"].append(e["response"]["payloadData"]))
    return traffic


@contextlib.contextmanager
def _editor() -> Iterator:
    """The editor on the default model in a fresh app and browser (skips where Chromium is missing)."""
    if reason := chromium_missing():
        pytest.skip(reason)
    with running_app() as (url, _), chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_editor(page, url)
        yield page


def test_a_drag_move_is_one_http_frame_and_nothing_on_the_websocket():
    with _editor() as page:
        before = image_src(page, EDITED_IMAGE)
        page.wait_for_timeout(SETTLE_MS)
        requests = []
        page.on("requestfinished", lambda request: requests.append(request))
        traffic = _websocket_traffic(page)
        page.locator(SLIDER.format(index=0)).evaluate(DRAG_TO, "2.5")
        shown = _wait_for_new_src(page, before)
        dragged = _pixels(page)
        page.wait_for_timeout(SETTLE_MS)
        frames = [r for r in requests if "/sefa/frame/" in r.url]
        assert shown.startswith("blob:"), shown[:40]
        assert len(frames) == 1, [r.url for r in requests]
        sliders = page.locator(ALL_SLIDERS).count()
        assert frames[0].method == "POST"
        assert json.loads(frames[0].post_data) == {"alphas": [2.5] + [0.0] * (sliders - 1)}
        assert frames[0].response().headers["content-type"] == "image/png"  # 64 px: lossless
        assert traffic == {"received": [], "sent": []}, "a drag move went over the websocket"

        # Letting go goes through Streamlit, which draws the same pixels the drag showed.
        page.locator(SLIDER.format(index=0)).evaluate(RELEASE)
        _wait_for_new_src(page, shown)
        released = _pixels(page)
        assert image_src(page, EDITED_IMAGE).startswith("data:image/png")
        assert traffic["sent"], "letting go sent nothing to Python"
        diff = int(np.abs(released - dragged).max())
        assert diff <= 1, f"the dragged frame and the released image differ by up to {diff}"


def test_without_drag_frames_a_move_sends_only_the_edited_image_and_the_sliders():
    """A frame request that fails (here: refused) falls back to Streamlit for that move."""
    with _editor() as page:
        page.route(FRAME_ROUTE, lambda route: route.abort())
        original, before = image_src(page, ORIGINAL_IMAGE), image_src(page, EDITED_IMAGE)
        page.wait_for_timeout(SETTLE_MS)
        traffic = _websocket_traffic(page)
        page.locator(SLIDER.format(index=0)).evaluate(DRAG_TO, "2.5")
        assert _wait_for_new_src(page, before).startswith("data:image/png")
        page.wait_for_timeout(SETTLE_MS)
        assert image_src(page, ORIGINAL_IMAGE) == original  # still shown, and never sent again
    messages = received_messages(traffic["received"])
    kinds = [message.WhichOneof("type") for message in messages]
    elements = [
        message.delta.new_element.bidi_component.component_name
        for message in messages
        if message.WhichOneof("type") == "delta" and message.delta.WhichOneof("type") == "new_element"
    ]
    blocks = [
        m for m in messages if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "add_block"
    ]
    assert kinds.count("new_session") == 1, kinds  # one script run, not a second one queued by st.rerun
    assert [name.rsplit(".", 1)[-1] for name in elements] == ["live_image", "slider_bank"], elements
    assert len(blocks) <= 2, kinds  # the fragment's own block and the sliders' slot: no columns
    assert "ref_hash" not in kinds, kinds  # no element re-sent as a cached message (the original)


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_frame_request_with_a_wrong_token_or_wrong_values_is_refused_in_one_line():
    with _editor() as page:
        with page.expect_request("**/sefa/frame/*") as request:
            page.locator(SLIDER.format(index=0)).evaluate(DRAG_TO, "1.5")
        frame_url, sliders = request.value.url, page.locator(ALL_SLIDERS).count()
        good = json.dumps({"alphas": [1.0] * sliders}).encode()
        assert _post(frame_url, good) == (200, "image/png")
        assert _post(frame_url + "x", good) == (404, "no such live view (reload the page)")
        status, text = _post(frame_url, json.dumps({"alphas": [1.0, "a"]}).encode())
        assert (status, text) == (400, f'expected JSON {{"alphas": [{sliders} finite numbers]}}')
        assert _post(frame_url, b"not json")[0] == 400
        assert _post(frame_url, b"[" * (1 << 17))[0] == 413
