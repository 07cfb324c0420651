"""The Models page in a real server and headless Chromium: a checked upload waits in its session's
scratch folder, and closing the browser tab removes it (AppTest has no connection to close).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser_support import LOAD_TIMEOUT_MS, chromium, chromium_missing, running_app
from test_uploads import files_under, tiny_checkpoint_bytes

pytestmark = pytest.mark.browser

SESSION_SCRATCH_PREFIX = "sefa-session-"  # studio_ui.sharing's (the tests import only sefa_core)

RELEASE_TIMEOUT_S = 20.0  # the server notices the closed websocket within a second or two


def session_files(scratch: Path) -> list[str]:
    """The files in the sessions' scratch folders (Streamlit keeps its own temp files beside them)."""
    return [f for f in files_under(scratch) if f.startswith(SESSION_SCRATCH_PREFIX)]


def test_an_unsaved_upload_is_removed_when_its_browser_tab_closes(tmp_path, monkeypatch):
    if reason := chromium_missing():
        pytest.skip(reason)
    root, scratch = tmp_path / "studio", tmp_path / "scratch"
    (root / "checkpoints").mkdir(parents=True)
    scratch.mkdir()
    (root / "config.yaml").write_text("version: 1\nmodels:\n  - name: default\n    source: default\n")
    (tmp_path / "mine.pt").write_bytes(tiny_checkpoint_bytes())
    monkeypatch.setenv("TMPDIR", str(scratch))  # the server's tempfile.gettempdir(), not Chromium's
    with running_app(config=root / "config.yaml", log=tmp_path / "streamlit.log") as (url, _):
        monkeypatch.delenv("TMPDIR")
        with chromium() as browser:
            browse_upload_and_close(browser, url, tmp_path / "mine.pt", root, scratch)


def browse_upload_and_close(browser, url: str, checkpoint: Path, root: Path, scratch: Path) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    page.goto(f"{url}/Models")
    page.locator("input[type=file]").set_input_files(str(checkpoint))
    page.get_by_role("button", name="Check the upload").click()
    # the success line, not the page's caption, which also says "stays private to this session"
    page.get_by_text(f"The upload {checkpoint.name} loads as").wait_for()
    [kept] = session_files(scratch)
    assert Path(kept).name == "mine.pt" and files_under(root / "checkpoints") == []

    context.close()  # the tab goes, and with it the session's connection
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while session_files(scratch) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_files(scratch) == [] and files_under(root / "checkpoints") == []
