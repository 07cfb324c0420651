"""Models: what config.yaml lists, what each checkpoint turned out to hold, what is in memory, adding one.

A new checkpoint (an upload, or a file already in checkpoints/) is read by the safe loader before
anything is kept; only then is it kept in checkpoints/ and offered for config.yaml. The page never
reads a path a user types: on a shared server that would let anyone make it open any file.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sefa_core import model_admin, shared_files
from sefa_core.config import default_config_path, load_config
from sefa_core.errors import AlreadySavedError, SefaError
from sefa_core.model_admin import MAX_CHECKPOINT_UPLOAD_MB, CheckedCheckpoint
from sefa_core.registry import model_statuses
from studio_ui import resources, state

CHECKED = "models.checked"  # the CheckedCheckpoint waiting to be added to config.yaml
SAVED_BY = state.KEEP + "shared.saved_by"  # this session's label on what it saves (the Directions page too)

state.start_page("Models")


@st.cache_data(show_spinner="Reading the checkpoint…", max_entries=64)
def describe(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """What the loader infers from the file: resolution, latent and W sizes, layers, parameters."""
    return model_admin.check_checkpoint(path).description


try:
    config = load_config()
except SefaError as error:
    state.show_error(error, "config.yaml")
    st.stop()

statuses = model_statuses(config)
table = []
for status in statuses:
    row: dict[str, Any] = {"name": status.entry.name, "model": status.entry.label, "status": "available"}
    row["added"] = shared_files.Stamp(status.entry.saved_by, status.entry.saved_at).describe()
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

# ---- What this server holds in memory -----------------------------------------------------------
st.subheader("In memory")
loaded = resources.models_in_memory().listing()
names = {str(status.path): status.entry.name for status in statuses if status.available}
st.caption(
    f"{len(loaded)} model(s), {sum(m.mib for m in loaded):.1f} MiB of weights, shared by every session. "
    f"Up to {resources.MAX_CACHED_MODELS} stay loaded while nobody uses them."
)
if loaded:
    st.table(
        [
            {
                "model": names.get(model.path, ""),
                "file": state.shown_path(model.path, config.root),
                "digest": model.digest[:16],
                "device": model.device,
                "parameters": f"{model.parameters:,}",
                "MiB": f"{model.mib:.1f}",
            }
            for model in loaded
        ],
        hide_index=True,
        alt="Models in memory",
    )

# ---- Add a checkpoint ---------------------------------------------------------------------------
st.subheader("Add a checkpoint")
st.caption(
    "The safe loader recognises the layout from the file's content and runs no code from it; "
    "the file is kept only if a generator can be built from it."
)
upload_tab, folder_tab = st.tabs([f"Upload (up to {MAX_CHECKPOINT_UPLOAD_MB} MB)", "Already in checkpoints/"])
with upload_tab:
    upload = st.file_uploader("Checkpoint file", max_upload_size=MAX_CHECKPOINT_UPLOAD_MB)
    if st.button("Check and keep", disabled=upload is None):
        try:
            chunks = iter(lambda: upload.read(model_admin.CHUNK_BYTES), b"")
            st.session_state[CHECKED] = model_admin.store_upload(chunks, upload.name, config, upload.size)
        except Exception as error:  # noqa: BLE001 - one line for this session
            state.show_error(error)
with folder_tab:
    unlisted = [item.name for item in model_admin.unlisted_checkpoints(config)]
    picked = st.selectbox(
        "Checkpoint in checkpoints/ that config.yaml does not list yet",
        unlisted,
        index=None,
        placeholder="none there" if not unlisted else "choose one",
        help="Copy a checkpoint into the checkpoints/ folder beside config.yaml to offer it here.",
    )
    if st.button("Check", disabled=picked is None):
        try:
            st.session_state[CHECKED] = model_admin.check_unlisted(picked, config)
        except Exception as error:  # noqa: BLE001 - one line for this session
            state.show_error(error)

checked: CheckedCheckpoint | None = st.session_state.get(CHECKED)
if checked is not None:
    st.success(
        f"{state.shown_path(checked.path, config.root)} loads as {checked.description['architecture']} "
        f"({checked.description['format']})."
    )
    st.json(checked.description, expanded=False)
    with st.form("add_model"):
        name = st.text_input("Name in config.yaml", value=model_admin.model_name(checked.path.name))
        display_name = st.text_input("Display name (optional)")
        saved_by = st.text_input(
            "Added by",
            key=state.default(SAVED_BY, shared_files.session_label()),
            help="config.yaml is shared by every session: this name is shown with the models you add.",
        )
        replace_existing = st.checkbox("Replace a model of this name")
        if st.form_submit_button("Add to config.yaml", type="primary"):
            try:
                model_admin.add_model(
                    default_config_path(),
                    config,
                    name,
                    checked.path,
                    display_name,
                    saved_by=saved_by,
                    overwrite=replace_existing,
                )
            except AlreadySavedError as error:
                st.warning(f"{error} (tick “Replace a model of this name”).", icon="⚠️")
            except SefaError as error:
                state.show_error(error)
            else:
                del st.session_state[CHECKED]
                st.toast(f"Added '{name}' to config.yaml; pick it in the editor.")
                st.rerun()
