"""The app's pages and its sidebar head: the title above the page list, the main page named "Editor".

Every asset the pages show is served by this server (the page icon is a local PNG, not a Material
icon that the browser would fetch from a font CDN), so the app works offline and sends nothing out.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ASSETS = Path(__file__).parent / "assets"
PAGE_ICON = ASSETS / "icon.png"
APP_CSS = Path(__file__).parent / "frontend" / "app.css"
ROOT = Path(__file__).resolve().parents[1]
APP_TITLE = "SeFa Studio"

# (file under the project root, label in the sidebar, url path, icon): the editor first, the default.
# A page whose file is absent (not yet in this checkout) is left out of the list.
PAGES = (
    ("pages/0_Editor.py", "Editor", "", ":material/tune:"),
    ("pages/1_Explore.py", "Explore", "Explore", ":material/grid_view:"),
    ("pages/2_Directions.py", "Directions", "Directions", ":material/explore:"),
    ("pages/3_Models.py", "Models", "Models", ":material/deployed_code:"),
    ("pages/4_Compare.py", "Compare", "Compare", ":material/compare:"),
)
EDITOR_PAGE = PAGES[0][0]


def run_page() -> None:
    """Pick the page the URL names and run it, under the sidebar head every page shares."""
    st.set_page_config(page_icon=str(PAGE_ICON), layout="wide")
    shown = [(path, label, url, icon) for path, label, url, icon in PAGES if (ROOT / path).is_file()]
    pages = [
        st.Page(ROOT / path, title=f"{label} · {APP_TITLE}", url_path=url, default=not url)
        for path, label, url, _ in shown
    ]
    current = st.navigation(pages, position="hidden")  # drawn below, under the title
    st.html(f"<style>{APP_CSS.read_text(encoding='utf-8')}</style>")
    st.sidebar.title(APP_TITLE)
    for page, (_, label, _, icon) in zip(pages, shown, strict=True):
        st.sidebar.page_link(page, label=label, icon=icon)
    st.sidebar.divider()
    current.run()
