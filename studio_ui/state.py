"""Each user's editor state in ``st.session_state``, and the callbacks that change it.

Sessions never share codes or slider values: all of it lives in the user's own session state.
The pages read the editor's ``EditState`` under ``EDIT``. The rules themselves are in
``sefa_core.session``; this module only stores their results.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from sefa_core import session
from sefa_core.codes import load_codes
from sefa_core.config import AppConfig, ModelEntry, SliderRange, load_config
from sefa_core.default_model import default_checkpoint_path
from sefa_core.device import resolve_device, run_with_cpu_fallback
from sefa_core.direction_sets import DirectionSet
from sefa_core.editing import distances
from sefa_core.errors import CodeFileError, LayerSpecError, SefaError
from sefa_core.factorize import Semantics, factorize
from sefa_core.invert import Inversion
from sefa_core.models.base import Generator
from sefa_core.registry import model_statuses
from sefa_core.render import downscale
from sefa_core.session import CodeRows, CodeSource, EditState, Settings
from studio_ui import live, navigation, resources

log = logging.getLogger("sefa_studio")

EDIT = "edit"  # the EditState the editor shows; tests and pages read it, tests may set it
REVISION = "slider_revision"  # bumped whenever Python moves the sliders itself
ACK = "live_ack"  # seq of the last slider request rendered
GOOD_LAYERS = "good_layers"  # model -> the last layer spec that factorized
CODE_REQUEST = "code_request"  # "random", "upload" or a CodeSource, set by callbacks
UPLOADED = "uploaded_codes"  # (digest, CodeRows) of an uploaded code file
RNG = "seed_rng"  # this session's source of fresh seeds
SLIDERS = "sliders"  # the slider bank component
LIVE_FRAGMENT = "live"  # reruns per slider request: the edited image and the slider bank
FRAME_TOKEN = "frame_token"  # this session's token for drag frames over HTTP (studio_ui.frames)
EXPORTS_FRAGMENT = "exports"  # reruns when a slider is let go
SEED_INPUT = "seed_input"
CODE_PICK = "code_pick"
CODE_UPLOAD = "code_upload"
CODE_SUFFIX = ".npy"  # what the code uploader takes (its content is checked by load_codes)
KEEP = "keep."  # value widgets under this prefix keep their choice while another page is open
RESET_ON_RANDOM = KEEP + "reset_on_random"  # the setting "reset edits on Random"
LINK_READ = "link_read"  # the page's query parameters were read (once, when the session opened)
LINK_EDITS = "link_edits"  # (alphas, names, rows) a link or a direction set asked for, applied once shown
PHOTO = "photo"  # (model digest, file name, PSNR, the fitted photo) of the last photo edited
PREVIEWS = "previews"  # (what they show, [[src at -α, at 0, at +α]] per slider)
PREVIEW_PX = 40  # thumbnail size beside each slider
PREVIEW_MAX_RESOLUTION = 256  # px: larger models start with the previews off (each costs 2 renders a slider)
ORIGINAL = "original_pixels"  # (what was drawn, uint8 (H, W, 3)): the unedited image, drawn once a code


def keep_widget_values() -> None:
    """Streamlit forgets a widget's value when its page is left; writing it back keeps it."""
    for key in list(st.session_state):
        if str(key).startswith(KEEP):
            st.session_state[key] = st.session_state[key]


def default(key: str, value: Any) -> str:
    """Give widget ``key`` a first value (so the widget needs no ``value=``) and return the key."""
    st.session_state.setdefault(key, value)
    return key


def one_line(error: BaseException) -> str:
    """What a user reads: our errors as they are, anything else with its type."""
    if isinstance(error, SefaError):
        return str(error)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def shown_path(path: str | Path, root: Path) -> str:
    """A server path as a user may see it: relative to the project (``checkpoints/x.pkl``),
    "built-in" for the packaged default model, else the file's name; never the server's folders."""
    path = Path(path).resolve()
    with contextlib.suppress(SefaError):
        if path == default_checkpoint_path().resolve():
            return "built-in"
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else path.name


def shown_text(text: str, root: Path) -> str:
    """A message as a user may see it: the project's folder left out of any path it names."""
    return text.replace(f"{root.resolve()}/", "").replace(f"{root}/", "")


def show_error(error: BaseException, where: str = "") -> None:
    """One line for this session; the traceback goes to the log."""
    log.warning("%s failed", where or "the app", exc_info=error)
    st.error(f"{where}: {one_line(error)}" if where else one_line(error), icon="⚠️")


def render(generator: Generator, work: Callable[[], np.ndarray]) -> np.ndarray | None:
    """Run a render; a GPU that fails moves the model to the CPU (with a notice) and tries again.

    Any other failure is one line for this session and None.
    """
    try:
        pixels, notice = run_with_cpu_fallback(generator, work)
    except Exception as error:  # noqa: BLE001 - a generator that raises is one line for this session
        show_error(error, "rendering")
        return None
    if notice:
        st.toast(notice, icon="⚠️")
    return pixels


# ---- choosing the code: the callbacks only record the request; the script carries it out -------
def request_random() -> None:
    st.session_state[CODE_REQUEST] = "random"


def request_seed() -> None:
    if st.session_state.get(SEED_INPUT) is not None:  # emptied: nothing to show
        st.session_state[CODE_REQUEST] = CodeSource("seed", int(st.session_state[SEED_INPUT]))


def request_row(kind: str, name: str) -> None:
    if st.session_state.get(CODE_PICK) is not None:
        st.session_state[CODE_REQUEST] = CodeSource(kind, int(st.session_state[CODE_PICK]), name)


def request_upload() -> None:
    st.session_state[CODE_REQUEST] = "upload"


def code_rows(generator: Generator, prepared: CodeRows) -> CodeRows:
    """The rows Random steps through: this user's uploaded file for this model, else the prepared codes.

    A pending upload is read here; a bad file shows one line and changes nothing.
    """
    if st.session_state.get(CODE_REQUEST) == "upload":
        upload = st.session_state.get(CODE_UPLOAD)
        if upload is None:
            st.session_state.pop(UPLOADED, None)
            st.session_state[CODE_REQUEST] = "first"
        else:
            try:
                if not upload.name.lower().endswith(CODE_SUFFIX):
                    raise CodeFileError(f"{upload.name}: expected a {CODE_SUFFIX} file of latent codes")
                rows = load_codes(upload.getvalue(), generator, name=upload.name)
            except SefaError as error:
                st.session_state.pop(CODE_REQUEST)
                show_error(error)
            else:
                uploaded = CodeRows(rows, "upload", upload.name)
                st.session_state[UPLOADED] = (generator.digest, uploaded)
                st.session_state[CODE_REQUEST] = uploaded.source(0)
    digest, uploaded = st.session_state.get(UPLOADED, ("", None))
    return uploaded if uploaded is not None and digest == generator.digest else prepared


def edit_state(model: str, generator: Generator, rows: CodeRows, settings: Settings) -> EditState:
    """This user's edit, in line with the sidebar and with any code they asked for."""
    edit: EditState | None = st.session_state.get(EDIT)
    request = st.session_state.pop(CODE_REQUEST, None)
    if edit is None or edit.model != model or edit.digest != generator.digest:
        edit = session.new_state(model, generator, session.first_source(rows), rows, settings)
        _sliders_moved()
    else:
        before = edit
        edit, moved = session.apply_settings(edit, generator, rows, settings)
        if moved:
            _sliders_moved()
            _say_where_the_edits_went(before, edit)
    source = _requested_source(request, edit, rows)
    if source is not None:
        edit = session.show_source(edit, generator, source, rows)
        if request == "random" and st.session_state.get(RESET_ON_RANDOM):
            edit = edit.with_alphas(session.fit_alphas((), len(edit.alphas)))
            _sliders_moved()
    if LINK_EDITS in st.session_state:  # a link's slider values and names, on the model it names
        alphas, names, own_rows = st.session_state.pop(LINK_EDITS)
        edit = edit.with_alphas(session.fit_alphas(alphas, len(edit.alphas))).with_names(names)
        edit = replace(edit, rows=session.fit_names(own_rows, len(edit.alphas)))
        _sliders_moved()
    _show_in_code_widgets(edit.source, rows)
    st.session_state[EDIT] = edit
    return edit


def _say_where_the_edits_went(before: EditState, after: EditState) -> None:
    """A layer change swaps the sliders' directions: say what happened to the edits."""
    if any(before.alphas):
        st.toast(
            f"{session.edits_active(before.alphas).replace(' active', '')} on layers {before.layers} "
            "put aside: they come back when you pick those layers again.",
            icon=":material/layers:",
        )
    if any(after.alphas):
        st.toast(f"Layers {after.layers}: {session.edits_active(after.alphas)} from before.")


def read_link(layer_keys: Callable[[str], tuple[str, str]], presets: Callable[[str], dict[str, str]]) -> None:
    """Once per session, before the sidebar is drawn: point the widgets at what the URL names.

    ``layer_keys(model)`` gives the keys of that model's layer picker and spec box;
    ``presets(model)`` its preset names and specs (only called for a model the config lists).
    """
    if st.session_state.get(LINK_READ):
        return
    st.session_state[LINK_READ] = True
    link = session.parse_link(st.query_params.to_dict())
    if link.model is None:
        return
    st.session_state[KEEP + "model"] = link.model
    if link.layers is not None:
        picker, spec = layer_keys(link.model)
        named = {value: name for name, value in presets(link.model).items()}
        st.session_state[picker] = named.get(link.layers, session.CUSTOM_LAYERS)
        st.session_state[spec] = link.layers
    if link.source is not None:
        st.session_state[CODE_REQUEST] = link.source
    if link.alphas or link.names:
        st.session_state[LINK_EDITS] = (link.alphas, link.names, {})


def open_in_editor(
    direction_set: DirectionSet, alphas: list[float], layer_keys: tuple[str, str], set_rows: str
) -> int:
    """Show a direction set in the editor: its layer set, and a slider per direction at ``alphas``,
    with its name and its own W+ rows (where they are not ``set_rows``, the layer set's). Returns how
    many directions could not be opened (those with no SeFa index, e.g. from another method); the
    caller then switches to the editor."""
    opened = [(d, a) for d, a in zip(direction_set.directions, alphas, strict=True) if d.semantic is not None]
    picker, spec = layer_keys
    st.session_state[picker] = session.CUSTOM_LAYERS
    st.session_state[spec] = direction_set.layers
    count_key = f"{KEEP}count.{direction_set.model}"
    needed = max((d.semantic + 1 for d, _ in opened), default=1)
    st.session_state[count_key] = max(st.session_state.get(count_key, 0), needed)
    st.session_state[LINK_EDITS] = (
        {d.semantic: a for d, a in opened},
        {d.semantic: d.name for d, _ in opened},
        {
            d.semantic: d.layers
            for d, _ in opened
            if d.layers.strip() not in ("", direction_set.layers, set_rows)
        },
    )
    return len(direction_set.directions) - len(opened)


def write_link(edit: EditState) -> None:
    """Keep the page's URL on what it shows, so that a reload or a shared link shows the same image."""
    params = session.link_params(edit)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def original_pixels(generator: Generator, edit: EditState) -> np.ndarray | None:
    """The unedited image, drawn once per code (the live view shows it beside or against the edit)."""
    drawn = (edit.digest, edit.source, edit.truncation, edit.class_index, str(generator.device))
    shown = st.session_state.get(ORIGINAL)
    if shown is not None and shown[0] == drawn:
        return shown[1]
    pixels = render(generator, lambda: session.render_original(generator, edit))
    if pixels is not None:
        st.session_state[ORIGINAL] = (drawn, pixels, live.image_src(pixels))
    return pixels


def original_src() -> str | None:
    """The original's data URI, encoded once with its pixels: every frame of the live view sends it."""
    shown = st.session_state.get(ORIGINAL)
    return shown[2] if shown is not None else None


def preview_srcs(
    generator: Generator, semantics: Semantics, edit: EditState, alpha: float
) -> list[list[str]]:
    """Per slider, the data URIs of its thumbnails at [-alpha, 0, +alpha]; rendered once per face,
    layer set and slider count, then kept for this session."""
    wanted = (
        edit.digest,
        edit.source,
        edit.truncation,
        edit.class_index,
        semantics.layer_spec,
        len(edit.alphas),
    )
    kept = st.session_state.get(PREVIEWS)
    if kept is not None and kept[0] == wanted:
        return kept[1]
    try:
        strips = downscale(session.preview_strips(generator, semantics, edit, alpha), PREVIEW_PX)
        middle = downscale(session.render_original(generator, edit), PREVIEW_PX)
    except Exception as error:  # noqa: BLE001 - previews are extras: one line, the editor goes on
        show_error(error, "preview strips")
        return []
    zero = live.image_src(middle)
    srcs = [[live.image_src(minus), zero, live.image_src(plus)] for minus, plus in strips]
    st.session_state[PREVIEWS] = (wanted, srcs)
    return srcs


def show_inverted(found: Inversion, name: str, generator: Generator) -> None:
    """Show the code found for a photo, as the one row of an upload of its own, so that the sliders
    edit it (and Random steps on to seeds, as after any upload)."""
    rows = CodeRows(found.code.detach().cpu(), "upload", f"{name} (photo)")
    st.session_state[UPLOADED] = (generator.digest, rows)
    st.session_state[CODE_REQUEST] = rows.source(0)
    st.session_state[PHOTO] = (generator.digest, name, found.psnr, found.target)
    st.rerun()


def set_names(names: dict[int, str]) -> None:
    """The user named sliders: keep the names with the edit (they go into recipes and sets)."""
    edit: EditState = st.session_state[EDIT]
    st.session_state[EDIT] = edit.with_names(names)


def _requested_source(request: object, edit: EditState, rows: CodeRows) -> CodeSource | None:
    if request == "random":
        rng = st.session_state.setdefault(RNG, random.Random())
        return session.next_source(edit.source, rows, rng)
    if request == "first":
        return session.first_source(rows)
    # A row asked for under another model (a request still pending at a model switch) is dropped.
    return request if isinstance(request, CodeSource) and rows.holds(request) else None


def _show_in_code_widgets(source: CodeSource, rows: CodeRows) -> None:
    """Point the seed box and the code picker at the code shown (they are drawn after this).

    The code shown is the one source of truth: the widget that does not name it is left empty,
    rather than showing a seed or a row from before.
    """
    st.session_state[SEED_INPUT] = source.index if source.kind == "seed" else None
    st.session_state[CODE_PICK] = source.index if rows.holds(source) and source.kind != "seed" else None


# ---- the sliders ------------------------------------------------------------------------------
def _sliders_moved() -> None:
    st.session_state[REVISION] = st.session_state.get(REVISION, 0) + 1


def on_slider_drag(slider: SliderRange) -> None:
    """The slider bank sent new values: keep them (checked) and acknowledge the request.

    Values sent before Python last moved the sliders (Reset, a link, new layers: ``revision``) are
    stale: a Reset clicked while a slider request was still on its way must win.
    """
    live = st.session_state[SLIDERS].get("live") or {}
    edit: EditState = st.session_state[EDIT]
    alphas = session.client_alphas(live.get("alphas"), len(edit.alphas), slider)
    if alphas is not None and live.get("revision", slider_revision()) == slider_revision():
        st.session_state[EDIT] = edit.with_alphas(alphas)
    st.session_state[ACK] = live.get("seq", 0)
    if live.get("final") and _only_fragments_rerun():
        st.rerun([LIVE_FRAGMENT, EXPORTS_FRAGMENT])  # let go: the exports catch up


def _only_fragments_rerun() -> bool:
    """Whether this interaction reruns fragments only, not the whole app.

    A slider request that Streamlit merged with a model switch (or any other sidebar change) comes
    in a full rerun. A fragment-scoped ``st.rerun`` there would replace that rerun, and the switch
    would be lost; the full rerun draws the exports anyway.
    """
    ctx = get_script_run_ctx()
    return bool(ctx and ctx.fragment_ids_this_run)


def reset_sliders() -> None:
    edit: EditState = st.session_state[EDIT]
    st.session_state[EDIT] = edit.with_alphas(session.fit_alphas((), len(edit.alphas)))
    _sliders_moved()
    if _only_fragments_rerun():  # merged with a sidebar change, the full rerun must stay
        st.rerun([LIVE_FRAGMENT, EXPORTS_FRAGMENT])


def slider_revision() -> int:
    return st.session_state.get(REVISION, 0)


def slider_ack() -> int:
    return st.session_state.get(ACK, 0)


def semantics_for(
    generator: Generator, model: str, spec: str, fallback: str, top: int
) -> tuple[Semantics, str]:
    """The ``top`` leading SeFa directions on ``spec`` (only those are solved for, so a layer change
    is quick); when the spec cannot be read, the last one that could, and the one-line reason."""
    good = st.session_state.setdefault(GOOD_LAYERS, {})
    try:
        semantics = factorize(generator, spec, top=top)
    except LayerSpecError as error:
        return factorize(generator, good.get(model, fallback), top=top), str(error)
    good[model] = spec
    return semantics, ""


# ---- what the pages see -----------------------------------------------------------------------
@dataclass(frozen=True)
class Editing:
    """What the editor has open: the pages work on the same model, layers and code."""

    config: AppConfig
    entry: ModelEntry
    generator: Generator
    semantics: Semantics
    edit: EditState


def traversal_controls(
    editing: Editing, columns: list[Any], page: str, top_label: str, defaults: tuple[int, int, int]
) -> tuple[int, list[float]]:
    """The pages' "top K, distances, steps" controls in three columns: (K, the distances).

    ``defaults`` is (K, steps, most steps); each page keeps its own choices per model.
    """
    default_k, default_steps, max_steps = defaults
    top_col, range_col, steps_col = columns
    slider, model = editing.entry.slider, editing.edit.model
    most = session.semantics_range(editing.generator)[1]
    top_k = top_col.slider(top_label, 1, most, key=default(f"{KEEP}{page}.k.{model}", min(default_k, most)))
    start, end = range_col.slider(
        "Distances",
        slider.min,
        slider.max,
        key=default(f"{KEEP}{page}.range.{model}", (slider.min, slider.max)),
    )
    steps = steps_col.slider("Steps", 2, max_steps, key=default(f"{KEEP}{page}.steps", default_steps))
    return top_k, distances(start, end, steps)


def start_page(heading: str) -> None:
    """What every page does first: the widget values kept, the thread cap, its heading."""
    keep_widget_values()
    resources.use_torch_threads()
    if heading:
        st.title(heading)


def editing() -> Editing:
    """The editor's model and code for a page; the page stops, after saying why, when there are none."""
    edit: EditState | None = st.session_state.get(EDIT)
    if edit is None:
        st.info("Pick a model and a face in the editor first.")
        st.page_link(navigation.EDITOR_PAGE, label="Open the editor", icon=":material/tune:")
        st.stop()
    try:
        config = load_config()
        status = next(s for s in model_statuses(config) if s.entry.name == edit.model)
        device = resolve_device(st.session_state.get(KEEP + "device", "auto"))
        generator = resources.generator(status.path, device.device, status.entry.classes)
        if generator.digest != edit.digest:
            raise SefaError(
                f"{status.entry.source} has changed since the editor loaded it; open the editor again"
            )
        semantics = factorize(generator, edit.layers)
    except Exception as error:  # noqa: BLE001 - one line for this session, the app goes on
        show_error(error, edit.model)
        st.stop()
    return Editing(config, status.entry, generator, semantics, edit)
