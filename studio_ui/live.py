"""The two live widgets of the editor, as ``st.components.v2`` components (no iframe).

``slider_bank`` sends slider values while they are dragged (one request in flight, newest value
wins) and ``live_image`` swaps the pixels of one ``<img>`` in place, so one fragment rerun is one
frame on screen. The frontends are the plain files in ``frontend/``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import streamlit as st

from sefa_core.config import SliderRange
from sefa_core.render import LIVE_FORMAT, encode_image

FRONTEND = Path(__file__).parent / "frontend"
LIVE_STATE = "live"  # the component state the slider bank sends: {alphas: [float], seq: int}
# Images up to this size (px, the longer side) go as lossless PNG and are scaled up nearest-neighbour,
# so that every generated pixel stays a sharp square; larger ones go as JPEG (much faster to encode).
LOSSLESS_MAX_PX = 256


def _read(name: str) -> str:
    return (FRONTEND / name).read_text(encoding="utf-8")


_slider_bank = st.components.v2.component(
    "sefa_studio.slider_bank", css=_read("slider_bank.css"), js=_read("slider_bank.js")
)
_live_image = st.components.v2.component(
    "sefa_studio.live_image", css=_read("live_image.css"), js=_read("live_image.js")
)
_preview_strips = st.components.v2.component("sefa_studio.preview_strips", js=_read("preview_strips.js"))
_copy_link = st.components.v2.component(
    "sefa_studio.copy_link", css=_read("copy_link.css"), js=_read("copy_link.js")
)


def slider_bank(
    labels: Sequence[str],
    slider: SliderRange,
    values: Sequence[float],
    *,
    revision: int,
    ack: int,
    key: str,
    on_change: Callable[[], None],
    frame_url: str = "",
) -> None:
    """One range slider per label. ``revision`` moves them to ``values``; ``ack`` frees the next send.
    Each slider shows the preview strip that ``preview_strips`` last sent, if any. With a
    ``frame_url`` (``studio_ui.frames``), drag positions fetch their frames from there."""
    _slider_bank(
        key=key,
        data={
            "labels": list(labels),
            "min": slider.min,
            "max": slider.max,
            "step": slider.step,
            "values": [float(v) for v in values],
            "revision": revision,
            "ack": ack,
            "frameUrl": frame_url,
        },
        on_live_change=on_change,
    )


def is_small(pixels: np.ndarray) -> bool:
    return max(pixels.shape[:2]) <= LOSSLESS_MAX_PX


def encode_frame(pixels: np.ndarray) -> tuple[bytes, str]:
    """uint8 (H, W, 3) -> (bytes, media type): PNG when small, else JPEG."""
    image_format = "PNG" if is_small(pixels) else LIVE_FORMAT
    return encode_image(pixels, image_format), f"image/{image_format.lower()}"


def image_src(pixels: np.ndarray) -> str:
    """uint8 (H, W, 3) -> a data URI: no media-file request per frame."""
    content, media_type = encode_frame(pixels)
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


def live_image(
    pixels: np.ndarray,
    caption: str,
    *,
    key: str,
    zoom: int = 1,
    src: str | None = None,
    ack: int | None = None,
) -> None:
    """An image whose pixels change in place when it is drawn again with new ones; ``zoom`` > 1
    shows it larger, in a box that scrolls. ``src``: the pixels already encoded (``image_src``).
    ``ack`` (the slider request drawn) makes it the live image: it shows the slider bank's drag
    frames between runs, and each run's new ``ack`` puts Python's pixels back."""
    _live_image(
        key=key,
        data={
            "src": src or image_src(pixels),
            "alt": caption,
            "caption": caption,
            "zoom": zoom,
            "pixelated": is_small(pixels),
            "live": ack is not None,
            "ack": ack or 0,
        },
    )


def preview_strips(previews: Sequence[Sequence[str]], *, key: str) -> None:
    """Hand the slider bank its preview strips (per slider, data URIs at [-α, 0, +α]). Drawn outside
    the live fragment, so that the thumbnails are sent once, not with every frame; nothing shows."""
    _preview_strips(key=key, data={"previews": [list(strip) for strip in previews]})


def copy_link(*, key: str) -> None:
    """A button that copies the page's address (which names what it shows) to the clipboard."""
    _copy_link(key=key, data={"label": "Copy link"})
