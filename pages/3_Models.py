"""Models: what config.yaml lists, what each checkpoint turned out to hold, what is in memory, adding one.

A new checkpoint (an upload, or a file already in checkpoints/) is read by the safe loader before
anything is kept. An upload that loads stays private to this session (in its scratch folder, not in
checkpoints/) until "Add to config.yaml" keeps it and lists it, both at once; other sessions see it
only then. "Discard", a newer upload or the session's end removes it. The page never reads a path
a user types: on a shared server that would let anyone make it open any file.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sefa_core import model_admin, shared_files
from sefa_core.config import default_config_path, load_config
from sefa_core.errors import AlreadySavedError, SefaError
from sefa_core.model_admin import MAX_CHECKPOINT_UPLOAD_MB, NOT_CONDITIONAL, CheckedCheckpoint, PrivateUpload
from sefa_core.registry import model_statuses
from studio_ui import resources, sharing, state
from studio_ui.sharing import SAVED_BY

CHECKED = "models.checked"  # what waits to be added to config.yaml: a PrivateUpload or a CheckedCheckpoint
CLASSES = "models.classes"  # the classes typed for the checkpoint to check

state.start_page("Models")


@st.cache_data(show_spinner="Reading the checkpoint…", max_entries=64)
def describe(path: str, stamp: tuple[int, int], classes: tuple[str, ...] | None) -> dict[str, Any]:
    """What the loader infers from the file: resolution, latent and W sizes, layers, parameters."""
    return model_admin.check_checkpoint(path, classes).description


def hold(checked: CheckedCheckpoint | PrivateUpload) -> None:
    """Keep ``checked`` for the form below; a private upload it replaces is removed."""
    previous = st.session_state.get(CHECKED)
    if isinstance(previous, PrivateUpload):
        previous.discard()
    st.session_state[CHECKED] = checked


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
            row |= describe(str(status.path), (stat.st_mtime_ns, stat.st_size), status.entry.classes)
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
    "The safe loader recognises the layout from the file's content and runs no code from it. "
    "An upload that loads stays private to this session until you add it to config.yaml; "
    "only then is it kept in checkpoints/, where every session sees it."
)
classes_text = st.text_input(
    "Classes (class-conditional models)",
    key=CLASSES,
    placeholder="optional: names between commas, a count, or none",
    help="A conditional DCGAN whose first layer takes z and a one-hot class cannot tell its class "
    "count from the weights: give its class names (cat, dog, bird) or their count (10). Type "
    f"“{NOT_CONDITIONAL}” for a DCGAN that is not conditional but has an unusual z size. "
    "Other models know their classes; names given here label them. Written as classes: in config.yaml.",
)
st.caption(
    "Classes are needed only by a conditional DCGAN (a one-hot class beside z): its class names or "
    f"count, or “{NOT_CONDITIONAL}” for a DCGAN that is not conditional. Leave it empty otherwise."
)
upload_tab, folder_tab = st.tabs([f"Upload (up to {MAX_CHECKPOINT_UPLOAD_MB} MB)", "Already in checkpoints/"])
with upload_tab:
    upload = st.file_uploader("Checkpoint file", max_upload_size=MAX_CHECKPOINT_UPLOAD_MB)
    if st.button("Check the upload", disabled=upload is None):
        try:
            chunks = iter(lambda: upload.read(model_admin.CHUNK_BYTES), b"")
            classes = model_admin.parse_classes(classes_text)
            scratch = sharing.private_folder()
            hold(model_admin.check_upload(chunks, upload.name, config, upload.size, classes, scratch))
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
            hold(model_admin.check_unlisted(picked, config, model_admin.parse_classes(classes_text)))
        except Exception as error:  # noqa: BLE001 - one line for this session
            state.show_error(error)

pending: CheckedCheckpoint | PrivateUpload | None = st.session_state.get(CHECKED)
if isinstance(pending, PrivateUpload) and not pending.checked.path.is_file():
    del st.session_state[CHECKED]  # its folder went with the connection (sharing.private_folder)
    st.info(
        f"The upload {pending.target.name} was removed when this session's connection closed; check it again."
    )
    pending = None
if pending is not None:
    private = isinstance(pending, PrivateUpload)
    checked = pending.checked if private else pending
    kept = pending.target if private else checked.path
    shown = f"The upload {kept.name}" if private else state.shown_path(kept, config.root)
    where = " It stays private to this session until you add it." if private else ""
    st.success(
        f"{shown} loads as {checked.description['architecture']} ({checked.description['format']}).{where}"
    )
    st.json(checked.description, expanded=False)
    with st.form("add_model"):
        name = st.text_input("Name in config.yaml", value=model_admin.model_name(kept.name))
        display_name = st.text_input("Display name (optional)")
        saved_by = st.text_input(
            "Added by",
            key=state.default(SAVED_BY, shared_files.session_label()),
            help="config.yaml is shared by every session: this name is shown with the models you add.",
        )
        replace_existing = st.checkbox("Replace a model of this name")
        add_col, discard_col = st.columns(2)
        if add_col.form_submit_button("Add to config.yaml", type="primary"):
            try:
                model_admin.add_model(
                    default_config_path(),
                    config,
                    name,
                    pending if private else kept,
                    display_name,
                    classes=checked.classes,
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
        if discard_col.form_submit_button("Discard"):
            if private:
                pending.discard()
            del st.session_state[CHECKED]
            st.rerun()
