"""Explore: the top semantics of the editor's model, each walked across a range of distances.

One row per semantic, one column per distance, starting from the face in the editor (with its
slider edits). Offered as a PNG grid and as a self-contained HTML page like the reference's.
"""

from __future__ import annotations

import streamlit as st

from sefa_core import session
from sefa_core.editing import distances
from sefa_core.render import downscale, encode_image, image_grid, render_traversals, sample_first_html
from studio_ui import state

MAX_STEPS = 21
DEFAULT_K = 5
CELL_SIZE = 256  # px: larger images are shrunk for the grid, as the CLI does
DEFAULT_STEPS = 11  # as the reference's sefa.py

state.start_page("Explore the semantics")

editing = state.editing()  # stops here while the editor has nothing open
generator, semantics, edit, slider = editing.generator, editing.semantics, editing.edit, editing.entry.slider
layer_set = session.layer_set_name(semantics)
st.caption(f"{editing.entry.label} · {layer_set} · starting from {edit.source.label} as edited")

top_col, range_col, steps_col = st.columns(3)
most = session.semantics_range(generator)[1]
top_k = top_col.slider(
    "Top semantics", 1, most, key=state.default(f"{state.KEEP}explore.k.{edit.model}", min(5, most))
)
start, end = range_col.slider(
    "Distances",
    slider.min,
    slider.max,
    key=state.default(f"{state.KEEP}explore.range.{edit.model}", (slider.min, slider.max)),
)
steps = steps_col.slider(
    "Steps", 2, MAX_STEPS, key=state.default(state.KEEP + "explore.steps", DEFAULT_STEPS)
)
sweep = distances(start, end, steps)

RESULT = "explore.result"  # (what was asked, pixels (1, K, S, H, W, 3)) of this session's last grid
request = (edit, semantics.spec, top_k, tuple(sweep))
if st.button("Render grid", type="primary", icon=":material/grid_view:"):
    progress = st.progress(0.0, text="Rendering…")
    try:
        pixels = render_traversals(
            generator,
            session.edited_code(generator, semantics, edit),
            semantics,
            range(top_k),
            sweep,
            progress=lambda done, total: progress.progress(done / total, text=f"Rendering {done}/{total}…"),
            conditioning=edit.synthesis_kwargs,
        )
        st.session_state[RESULT] = (request, downscale(pixels, CELL_SIZE))  # a session keeps ≤ 256 px cells
    except Exception as error:  # noqa: BLE001 - one line for this session
        state.show_error(error, "rendering")
    progress.empty()

asked, pixels = st.session_state.get(RESULT, (None, None))
if asked != request:
    st.caption("Choose the semantics and distances, then render the grid.")
    st.stop()
grid = image_grid(pixels[0])  # rows: semantics, columns: distances
png_col, html_col = st.columns(2)
png_col.download_button(
    "Grid as PNG", encode_image(grid, "PNG"), "sefa_grid.png", "image/png", on_click="ignore", width="stretch"
)
html_col.download_button(
    "Page as HTML",
    sample_first_html(pixels, semantics, range(top_k), sweep, title=f"SeFa · {editing.entry.label}"),
    "sefa_grid.html",
    "text/html",
    on_click="ignore",
    width="stretch",
)
labels = " · ".join(session.slider_label(k, semantics.eigenvalues[k]) for k in range(top_k))
st.image(grid, caption=f"Rows, top to bottom: {labels}. Columns: {start:g} to {end:g}.", width="stretch")
