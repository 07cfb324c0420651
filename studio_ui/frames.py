"""Drag frames over plain HTTP, beside Streamlit's websocket.

While a slider is dragged, each position is one POST of the slider values to ``/sefa/frame/<token>``
and the answer is the image: no script run, no deltas, no React re-render. Through the websocket a
frame cost the page's main thread 47-58 ms of CPU on 2 cores (BENCHMARKS.md 3c), against 7 ms to
render the default DCGAN. Letting go of a slider still goes through Streamlit, so that the session's
state, the link and the exports catch up.

The live fragment publishes what a frame needs (a ``LiveScene``) under its session's token on every
run. A token that is unknown or dropped, or whose model the cache has let go, answers 404, and the
browser falls back to the websocket for that move. The scene holds the model weakly: the model cache
stays its only owner. The routes exist only where ``app.py`` runs as an ``st.App`` (``streamlit run``
finds it); ``served()`` tells the editor whether to hand the browser a frame address.
"""

from __future__ import annotations

import json
import secrets
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sefa_core import session
from sefa_core.config import SliderRange
from sefa_core.factorize import Semantics
from sefa_core.models.base import Generator
from sefa_core.render import difference_image
from sefa_core.session import EditState
from studio_ui import live, resources

FRAME_PATH = "/sefa/frame"  # outside /_stcore, which Streamlit reserves
MAX_SCENES = 64  # sessions whose scene is kept; the oldest goes first (its browser falls back)
MAX_BODY_BYTES = 64 * 1024  # a request carries one float per slider


@dataclass(frozen=True)
class LiveScene:
    """What one session's live view shows, less the slider values each frame brings."""

    generator: weakref.ref[Generator]
    semantics: Semantics
    edit: EditState  # its alphas are replaced by each frame's
    slider: SliderRange
    original: np.ndarray | None = None  # set in the "Difference" view: frames show |edited - original|


class SceneBoard:
    """token -> the newest ``LiveScene`` of that session, for the ``capacity`` sessions seen last."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._scenes: OrderedDict[str, LiveScene] = OrderedDict()
        self._lock = threading.Lock()  # sessions publish from their script threads, frames read from others
        self.mounted = False  # whether this process serves the frame routes

    def publish(self, token: str, scene: LiveScene) -> None:
        with self._lock:
            self._scenes[token] = scene
            self._scenes.move_to_end(token)
            while len(self._scenes) > self._capacity:
                self._scenes.popitem(last=False)

    def get(self, token: str) -> LiveScene | None:
        with self._lock:
            return self._scenes.get(token)


BOARD = SceneBoard(MAX_SCENES)


def new_token() -> str:
    """A session's frame token: unguessable, since whoever holds it can render that session's edit."""
    return secrets.token_urlsafe(18)


def served() -> bool:
    return BOARD.mounted


def frame_url(token: str) -> str:
    """Where the browser fetches this session's drag frames; "" where this process serves none."""
    return f"{FRAME_PATH}/{token}" if served() else ""


def render_frame(scene: LiveScene, alphas: tuple[float, ...]) -> tuple[bytes, str] | None:
    """The scene at ``alphas`` as (encoded bytes, media type); None once its model has left the cache."""
    generator = scene.generator()
    if generator is None:
        return None
    resources.use_torch_threads()  # this thread is the route's, not a script's
    pixels = session.render_edit(generator, scene.semantics, scene.edit.with_alphas(alphas))
    if scene.original is not None:
        pixels = difference_image(pixels, scene.original)
    return live.encode_frame(pixels)


async def _frame(request: Request) -> Response:
    scene = BOARD.get(request.path_params["token"])
    if scene is None:
        return PlainTextResponse("no such live view (reload the page)", status_code=404)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return PlainTextResponse("request too large", status_code=413)
    try:
        values = json.loads(body).get("alphas")
    except (ValueError, AttributeError):
        values = None
    alphas = session.client_alphas(values, len(scene.edit.alphas), scene.slider)
    if alphas is None:
        expected = f"{len(scene.edit.alphas)} finite numbers"
        return PlainTextResponse(f'expected JSON {{"alphas": [{expected}]}}', status_code=400)
    try:
        frame = await run_in_threadpool(render_frame, scene, alphas)
    except Exception as error:  # noqa: BLE001 - the browser falls back to the websocket, which shows it
        return PlainTextResponse(f"rendering failed: {error}", status_code=500)
    if frame is None:
        return PlainTextResponse("the model has left the cache (reload the page)", status_code=404)
    content, media_type = frame
    return Response(content, media_type=media_type, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The frame route, for ``st.App(..., routes=frames.routes())``; from then on ``served()``."""
    BOARD.mounted = True
    return [Route(FRAME_PATH + "/{token}", _frame, methods=["POST"])]
