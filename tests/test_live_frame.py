"""What one slider move costs the page: the server sends the edited image and the slider bank, in one
script run, and nothing else the move did not change (issue 17's speed goal: every element a frame
re-sends is work for the server and for the browser).

Run with ``pytest -m browser``; skipped, with the reason printed, where Chromium or Playwright is
missing.
"""

from __future__ import annotations

import base64
import time

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
)
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

pytestmark = pytest.mark.browser

FRAME_TIMEOUT_S = 30.0
SETTLE_MS = 500  # after the new image: the run's last messages (script_finished) arrive
# A drag's move: the value and an ``input`` event, no ``change`` (a release would refresh the exports).
DRAG_TO = (
    "(slider, value) => { slider.value = value; slider.dispatchEvent(new Event('input', {bubbles: true})); }"
)


def received_messages(frames: list[str]) -> list[ForwardMsg]:
    messages = []
    for payload in frames:
        message = ForwardMsg()
        message.ParseFromString(base64.b64decode(payload))
        messages.append(message)
    return messages


def test_a_slider_move_sends_only_the_edited_image_and_the_sliders():
    if reason := chromium_missing():
        pytest.skip(reason)
    with running_app() as (url, _), chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_editor(page, url)
        original, before = image_src(page, ORIGINAL_IMAGE), image_src(page, EDITED_IMAGE)
        page.wait_for_timeout(SETTLE_MS)
        frames: list[str] = []
        network = page.context.new_cdp_session(page)
        network.send("Network.enable")
        network.on(
            "Network.webSocketFrameReceived", lambda event: frames.append(event["response"]["payloadData"])
        )
        page.locator(SLIDER.format(index=0)).evaluate(DRAG_TO, "2.5")
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while image_src(page, EDITED_IMAGE) == before:
            assert time.monotonic() < deadline, "no new image after a slider move"
            page.wait_for_timeout(20)
        page.wait_for_timeout(SETTLE_MS)
        assert image_src(page, ORIGINAL_IMAGE) == original  # still shown, and never sent again
    messages = received_messages(frames)
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
