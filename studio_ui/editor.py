"""The editor page's widgets that need more than one line: the layer picker, the image views, the
slider names, the GIF options. ``pages/0_Editor.py`` reads top to bottom; the details are here.

None of these keeps a Generator: pickers get plain strings (no ``format_func`` closing over a
model), and fragments get a ``ModelRef`` and ask the model cache for the model on every run.
"""

from __future__ import annotations

import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from sefa_core import session
from sefa_core.config import ModelEntry, SliderRange
from sefa_core.errors import SefaError
from sefa_core.factorize import DEFAULT_ENERGY_SHARE, Semantics, layers_holding
from sefa_core.invert import DEFAULT_RESTARTS, DEFAULT_STEPS, MAX_PHOTO_BYTES, invert_image, load_photo
from sefa_core.layers import format_layers
from sefa_core.models.base import Generator
from sefa_core.registry import ModelStatus
from sefa_core.render import DIFFERENCE_GAIN, difference_image, downscale, gif_bytes
from sefa_core.session import EditState
from studio_ui import frames, live, resources, state

VIEWS = ("Side by side", "Edited", "Original", "Difference")
ZOOMS = (1, 2, 4, 8)
GIF_STEPS = (8, 16, 24, 32, 48)
GIF_SIZES = (64, 128, 256, 512)  # px: larger frames are shrunk, as the CLI does
GIF_FPS = (5, 10, 12, 15, 20, 25)
DEFAULT_GIF = {"steps": 16, "size": 256, "fps": 12}
MIB = 1024 * 1024
MAX_INVERSION_STEPS = 5000
MAX_RESTARTS = 32


@dataclass(frozen=True)
class ModelRef:
    """Where the model is, for a fragment to fetch it from the cache; never a strong reference.

    ``alive`` is a weak reference to the model the full run used: while the cache keeps it, a frame
    gets it without a cache lookup (1-2 ms a frame); once evicted, from the cache again.
    """

    path: Path
    device: str
    classes: tuple[str, ...] | None = None  # config.yaml's class names, which a conditional DCGAN needs
    alive: weakref.ref[Generator] | None = field(default=None, compare=False)

    def generator(self) -> Generator:
        model = self.alive() if self.alive is not None else None
        return model if model is not None else resources.generator(self.path, self.device, self.classes)


def model_label(status: ModelStatus) -> str:
    return status.entry.label + ("" if status.available else " (unavailable)")


def layer_keys(model: str) -> tuple[str, str]:
    """The session keys of ``model``'s layer picker and custom spec box."""
    return f"{state.KEEP}layers.{model}", f"{state.KEEP}spec.{model}"


def layer_picker(entry: ModelEntry, generator: Generator, model: str) -> str:
    """The layer spec to factorize: a preset, or a custom spec. A model with one factorizable layer
    (DCGAN, PGGAN) has nothing to choose: it gets a caption, not a picker."""
    if session.has_one_layer(generator):
        st.sidebar.caption(
            f"Layers: **{generator.layer_names[0]}**, this model's only factorizable layer (layer 0)."
        )
        return "all"
    presets = session.layer_choices(entry, generator)
    choices = {name: f"{name} · {spec}" for name, spec in presets.items()} | {
        session.CUSTOM_LAYERS: session.CUSTOM_LAYERS
    }
    picker, spec_key = layer_keys(model)
    if st.session_state.get(picker) not in choices:
        st.session_state[picker] = next(iter(presets))
    preset = st.sidebar.selectbox(
        "Layers",
        list(choices),
        format_func=choices.get,
        key=picker,
        help=f"Which of the {len(generator.layer_names)} layers SeFa factorizes (and, for W+ models, "
        f"which W+ rows an edit moves): e.g. all, 0-1, or 2,4,6-8.",
    )
    if preset != session.CUSTOM_LAYERS:
        return presets[preset]
    return st.sidebar.text_input(
        "Layer spec",
        key=state.default(spec_key, next(iter(presets.values()))),
        help=f"Layers 0-{len(generator.layer_names) - 1}: e.g. all, 0-1, or 2,4,6-8",
    )


def class_labels(generator: Generator) -> list[str]:
    names = generator.class_names
    return [f"{k} · {names[k]}" if names else str(k) for k in range(generator.num_classes)]


def row_label(index: int) -> str:
    return f"#{index}"


def original_view(generator: Generator, edit: EditState, view: str | None, zoom: int) -> DeltaGenerator:
    """Draw the original where ``view`` shows it and return where the live image goes.

    Drawn by the full run only: a slider move reruns the live image, not the original beside it.
    """
    view = view or VIEWS[0]
    if view == "Side by side":
        spot, original_col = st.columns(2)
    elif view == "Original":
        spot = original_col = st.container()
    else:
        return st.container()
    original = state.original_pixels(generator, edit)
    with original_col:
        _show(original, f"Original · {edit.source.label}", "original", zoom, state.original_src())
    return spot


def edited_image(
    generator: Generator, semantics: Semantics, edit: EditState, view: str | None, zoom: int
) -> None:
    """The edited image, or where it differs from the original, at ``zoom``; nothing in the
    "Original" view. One element: the live fragment sends nothing else per frame."""
    view = view or VIEWS[0]
    if view == "Original":
        return
    edited = state.render(generator, lambda: session.render_edit(generator, semantics, edit))
    where, ack = edit.source.label, state.slider_ack()
    if view != "Difference":
        _show(edited, f"Edited · {where}", "edited", zoom, ack=ack)
        return
    original = state.original_pixels(generator, edit)
    difference = None
    if edited is not None and original is not None:
        difference = difference_image(edited, original)
    _show(difference, f"|Edited − original| ×{DIFFERENCE_GAIN} · {where}", "edited", zoom, ack=ack)


def frame_url(
    generator: Generator, semantics: Semantics, edit: EditState, view: str | None, slider: SliderRange
) -> str:
    """Publish what a drag frame of this session needs (``studio_ui.frames``) and return where the
    browser fetches them; "" where this server serves none (e.g. under AppTest) or nothing edited shows."""
    view = view or VIEWS[0]
    original = state.original_pixels(generator, edit) if view == "Difference" else None
    if not frames.served() or view == "Original" or (view == "Difference" and original is None):
        return ""
    token = st.session_state.setdefault(state.FRAME_TOKEN, frames.new_token())
    frames.BOARD.publish(token, frames.LiveScene(weakref.ref(generator), semantics, edit, slider, original))
    return frames.frame_url(token)


def _show(
    pixels: np.ndarray | None,
    caption: str,
    key: str,
    zoom: int,
    src: str | None = None,
    ack: int | None = None,
) -> None:
    if pixels is not None:
        live.live_image(pixels, caption, key=key, zoom=zoom, src=src, ack=ack)


def names_table(semantics: Semantics, edit: EditState, *, key: str) -> None:
    """Name the sliders (the names go on the sliders, into recipes and direction sets), beside each
    direction's eigenvalue and its share of the total energy."""
    shares = session.energy_shares(semantics)
    table = st.data_editor(
        [
            {
                "semantic": k,
                "λ": round(float(semantics.eigenvalues[k]), 3),
                "share": f"{shares[k]:.1%}".replace("%", " %"),
                "name": edit.names[k] if k < len(edit.names) else "",
            }
            for k in range(len(edit.alphas))
        ],
        disabled=["semantic", "λ", "share"],
        column_config={
            "share": st.column_config.TextColumn("share of energy", help="λ_k / Σλ over every direction"),
            "name": st.column_config.TextColumn("name", max_chars=session.MAX_LINK_NAME_LENGTH),
        },
        hide_index=True,
        width="stretch",
        key=key,
    )
    names = {row["semantic"]: row["name"] or "" for row in table}
    if names != dict(enumerate(edit.names)):
        state.set_names(names)


def gif_export(
    generator: Generator, semantics: Semantics, edit: EditState, entry: ModelEntry, name: str
) -> None:
    """A traversal GIF of one slider, with its range, steps, size and speed."""
    semantic = st.selectbox(
        "Along",
        range(len(edit.alphas)),
        format_func=session.slider_labels(semantics, edit.names, len(edit.alphas)).__getitem__,
    )
    low, high = st.slider(
        "Range of α",
        entry.slider.min,
        entry.slider.max,
        (entry.slider.min, entry.slider.max),
        entry.slider.step,
    )
    steps = st.select_slider("Steps", GIF_STEPS, DEFAULT_GIF["steps"])
    size = st.select_slider("Size (px)", GIF_SIZES, DEFAULT_GIF["size"])
    fps = st.select_slider("Frames per second", GIF_FPS, DEFAULT_GIF["fps"])
    sweep = SliderRange(low, max(high, low + entry.slider.step), entry.slider.step)
    st.download_button(
        "Download GIF",
        lambda: gif_bytes(
            downscale(session.traversal_frames(generator, semantics, edit, semantic, sweep, steps), size),
            duration_ms=round(1000 / fps),
            pingpong=True,
        ),
        f"{name}_semantic{semantic:03d}.gif",
        "image/gif",
        on_click="ignore",
        icon=":material/animation:",
        width="stretch",
    )


def layer_energy(semantics: Semantics, generator: Generator, model: str, labels: list[str]) -> None:
    """How one slider's energy spreads over the layers, and a button that keeps only the layers
    holding 90 % of it (a more local edit)."""
    if session.has_one_layer(generator) or not semantics.layer_grams:
        return
    index = st.selectbox("Energy per layer of", range(len(labels)), format_func=labels.__getitem__)
    energy = semantics.layer_energy[index]  # (|layers|,)
    st.bar_chart(
        {"layer": [f"{layer:02d}" for layer in semantics.layers], "energy": energy},
        x="layer",
        y="energy",
        height=180,
    )
    held = format_layers(layers_holding(semantics, index, DEFAULT_ENERGY_SHARE))
    st.button(
        f"Use the layers that hold {DEFAULT_ENERGY_SHARE:.0%} of it ({held})".replace("%", " %"),
        on_click=use_layers,
        args=(model, held),
        help="Factorize these layers only: edits then move only the W+ rows that carry this direction.",
    )


def use_layers(model: str, spec: str) -> None:
    """Point ``model``'s layer picker at a custom spec (a button's callback, before the picker is drawn)."""
    picker, spec_key = layer_keys(model)
    st.session_state[picker] = session.CUSTOM_LAYERS
    st.session_state[spec_key] = spec


def photo_editor(generator: Generator) -> None:
    """Upload a photo, find the code whose image comes closest to it, then edit that code."""
    upload = st.file_uploader(
        f"Photo (PNG or JPEG, up to {MAX_PHOTO_BYTES // MIB} MB)",
        max_upload_size=MAX_PHOTO_BYTES // MIB,
        key="photo_upload",
    )
    steps_col, restarts_col = st.columns(2)
    steps = steps_col.number_input("Steps", 1, MAX_INVERSION_STEPS, DEFAULT_STEPS, step=50)
    restarts = restarts_col.number_input(
        "Restarts", 1, MAX_RESTARTS, DEFAULT_RESTARTS, help="Random starts, optimised together"
    )
    if st.button("Find its code", disabled=upload is None, icon=":material/photo_camera:") and upload:
        bar = st.progress(0.0, text="Fitting a code to the photo…")
        try:
            with tempfile.TemporaryDirectory() as folder:  # load_photo reads (and checks) a file
                path = Path(folder) / "photo"
                path.write_bytes(upload.getvalue())
                image = load_photo(path)
            found = invert_image(
                generator,
                image,
                int(steps),
                int(restarts),
                seed=0,
                progress=lambda done, total: bar.progress(done / total, text=f"Step {done}/{total}"),
            )
        except SefaError as error:
            state.show_error(error, upload.name)
            found = None
        bar.empty()
        if found is not None:
            state.show_inverted(found, upload.name, generator)
    shown = st.session_state.get(state.PHOTO)
    if shown is not None and shown[0] == generator.digest:
        _, name, psnr, target = shown
        st.image(target, caption=f"{name} as fitted · PSNR {psnr:.1f} dB of its code's image", width=160)
