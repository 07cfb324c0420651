"""SeFa Studio: pick a model and a face, drag the semantic sliders, watch the face change.

Run with ``streamlit run app.py``. The sidebar chooses what to edit and holds the sliders; the
main area shows the edited image beside the original, the code controls and the exports.
"""

from __future__ import annotations

import streamlit as st

from sefa_core import session
from sefa_core.codes import MAX_CODE_FILE_BYTES, codes_to_npy_bytes
from sefa_core.config import ModelEntry, load_config
from sefa_core.device import DEVICE_CHOICES, resolve_device
from sefa_core.errors import SefaError
from sefa_core.factorize import Semantics
from sefa_core.models.base import Generator
from sefa_core.recipe import recipe_to_yaml
from sefa_core.registry import model_statuses
from sefa_core.render import downscale, encode_image, gif_bytes
from sefa_core.session import Settings, Truncation
from studio_ui import live, resources, state

GIF_STEPS = 16
GIF_SIZE = 256  # px: larger frames are shrunk, as the CLI does
MIB = 1024 * 1024

st.set_page_config(page_title="SeFa Studio", page_icon=":material/tune:", layout="wide")
state.keep_widget_values()
resources.use_torch_threads()

# ---- Sidebar: what to edit ----------------------------------------------------------------------
st.sidebar.title("SeFa Studio")
try:
    config = load_config()
except SefaError as error:
    state.show_error(error, "config.yaml")
    st.stop()

statuses = {status.entry.name: status for status in model_statuses(config)}
model = st.sidebar.selectbox(
    "Model",
    list(statuses),
    format_func=lambda name: (
        statuses[name].entry.label + ("" if statuses[name].available else " (unavailable)")
    ),
    key=state.default(state.KEEP + "model", next(iter(statuses))),
)
for other in statuses.values():
    if not other.available:
        st.sidebar.caption(f":gray[{other.entry.label} is unavailable: {other.reason}]")
status = statuses[model]
if not status.available:
    st.error(f"{status.entry.label} cannot be loaded: {status.reason}", icon="⚠️")
    st.info("Pick another model, or add its checkpoint on the **Models** page.")
    st.stop()
entry: ModelEntry = status.entry

device = resolve_device(
    st.sidebar.selectbox("Device", DEVICE_CHOICES, key=state.default(state.KEEP + "device", "auto"))
)
try:
    generator: Generator = resources.generator(status.path, device.device)
except Exception as error:  # noqa: BLE001 - a model that will not load is one line, the app goes on
    state.show_error(error, entry.label)
    st.stop()
st.sidebar.caption(f"Running on **{generator.device}**")
if device.notice:
    st.sidebar.warning(device.notice)

st.sidebar.subheader("Directions")
presets = session.layer_choices(entry, generator)
preset = st.sidebar.selectbox(
    "Layers",
    [*presets, session.CUSTOM_LAYERS],
    format_func=lambda name: f"{name} · {presets[name]}" if name in presets else name,
    key=state.default(f"{state.KEEP}layers.{model}", next(iter(presets))),
    help="Which layers SeFa factorizes (and, for W+ models, which W+ rows an edit moves).",
)
spec = presets.get(preset, "")
if preset == session.CUSTOM_LAYERS:
    spec = st.sidebar.text_input(
        "Layer spec",
        key=state.default(f"{state.KEEP}spec.{model}", next(iter(presets.values()))),
        help="e.g. all, 0-1, or 2,4,6-8",
    )
semantics, layer_error = state.semantics_for(generator, model, spec, fallback=next(iter(presets.values())))
if layer_error:
    st.sidebar.error(f"{layer_error}. Still showing layers {semantics.spec}.", icon="⚠️")

fewest, most = session.semantics_range(generator)
num_semantics = st.sidebar.slider(
    "Number of semantics",
    fewest,
    most,
    key=state.default(f"{state.KEEP}count.{model}", min(entry.num_semantics, most)),
)
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
    class_index = st.sidebar.selectbox(
        "Class",
        range(generator.num_classes),
        format_func=lambda k: f"{k} · {generator.class_names[k]}" if generator.class_names else str(k),
        key=state.default(f"{state.KEEP}class.{model}", 0),
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
    icon=":material/casino:",
    on_click=state.request_random,
    width="stretch",
    help="Steps through the prepared codes first, then samples fresh seeds.",
)
seed_col.number_input("Seed", 0, session.MAX_SEED, key=state.SEED_INPUT, on_change=state.request_seed)
if len(rows):
    pick_col.selectbox(
        "Uploaded code" if rows.kind == "upload" else "Prepared code",
        range(len(rows)),
        format_func=lambda k: f"#{k}",
        key=state.default(state.CODE_PICK, 0),
        on_change=state.request_row,
        args=(rows,),
    )
upload_col.file_uploader(  # no type=: Streamlit would raise on another name, the app says one line
    f"Upload codes (.npy, up to {MAX_CODE_FILE_BYTES // MIB} MiB)",
    max_upload_size=MAX_CODE_FILE_BYTES // MIB,
    key=state.CODE_UPLOAD,
    on_change=state.request_upload,
)
if prepared_note:
    st.caption(prepared_note)


# ---- The images: the edited one follows the sliders in the sidebar --------------------------------
@st.fragment(key=state.LIVE_FRAGMENT)
def edited_image(generator: Generator, semantics: Semantics, entry: ModelEntry) -> None:
    """Reruns alone on every slider move: one run is one frame. The image first, then the sliders,
    whose ``ack`` lets the browser send the next position."""
    resources.use_torch_threads()  # a fragment rerun may start on a fresh thread
    edit: session.EditState = st.session_state[state.EDIT]
    pixels = state.render(generator, lambda: session.render_edit(generator, semantics, edit))
    if pixels is not None:
        live.live_image(pixels, f"Edited · {edit.source.label}", key="edited")
    labels = [session.slider_label(k, semantics.eigenvalues[k]) for k in range(len(edit.alphas))]
    with st.sidebar:
        live.slider_bank(
            labels,
            entry.slider,
            edit.alphas,
            revision=state.slider_revision(),
            ack=state.slider_ack(),
            key=state.SLIDERS,
            on_change=lambda: state.on_slider_drag(entry.slider),
        )


st.sidebar.subheader("Sliders")
edited_col, original_col = st.columns(2)
with edited_col:
    edited_image(generator, semantics, entry)
with original_col:
    original = state.render(generator, lambda: session.render_original(generator, edit))
    if original is not None:
        live.live_image(original, f"Original · {edit.source.label}", key="original")
st.sidebar.button("Reset", on_click=state.reset_sliders, width="stretch", help="Every slider back to 0")


# ---- Exports: refreshed when a slider is let go, not while it moves ------------------------------
@st.fragment(key=state.EXPORTS_FRAGMENT)
def exports(generator: Generator, semantics: Semantics, entry: ModelEntry) -> None:
    """Downloads of the edit as it stands; each file is made only when its button is clicked."""
    edit: session.EditState = st.session_state[state.EDIT]
    name = f"sefa_{edit.model}_{edit.source.kind}{edit.source.index}"
    png_col, npy_col, recipe_col, semantic_col, gif_col = st.columns(
        [1, 1, 1, 2.5, 1], vertical_alignment="bottom"
    )
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
    semantic = semantic_col.selectbox(
        "Traversal GIF along",
        range(len(edit.alphas)),
        format_func=lambda k: session.slider_label(k, semantics.eigenvalues[k]),
    )
    gif_col.download_button(
        "GIF",
        lambda: gif_bytes(
            downscale(
                session.traversal_frames(generator, semantics, edit, semantic, entry.slider, GIF_STEPS),
                GIF_SIZE,
            ),
            pingpong=True,
        ),
        f"{name}_semantic{semantic:03d}.gif",
        "image/gif",
        on_click="ignore",
        icon=":material/animation:",
        width="stretch",
    )


exports(generator, semantics, entry)
