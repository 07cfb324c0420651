"""Models: what config.yaml lists, what each checkpoint turned out to hold, and adding a new one.

A new checkpoint (a path on this machine, or an upload) is read by the safe loader before
anything is kept; only then is it copied into checkpoints/ and offered for config.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from sefa_core import model_admin
from sefa_core.config import default_config_path, load_config
from sefa_core.errors import SefaError
from sefa_core.model_admin import MAX_CHECKPOINT_UPLOAD_MB, CheckedCheckpoint
from sefa_core.registry import model_statuses
from studio_ui import state

CHECKED = "models.checked"  # the CheckedCheckpoint waiting to be added to config.yaml

state.start_page("Models", ":material/deployed_code:", "Models")


@st.cache_data(show_spinner="Reading the checkpoint…", max_entries=64)
def describe(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """What the loader infers from the file: resolution, latent and W sizes, layers, parameters."""
    return model_admin.check_checkpoint(path).description


try:
    config = load_config()
except SefaError as error:
    state.show_error(error, "config.yaml")
    st.stop()

table = []
for status in model_statuses(config):
    row: dict[str, Any] = {"name": status.entry.name, "model": status.entry.label, "status": "available"}
    if not status.available:
        row["status"] = f"unavailable: {status.reason}"
    else:
        try:
            stat = status.path.stat()
            row |= describe(str(status.path), (stat.st_mtime_ns, stat.st_size))
        except Exception as error:  # noqa: BLE001 - a broken file is one line in its row
            row["status"] = f"does not load: {state.one_line(error)}"
    table.append(row)
st.dataframe(table, hide_index=True, width="stretch")

# ---- Add a checkpoint ---------------------------------------------------------------------------
st.subheader("Add a checkpoint")
st.caption(
    "The safe loader recognises the layout from the file's content and runs no code from it; "
    "the file is kept only if a generator can be built from it."
)
path_tab, upload_tab = st.tabs(["A file on this machine", f"Upload (up to {MAX_CHECKPOINT_UPLOAD_MB} MB)"])
with path_tab:
    typed = st.text_input("Checkpoint path", placeholder="/data/models/ffhq-1024.pkl")
    if st.button("Check and copy into checkpoints/", disabled=not typed.strip()):
        try:
            st.session_state[CHECKED] = model_admin.import_checkpoint(
                Path(typed.strip()).expanduser(), config
            )
        except Exception as error:  # noqa: BLE001 - one line for this session
            state.show_error(error)
with upload_tab:
    upload = st.file_uploader("Checkpoint file", max_upload_size=MAX_CHECKPOINT_UPLOAD_MB)
    if st.button("Check and keep", disabled=upload is None):
        try:
            chunks = iter(lambda: upload.read(model_admin.CHUNK_BYTES), b"")
            st.session_state[CHECKED] = model_admin.store_upload(chunks, upload.name, config)
        except Exception as error:  # noqa: BLE001 - one line for this session
            state.show_error(error)

checked: CheckedCheckpoint | None = st.session_state.get(CHECKED)
if checked is not None:
    st.success(
        f"{checked.path} loads as {checked.description['architecture']} ({checked.description['format']})."
    )
    st.json(checked.description, expanded=False)
    with st.form("add_model"):
        name = st.text_input("Name in config.yaml", value=model_admin.model_name(checked.path.name))
        display_name = st.text_input("Display name (optional)")
        if st.form_submit_button("Add to config.yaml", type="primary"):
            try:
                model_admin.add_model(default_config_path(), config, name, checked.path, display_name)
            except SefaError as error:
                state.show_error(error)
            else:
                del st.session_state[CHECKED]
                st.toast(f"Added '{name}' to config.yaml; pick it in the editor.")
                st.rerun()
