"""Drag frames over HTTP (``studio_ui.frames``) and the socket option the server needs for them
(``studio_ui.server``): a dragged frame shows exactly what Streamlit would draw for those values,
no session's scene outlives the bound, and no small response waits 40 ms for a delayed ACK."""

from __future__ import annotations

import gc
import io
import socket
import sys
import weakref

import numpy as np
import pytest
from PIL import Image

from sefa_core import session
from sefa_core.config import SliderRange
from sefa_core.factorize import factorize
from sefa_core.render import difference_image
from sefa_core.session import CodeRows, CodeSource, Settings
from studio_ui import frames, server

SLIDER = SliderRange(-5.0, 5.0, 0.1)
ALPHAS = (0.0, 2.5, 0.0, -1.0, 0.0)


@pytest.fixture(scope="module")
def scene(default_generator) -> frames.LiveScene:
    semantics = factorize(default_generator, "all")
    rows = CodeRows(default_generator.sample(2, seed=5), "prepared")
    edit = session.new_state(
        "default", default_generator, CodeSource("prepared", 1), rows, Settings("all", 5)
    )
    return frames.LiveScene(weakref.ref(default_generator), semantics, edit, SLIDER)


def _decoded(frame: tuple[bytes, str] | None) -> np.ndarray:
    assert frame is not None
    content, media_type = frame
    assert media_type == "image/png"  # 64 px: lossless, so the pixels compare exactly
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def test_a_dragged_frame_shows_the_edit_at_those_slider_values(default_generator, scene):
    shown = _decoded(frames.render_frame(scene, ALPHAS))
    expected = session.render_edit(default_generator, scene.semantics, scene.edit.with_alphas(ALPHAS))
    np.testing.assert_array_equal(shown, expected)
    assert not np.array_equal(shown, session.render_original(default_generator, scene.edit))


def test_in_the_difference_view_a_dragged_frame_shows_the_difference(default_generator, scene):
    original = session.render_original(default_generator, scene.edit)
    difference = frames.render_frame(frames.LiveScene(**{**vars(scene), "original": original}), ALPHAS)
    edited = session.render_edit(default_generator, scene.semantics, scene.edit.with_alphas(ALPHAS))
    np.testing.assert_array_equal(_decoded(difference), difference_image(edited, original))


def test_a_scene_whose_model_left_the_cache_renders_nothing(scene):
    class Gone:
        pass

    gone = Gone()
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert frames.render_frame(frames.LiveScene(**{**vars(scene), "generator": ref}), ALPHAS) is None


def test_the_board_keeps_the_newest_scene_of_the_sessions_seen_last(scene):
    board = frames.SceneBoard(capacity=2)
    board.publish("a", scene)
    board.publish("b", scene)
    newer = frames.LiveScene(**{**vars(scene), "slider": SliderRange(-3.0, 3.0, 0.1)})
    board.publish("a", newer)  # "a" is now the newest, "b" the oldest
    board.publish("c", scene)
    assert board.get("a") is newer and board.get("c") is scene
    assert board.get("b") is None, "the session seen longest ago was dropped"


def test_tokens_are_unguessable_and_no_frame_address_is_given_without_the_route(monkeypatch):
    tokens = {frames.new_token() for _ in range(100)}
    assert len(tokens) == 100 and min(len(t) for t in tokens) >= 24
    monkeypatch.setattr(frames.BOARD, "mounted", False)
    assert frames.frame_url("abc") == ""  # e.g. under AppTest, which mounts no routes
    (route,) = frames.routes()
    assert frames.served() and frames.frame_url("abc") == "/sefa/frame/abc"
    assert route.path == "/sefa/frame/{token}" and route.methods == {"POST"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd, which only Linux has")
def test_connections_to_the_server_socket_get_no_delay():
    """Streamlit binds its listener with protocol 0, so asyncio leaves Nagle on; we turn it off."""
    listener = socket.socket(socket.AF_INET)  # as Streamlit binds it: proto 0
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        assert listener.proto == 0
        assert listener.fileno() in server.listening_tcp_sockets()
        assert server.no_delay_on_listeners() >= 1
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), "Nagle still on"
            assert client.fileno() not in server.listening_tcp_sockets()
    finally:
        listener.close()
