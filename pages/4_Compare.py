"""Compare: SeFa beside GANSpace's PCA baseline, on the same face and the same distances.

Each method's top K directions walk the editor's face (before its slider edits); the table gives
|cos| between SeFa's and PCA's directions, so one sees which axes the two methods share.
"""

from __future__ import annotations

import streamlit as st

from sefa_core import session
from sefa_core.factorize import DEFAULT_PCA_SAMPLES, factorize
from sefa_core.render import image_grid
from studio_ui import compare, state

MAX_STEPS = 11
DEFAULT_STEPS = 7
DEFAULT_K = 5
CELL_SIZE = 128  # px per grid cell: two grids share the page's width
MIN_SAMPLES, MAX_SAMPLES, SAMPLES_STEP = 1_000, 50_000, 1_000
RESULT = "compare.result"  # (what was asked, its Comparison, cells ≤ CELL_SIZE) of the last run

state.start_page("SeFa and PCA side by side")

editing = state.editing()  # stops here while the editor has nothing open
generator, sefa, edit = editing.generator, editing.semantics, editing.edit
st.caption(
    f"{editing.entry.label} · {session.layer_set_name(sefa)} · starting from {edit.source.label}, "
    "without the slider edits"
)

*traversal_columns, samples_col = st.columns(4)
top_k, sweep = state.traversal_controls(
    editing, traversal_columns, "compare", "Top directions", (DEFAULT_K, DEFAULT_STEPS, MAX_STEPS)
)
samples = samples_col.number_input(
    "PCA samples",
    MIN_SAMPLES,
    MAX_SAMPLES,
    step=SAMPLES_STEP,
    key=state.default(state.KEEP + "compare.samples", DEFAULT_PCA_SAMPLES),
    help="Seeded codes GANSpace's PCA is fitted on (and, for z-space models, regressed back with).",
)

request = (edit.model, edit.digest, edit.source, sefa.spec, top_k, tuple(sweep), int(samples))
if st.button("Compare", type="primary", icon=":material/compare:"):
    progress = st.progress(0.0, text="Sampling codes for PCA…")
    try:
        pca = factorize(
            generator,
            sefa.spec,
            method="pca",
            samples=int(samples),
            progress=lambda done, total: progress.progress(done / total, text=f"PCA: {done}/{total} codes…"),
        )
        result = compare.compare(
            generator,
            edit.code_tensor(generator),
            (sefa, pca),
            top_k,
            sweep,
            conditioning=edit.synthesis_kwargs,
            progress=lambda done, total: progress.progress(done / total, text=f"Rendering {done}/{total}…"),
        )
        st.session_state[RESULT] = (request, result.shrunk(CELL_SIZE))
    except Exception as error:  # noqa: BLE001 - one line for this session
        state.show_error(error, "comparing")
    progress.empty()

asked, shown = st.session_state.get(RESULT, (None, None))
if asked != request:
    st.caption("Choose the directions and distances, then compare.")
    st.stop()
columns = st.columns(2)
for column, (method, grid) in zip(columns, shown.grids.items(), strict=True):
    column.subheader(compare.METHOD_LABELS[method])
    column.image(image_grid(grid[0]), width="stretch")  # rows: directions, columns: distances
st.caption(
    f"Rows: the top {top_k} directions of each method. Columns: distances {sweep[0]:g} to {sweep[-1]:g}."
)
st.subheader("|cos| between the directions")
st.dataframe(compare.cosine_rows(shown), hide_index=True)
