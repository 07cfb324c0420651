"""Run the real app and drive it in headless Chromium: shared by the browser tests and bench/.

with running_app() as url, chromium() as browser:
    page = browser.new_page()
    open_editor(page, url)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
LOAD_TIMEOUT_MS = 60_000
ARTIFACTS = REPO_ROOT / "test-artifacts"

# The shadow roots of components are open, so Playwright's CSS selectors reach inside them.
SLIDER = "input[type=range][data-semantic='{index}']"
EDITED_IMAGE = ".st-key-edited img"
ORIGINAL_IMAGE = ".st-key-original img"


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before it was healthy")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not healthy within {timeout_s:.0f} s")


@contextlib.contextmanager
def running_app(config: Path | None = None, log: Path | None = None) -> Iterator[tuple[str, int]]:
    """``streamlit run app.py`` on a free local port; yields (url, pid) and stops it afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO_ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        HOST,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    env = dict(os.environ)
    if config is not None:
        env["SEFA_CONFIG"] = str(config)
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        _wait_healthy(url, process, START_TIMEOUT_S)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None:
            output.close()


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian Chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_editor(page, url: str) -> None:
    """Load the editor and wait until the sliders and the edited image are on screen."""
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    page.goto(url)
    page.locator(SLIDER.format(index=0)).wait_for()
    page.locator(EDITED_IMAGE).wait_for()


def image_src(page, selector: str = EDITED_IMAGE) -> str:
    return page.locator(selector).get_attribute("src") or ""


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
