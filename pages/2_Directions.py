"""Directions: name the sliders you like and save them as a set; load a set back and use it.

A set is JSON or NPZ (never a pickle) with a version field, kept in direction_sets/ beside
config.yaml. Each direction keeps its own W+ rows, GANSpace-style: one can turn the head on the
early layers while another changes the colours on the late ones.
"""

from __future__ import annotations

import streamlit as st

from sefa_core import direction_sets, session, shared_files
from sefa_core.direction_sets import DIRECTION_SETS_DIR, FORMATS, MAX_DIRECTION_SET_BYTES
from sefa_core.errors import AlreadySavedError, SefaError
from sefa_core.layers import format_layers
from studio_ui import editor, live, navigation, state
from studio_ui.sharing import SAVED_BY

MIB = 1024 * 1024

state.start_page("Direction sets")

editing = state.editing()  # stops here while the editor has nothing open
generator, semantics, edit, slider = editing.generator, editing.semantics, editing.edit, editing.entry.slider
folder = editing.config.root / DIRECTION_SETS_DIR
rows_hint = (
    f"W+ rows 0-{generator.num_layers - 1}" if generator.edit_space == "w+" else "ignored by z-space models"
)
save_tab, load_tab = st.tabs(["Save the sliders", "Load a set"])

# ---- Save: pick sliders, name them, give each its W+ rows ----------------------------------------
with save_tab:
    layer_set = session.layer_set_name(semantics)
    st.caption(f"{editing.entry.label} · {layer_set}. Tick the sliders to keep and name them.")
    table = st.data_editor(
        [
            {
                "keep": alpha != 0.0,
                "semantic": k,
                "eigenvalue": round(float(semantics.eigenvalues[k]), 2),
                "alpha": alpha,
                "name": edit.names[k] if k < len(edit.names) and edit.names[k] else f"semantic {k:03d}",
                "layers": semantics.layer_spec,
            }
            for k, alpha in enumerate(edit.alphas)
        ],
        disabled=["semantic", "eigenvalue", "alpha"],
        column_config={
            "layers": st.column_config.TextColumn("layers", help=f"The W+ rows it moves ({rows_hint})"),
        },
        hide_index=True,
        key=f"directions.table.{edit.model}.{semantics.spec}",
    )
    chosen = [row for row in table if row["keep"]]
    name_col, format_col = st.columns([3, 1])
    set_name = name_col.text_input(
        "Set name", key=state.default(state.KEEP + "directions.name", "my directions")
    )
    suffix = format_col.radio(
        "Format", FORMATS, horizontal=True, key=state.default(state.KEEP + "directions.fmt", ".json")
    )
    who_col, replace_col = st.columns([3, 1])
    saved_by = who_col.text_input(
        "Saved by",
        key=state.default(SAVED_BY, shared_files.session_label()),
        help=f"Every session shares {DIRECTION_SETS_DIR}/: this name is shown with the sets you save.",
    )
    replace_existing = replace_col.checkbox("Replace a set of this name", key="directions.replace")
    if st.button("Save set", type="primary", disabled=not chosen, icon=":material/save:"):
        try:
            saved = direction_sets.from_sliders(
                edit,
                semantics,
                {r["semantic"]: r["name"] for r in chosen},
                {r["semantic"]: r["layers"] for r in chosen},
            )
            path = direction_sets.direction_set_path(folder, set_name, suffix)
            direction_sets.share_direction_set(path, saved, saved_by, overwrite=replace_existing)
            st.success(f"Saved {len(chosen)} direction(s) to {state.shown_path(path, editing.config.root)}")
        except AlreadySavedError as error:
            st.warning(f"{error} (tick “Replace a set of this name”).", icon="⚠️")
        except SefaError as error:
            state.show_error(error)

# ---- Load: a saved set or an upload, with a slider and W+ rows per direction ---------------------
with load_tab:
    saved_files = direction_sets.list_direction_sets(folder)
    picked = st.selectbox(
        f"Saved in {DIRECTION_SETS_DIR}/",
        saved_files,
        format_func=lambda p: p.name,
        index=None,
        placeholder="none",
    )
    upload = st.file_uploader(  # no type=: Streamlit would raise on another name; the content is sniffed
        f"…or upload one (.json or .npz, up to {MAX_DIRECTION_SET_BYTES // MIB} MB)",
        max_upload_size=MAX_DIRECTION_SET_BYTES // MIB,
    )
    if upload is None and picked is None:
        st.stop()
    try:
        if upload is not None:
            loaded = direction_sets.parse_direction_set(upload.getvalue(), upload.name)
        else:
            loaded = direction_sets.load_direction_set(picked)
        direction_sets.check_fits(loaded, generator)
    except SefaError as error:
        state.show_error(error)
        st.stop()
    if who := loaded.saved.describe():
        st.caption(f"{upload.name if upload is not None else picked.name}: {who}")

    set_key = upload.name if upload is not None else picked.name
    alphas = []
    for i, direction in enumerate(loaded.directions):
        slider_col, rows_col = st.columns([3, 1])
        label = direction.name
        if direction.semantic is not None and direction.name != f"semantic {direction.semantic:03d}":
            label += f" (semantic {direction.semantic:03d})"
        alphas.append(
            slider_col.slider(
                label,
                slider.min,
                slider.max,
                value=float(min(max(direction.alpha, slider.min), slider.max)),
                step=slider.step,
                key=f"directions.alpha.{set_key}.{i}",
            )
        )
        spec = rows_col.text_input("W+ rows", value=direction.layers, key=f"directions.rows.{set_key}.{i}")
        try:
            loaded = loaded.with_layers(i, spec)
            direction_sets.check_fits(loaded, generator)
        except SefaError as error:
            rows_col.error(str(error), icon="⚠️")
            loaded = loaded.with_layers(i, direction.layers)

    def with_the_set():
        code = direction_sets.apply_direction_set(
            edit.code_tensor(generator), loaded, alphas, generator.num_layers
        )
        return session.render_code(generator, code, edit)

    edited = state.render(generator, with_the_set)
    original = state.render(generator, lambda: session.render_original(generator, edit))
    if edited is None or original is None:
        st.stop()
    edited_col, original_col = st.columns(2)
    with edited_col:
        live.live_image(edited, f"With the set · {edit.source.label}", key="directions.edited")
    with original_col:
        live.live_image(original, f"Original · {edit.source.label}", key="directions.original")

    updated = loaded.with_alphas(alphas)
    opened = st.button("Open in editor", type="primary", icon=":material/tune:", help="Each with its W+ rows")
    if opened:
        set_rows = format_layers(generator.resolve_layers(loaded.layers))
        left_out = state.open_in_editor(updated, alphas, editor.layer_keys(edit.model), set_rows)
        if left_out:
            st.toast(f"{left_out} direction(s) without a SeFa semantic index stay on this page.")
        st.switch_page(navigation.EDITOR_PAGE)
    download_col, save_col = st.columns(2)
    download_col.download_button(
        "Download with these values",
        direction_sets.direction_set_bytes(updated, ".json"),
        f"{set_key.rsplit('.', 1)[0]}.json",
        "application/json",
        on_click="ignore",
        width="stretch",
    )
    if picked is not None and upload is None and save_col.button("Save over the file", width="stretch"):
        who = st.session_state.get(SAVED_BY) or shared_files.session_label()
        try:
            direction_sets.share_direction_set(picked, updated, who, overwrite=True)  # the user asked to
            st.success(f"Saved {state.shown_path(picked, editing.config.root)}")
        except SefaError as error:
            state.show_error(error)
