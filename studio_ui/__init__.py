"""Streamlit glue shared by ``app.py`` and ``pages/``: cached models, per-user state, live widgets.

Every computation lives in ``sefa_core``; this package only connects it to Streamlit.
"""
