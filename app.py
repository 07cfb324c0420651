"""SeFa Studio: pick a model and a face, drag the semantic sliders, watch the face change.

Run with ``streamlit run app.py``. As a script (each session's run) this file only chooses the page;
the editor is ``pages/0_Editor.py``, and every page shares the sidebar head of
``studio_ui.navigation``. Imported as a module, which ``streamlit run`` does when it finds the
``st.App`` below, it adds the drag-frame route (``studio_ui.frames``) and a socket option
(``studio_ui.server``) to Streamlit's server.
"""

from __future__ import annotations

import streamlit as st

from studio_ui import frames, navigation, server

if __name__ == "__main__":
    navigation.run_page()
else:
    app = st.App(__file__, routes=frames.routes(), lifespan=server.lifespan)
