"""The session's side of the files every session shares (config.yaml, checkpoints/, direction_sets/).

``SAVED_BY`` holds the label a session puts on what it saves: one value for the Models page's
"Added by" and the Directions page's "Saved by", kept while other pages are open. Uploads not saved
yet live in ``private_folder()``, which no other session knows of.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from studio_ui import state

SAVED_BY = state.KEEP + "shared.saved_by"  # this session's label (sefa_core.shared_files.session_label)
SESSION_SCRATCH_PREFIX = "sefa-session-"


@st.cache_resource(
    scope="session",
    show_spinner=False,
    validate=Path.is_dir,  # a temp cleaner may have removed it: then a new one
    on_release=functools.partial(shutil.rmtree, ignore_errors=True),
)
def private_folder() -> Path:
    """This session's scratch folder, in the system temp folder; removed when the session disconnects.

    Streamlit releases session-scoped resources when the browser's connection closes, so a checked
    upload that was never saved does not outlive its session.
    """
    return Path(tempfile.mkdtemp(prefix=SESSION_SCRATCH_PREFIX))
