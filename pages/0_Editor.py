"""The editor: pick a model and a face, drag the semantic sliders, watch the face change.

The sidebar chooses what to edit; the main area shows the edited image (beside the original, or
against it) with the sliders beside it, the code controls above and the exports below. Nothing
here keeps a Generator past this run: the model cache is the only owner.
"""

from __future__ import annotations

import weakref

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from sefa_core import session
from sefa_core.codes import MAX_CODE_FILE_BYTES, codes_to_npy_bytes
from sefa_core.config import ModelEntry, load_config
from sefa_core.device import DEVICE_CHOICES, resolve_device
from sefa_core.errors import SefaError
from sefa_core.factorize import Semantics
from sefa_core.models.base import Generator
from sefa_core.recipe import recipe_to_yaml
from sefa_core.registry import model_statuses
from sefa_core.render import encode_image
from sefa_core.session import Settings, Truncation
from studio_ui import editor, live, resources, state

MIB = 1024 * 1024

state.start_page("")
try:
    config = load_config()
except SefaError as error:
    state.show_error(error, "config.yaml")
    st.stop()

# ---- Sidebar: what to edit ----------------------------------------------------------------------
statuses = {status.entry.name: status for status in model_statuses(config)}
labels = {name: editor.model_label(status) for name, status in statuses.items()}
state.read_link(editor.layer_keys, lambda name: dict(statuses[name].entry.layer_presets) or {"all": "all"})
if st.session_state.get(state.KEEP + "model") not in statuses:  # e.g. a link to a model not listed here
    st.session_state[state.KEEP + "model"] = next(iter(statuses))
model = st.sidebar.selectbox("Model", list(statuses), format_func=labels.get, key=state.KEEP + "model")
for name, other in statuses.items():
    if not other.available:
        st.sidebar.caption(f":gray[{labels[name]}: {state.shown_text(other.reason, config.root)}]")
status = statuses[model]
if not status.available:
    st.error(
        f"{status.entry.label} cannot be loaded: {state.shown_text(status.reason, config.root)}", icon="⚠️"
    )
    st.info("Pick another model, or add its checkpoint on the **Models** page.")
    st.stop()
entry: ModelEntry = status.entry

device = resolve_device(
    st.sidebar.selectbox("Device", DEVICE_CHOICES, key=state.default(state.KEEP + "device", "auto"))
)
try:
    generator: Generator = resources.generator(status.path, device.device, status.entry.classes)
except Exception as error:  # noqa: BLE001 - a model that will not load is one line, the app goes on
    state.show_error(error, entry.label)
    st.stop()
st.sidebar.caption(f"Running on **{generator.device}**")
if device.notice:
    st.sidebar.warning(device.notice)

st.sidebar.subheader("Directions")
spec = editor.layer_picker(entry, generator, model)
layer_notice = st.sidebar.empty()
fewest, most = session.semantics_range(generator)
num_semantics = st.sidebar.slider(
    "Number of semantics",
    fewest,
    most,
    key=state.default(f"{state.KEEP}count.{model}", min(entry.num_semantics, most)),
)
semantics, layer_error = state.semantics_for(generator, model, spec, fallback="all", top=num_semantics)
if layer_error:
    layer_notice.error(f"{layer_error}. Still showing {session.layer_set_name(semantics)}.", icon="⚠️")
truncation = Truncation()
if generator.edit_space == "w+" or generator.num_classes:
    psi = st.sidebar.slider(
        "Truncation ψ",
        generator.min_trunc_psi,
        1.0,
        step=0.05,
        key=state.default(f"{state.KEEP}psi.{model}", max(entry.trunc_psi, generator.min_trunc_psi)),
    )
    cutoff = None
    if generator.edit_space == "w+":
        cutoff = st.sidebar.number_input(
            "Truncation cutoff (W+ rows)",
            0,
            generator.num_layers,
            key=state.default(f"{state.KEEP}cutoff.{model}", entry.trunc_layers or generator.num_layers),
        )
    truncation = Truncation(psi, cutoff)
class_index = None
if generator.num_classes:
    class_names = editor.class_labels(generator)  # plain strings: no closure over the model
    class_index = st.sidebar.selectbox(
        "Class",
        range(generator.num_classes),
        format_func=class_names.__getitem__,
        key=state.default(f"{state.KEEP}class.{model}", 0),
    )
# Off by default: a new face arrives with the sliders where they are, so one edit can be tried on many.
# (No help button: its name, "Help for Reset edits on Random", would be a second "Random" button.)
st.sidebar.toggle("Reset edits on Random", key=state.default(state.RESET_ON_RANDOM, False))
previews_on = st.sidebar.toggle(
    "Preview strips",
    key=state.default(f"{state.KEEP}previews.{model}", generator.resolution <= state.PREVIEW_MAX_RESOLUTION),
)
settings = Settings(semantics.spec, num_semantics, truncation, class_index)

# ---- Which face: prepared codes, seeds, uploads ---------------------------------------------------
prepared, prepared_note = resources.prepared_codes(config, entry, generator)
rows = state.code_rows(generator, prepared)
try:
    edit = state.edit_state(model, generator, rows, settings)
except Exception as error:  # noqa: BLE001 - e.g. a truncation this model refuses: one line, the app goes on
    state.show_error(error, entry.label)
    st.stop()

st.title(entry.label)
random_col, seed_col, pick_col, upload_col = st.columns([1, 1.2, 1.4, 2.4], vertical_alignment="bottom")
random_col.button(
    "Random",
    key="random",
    icon=":material/casino:",
    on_click=state.request_random,
    width="stretch",
    help="Steps through the prepared codes first, then samples fresh seeds.",
)
seed_col.number_input(
    "Seed", 0, session.MAX_SEED, key=state.SEED_INPUT, on_change=state.request_seed, placeholder="—"
)
if len(rows):
    pick_col.selectbox(
        "Uploaded code" if rows.kind == "upload" else "Prepared code",
        range(len(rows)),
        format_func=editor.row_label,
        key=state.CODE_PICK,
        on_change=state.request_row,
        args=(rows.kind, rows.name),
        placeholder="—",
    )
upload_col.file_uploader(  # no type=: Streamlit would raise on another name, the app says one line
    f"Upload codes (.npy, up to {MAX_CODE_FILE_BYTES // MIB} MB)",
    max_upload_size=MAX_CODE_FILE_BYTES // MIB,
    key=state.CODE_UPLOAD,
    on_change=state.request_upload,
)
if prepared_note:
    st.caption(prepared_note)
with st.expander("Edit a photo", icon=":material/photo_camera:"):
    editor.photo_editor(generator)

# ---- The images and the sliders: one fragment run is one frame -------------------------------------
view_col, zoom_col, reset_col = st.columns([3, 1, 1], vertical_alignment="bottom")
view = view_col.segmented_control(
    "Show",
    editor.VIEWS,
    key=state.default(state.KEEP + "view", editor.VIEWS[0]),
    label_visibility="collapsed",
)
zoom = zoom_col.select_slider(
    "Zoom", editor.ZOOMS, key=state.default(state.KEEP + "zoom", 1), format_func=lambda z: f"{z}×"
)
# Outside the live fragment: every element in it is sent again with each frame.
reset_col.button(
    "Reset", on_click=state.reset_sliders, width="stretch", help="Every slider back to 0", key="reset"
)
area = st.container(key="editor_area")  # the images and the sliders (docs and tests find it by its key)
with st.expander("Name the sliders · energy of each direction"):
    editor.names_table(semantics, edit, key=f"names.{model}.{semantics.layer_spec}.{len(edit.alphas)}")
    editor.layer_energy(
        semantics, generator, model, session.slider_labels(semantics, edit.names, len(edit.alphas))
    )


@st.fragment(key=state.LIVE_FRAGMENT)
def live_view(
    model: editor.ModelRef,
    semantics: Semantics,
    entry: ModelEntry,
    view: str | None,
    zoom: int,
    sliders_col: DeltaGenerator,
) -> None:
    """Reruns alone when a slider is let go (or on every move, where the server serves no drag
    frames: ``studio_ui.frames``), and sends two elements: the edited image, then the sliders (in
    their column, drawn by the full run), whose ``ack`` lets the browser send the next position.
    Takes where the model is, not the model: the fragment is kept in session state between runs,
    and must not keep a Generator alive."""
    resources.use_torch_threads()  # a fragment rerun may start on a fresh thread
    edit: session.EditState = st.session_state[state.EDIT]
    generator = model.generator()
    editor.edited_image(generator, semantics, edit, view, zoom)
    frame_url = editor.frame_url(generator, semantics, edit, view, entry.slider)
    del generator  # the fragment is kept between runs: it must not keep the model alive
    with sliders_col:
        live.slider_bank(
            session.slider_labels(semantics, edit.names, len(edit.alphas), edit.rows),
            entry.slider,
            edit.alphas,
            revision=state.slider_revision(),
            ack=state.slider_ack(),
            key=state.SLIDERS,
            on_change=lambda: state.on_slider_drag(entry.slider),
            frame_url=frame_url,
        )


live.preview_strips(  # outside the fragment: sent once per face, not with every frame
    state.preview_srcs(generator, semantics, edit, entry.slider.max) if previews_on else (), key="previews"
)
# The columns and the original are drawn by the full run only: a frame re-sends neither.
with area:
    image_col, slider_col = st.columns([3, 2], gap="medium")
with image_col:
    live_spot = editor.original_view(generator, edit, view, zoom)
where = editor.ModelRef(status.path, str(device.device), status.entry.classes, weakref.ref(generator))
del generator  # from here on the fragments fetch it from the cache by ``where``
with live_spot:
    live_view(where, semantics, entry, view, zoom, slider_col)


# ---- Exports: refreshed when a slider is let go, not while it moves ------------------------------
@st.fragment(key=state.EXPORTS_FRAGMENT)
def exports(model: editor.ModelRef, semantics: Semantics, entry: ModelEntry) -> None:
    """Downloads of the edit as it stands; each file is made only when its button is clicked. The
    URL follows the edit here, so that a link brings it back."""
    generator = model.generator()
    edit: session.EditState = st.session_state[state.EDIT]
    state.write_link(edit)
    name = f"sefa_{edit.model}_{edit.source.kind}{edit.source.index}"
    png_col, npy_col, recipe_col, gif_col, link_col = st.columns(5, vertical_alignment="bottom")
    png_col.download_button(
        "PNG",
        lambda: encode_image(session.render_edit(generator, semantics, edit), "PNG"),
        f"{name}.png",
        "image/png",
        on_click="ignore",
        icon=":material/image:",
        width="stretch",
    )
    npy_col.download_button(
        "Code",
        lambda: codes_to_npy_bytes(session.edited_code(generator, semantics, edit)),
        f"{name}.npy",
        "application/octet-stream",
        on_click="ignore",
        icon=":material/data_array:",
        width="stretch",
        help="The edited code as .npy (float32)",
    )
    recipe_col.download_button(
        "Recipe",
        lambda: recipe_to_yaml(session.edit_recipe(edit)),
        f"{name}.yaml",
        "application/x-yaml",
        on_click="ignore",
        icon=":material/receipt_long:",
        width="stretch",
        help="Replays to the same pixels: sefa apply recipe.yaml -o out.png",
    )
    with gif_col.popover("GIF", icon=":material/animation:", width="stretch"):
        editor.gif_export(generator, semantics, edit, entry, name)
    with link_col:
        live.copy_link(key="copy_link")


exports(where, semantics, entry)
