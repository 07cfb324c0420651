"""SeFa Studio: pick a model and a face, drag the semantic sliders, watch the face change.

Run with ``streamlit run app.py``. This file only chooses the page; the editor is
``pages/0_Editor.py``, and every page shares the sidebar head of ``studio_ui.navigation``.
"""

from __future__ import annotations

from studio_ui import navigation

navigation.run_page()
