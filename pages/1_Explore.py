"""Explore: the top semantics of the editor's model, each walked across a range of distances.

One row per semantic, one column per distance, starting from the face in the editor (with its
slider edits). Offered as a PNG grid and as a self-contained HTML page like the reference's.
"""

from __future__ import annotations

import streamlit as st

from sefa_core import session
from sefa_core.render import (
    dimmed,
    downscale,
    encode_image,
    labelled_grid,
    render_traversals,
    sample_first_html,
)
from studio_ui import state

MAX_STEPS = 21
DEFAULT_K = 5
CELL_SIZE = 256  # px: larger images are shrunk for the grid, as the CLI does
DEFAULT_STEPS = 11  # as the reference's sefa.py

state.start_page("Explore the semantics")

editing = state.editing()  # stops here while the editor has nothing open
generator, semantics, edit = editing.generator, editing.semantics, editing.edit
layer_set = session.layer_set_name(semantics)
st.caption(f"{editing.entry.label} · {layer_set} · starting from {edit.source.label} as edited")

top_k, sweep = state.traversal_controls(
    editing, st.columns(3), "explore", "Top semantics", (DEFAULT_K, DEFAULT_STEPS, MAX_STEPS)
)

RESULT = "explore.result"  # (what was asked, pixels (1, K, S, H, W, 3)) of this session's last grid
request = (edit, semantics.spec, top_k, tuple(sweep))
asked, pixels = st.session_state.get(RESULT, (None, None))
clicked = st.button("Render grid", type="primary", icon=":material/grid_view:")
shown = st.empty()  # the grid; an out-of-date one stays there, dimmed, until the new one is drawn


def grid_of(pixels, asked) -> object:
    """The grid image, labelled: rows are semantics (name or index, and λ), columns α, α = 0 framed."""
    _, _, count, wanted = asked
    rows, columns, zero = session.grid_labels(semantics, edit.names, count, wanted)
    return labelled_grid(pixels[0], rows, columns, zero)


if pixels is not None and (clicked or asked != request):
    shown.image(dimmed(grid_of(pixels, asked)), caption="The last grid, out of date: render it again.")
if clicked:
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
        asked, pixels = request, downscale(pixels, CELL_SIZE)  # a session keeps ≤ 256 px cells
        st.session_state[RESULT] = (asked, pixels)
    except Exception as error:  # noqa: BLE001 - one line for this session
        state.show_error(error, "rendering")
    progress.empty()

if asked != request:
    if pixels is None:
        st.caption("Choose the semantics and distances, then render the grid.")
    st.stop()
grid = grid_of(pixels, asked)
shown.image(
    grid,
    caption=f"Rows: each semantic of {layer_set} (its name or index, then λ). Columns: α from {sweep[0]:g} "
    f"to {sweep[-1]:g}; the framed one is α = 0.",
    width="stretch",
)
png_col, html_col = st.columns(2)
png_col.download_button(
    "Grid as PNG",
    lambda: encode_image(grid, "PNG"),
    "sefa_grid.png",
    "image/png",
    on_click="ignore",
    width="stretch",
)
html_col.download_button(
    "Page as HTML",
    sample_first_html(pixels, semantics, range(top_k), sweep, title=f"SeFa · {editing.entry.label}"),
    "sefa_grid.html",
    "text/html",
    on_click="ignore",
    width="stretch",
)
