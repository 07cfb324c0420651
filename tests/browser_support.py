"""Run the real app and drive it in headless Chromium: shared by the browser tests and bench/.

with running_app() as url, chromium() as browser:
    page = browser.new_page()
    open_editor(page, url)

Many users at once (``async_chromium``, ``open_session``, ``edit_until``, ``quiet_view``) drive one
browser context per user from one asyncio loop, so that every user acts at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
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


# ---- many users at once ------------------------------------------------------------------------
# Error boxes (st.error's text, without its icon) and exception boxes.
ERRORS_SHOWN = (
    "[data-testid='stAlertContentError'] [data-testid='stMarkdownContainer'], [data-testid='stException']"
)
MODEL_PICKER = ".st-key-keep-model"
SEED_BOX = ".st-key-seed_input input"
MAIN_TITLE = "[data-testid='stMain'] h1"
ORIGINAL_CAPTION = ".st-key-original figcaption"
SLIDER_LABELS = ".st-key-sliders label"
ALL_SLIDERS = ".st-key-sliders input[type=range]"
RANDOM_SHARE = 0.2  # of a session's actions, the rest are slider moves
FRAME_TIMEOUT_MS = 30_000  # a frame slower than this counts as lost: the session fails
POLL_MS = 10
QUIET_MS = 1_000  # a session is quiet once its edited image has not changed for this long
LOGGED_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Uncaught app")
# The src of a live image; components live in open shadow roots, which document queries do not enter.
IMAGE_SRC = """key => [...document.querySelectorAll(`.st-key-${key} *`)]
  .find(e => e.shadowRoot)?.shadowRoot.querySelector('img')?.getAttribute('src') ?? ''"""
SLIDER_BANK = """() => [...document.querySelectorAll('.st-key-sliders *')]
  .find(e => e.shadowRoot)?.shadowRoot.querySelector('.bank')"""


@contextlib.asynccontextmanager
async def async_chromium() -> AsyncIterator:
    """Headless Debian Chromium through Playwright's asyncio API: one browser, many contexts."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass(frozen=True)
class SessionPlan:
    """What one user does: pick ``model`` (its display name), type ``seed``, then edit."""

    model: str
    seed: int


@dataclass(frozen=True)
class SessionView:
    """What one session shows once it is quiet."""

    title: str
    original: str  # the original image's caption, e.g. "Original · seed 12"
    labels: tuple[str, ...]
    alphas: tuple[float, ...]
    edited_src: str
    errors: tuple[str, ...]  # error blocks on the page, then uncaught script errors


@dataclass
class SessionLog:
    """What one session did and how fast the app answered."""

    plan: SessionPlan
    moves: int = 0  # slider moves the server rendered
    same_pixels: int = 0  # of those, moves whose edit rendered to the image already shown (saturated)
    randoms: int = 0  # new faces after Random
    latencies_ms: list[float] = field(default_factory=list)  # slider move -> rendered
    page_errors: list[str] = field(default_factory=list)


async def _image_src(page, key: str) -> str:
    return await page.evaluate(IMAGE_SRC, key)


async def _requests_sent(page) -> int:
    return await page.evaluate(f"() => Number(({SLIDER_BANK})()?.dataset.seq ?? 0)")


async def _move_rendered(page, before: str, sent: int) -> bool:
    """Wait until the server has rendered a slider request sent after ``sent``; whether the image changed.

    A move may render to the pixels already shown (an edit that saturates every pixel), so the
    bank's acknowledgement counts as well as a new image.
    """
    await page.wait_for_function(
        f"""([before, sent]) => {{
          const src = ({IMAGE_SRC})('edited'), bank = ({SLIDER_BANK})();
          const seq = Number(bank?.dataset.seq ?? 0), ack = Number(bank?.dataset.ack ?? 0);
          return (src !== '' && src !== before) || (seq > sent && ack >= seq);
        }}""",
        arg=[before, sent],
        polling=POLL_MS,
        timeout=FRAME_TIMEOUT_MS,
    )
    return await _image_src(page, "edited") != before


async def open_session(browser, url: str, plan: SessionPlan) -> tuple[object, SessionLog]:
    """A new user (a browser context of its own) on ``plan.model``, showing ``plan.seed``."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    log = SessionLog(plan)
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    await page.goto(url)
    await page.locator(SLIDER.format(index=0)).wait_for()
    await pick_model(page, plan.model)
    await page.locator(SEED_BOX).fill(str(plan.seed))
    await page.locator(SEED_BOX).press("Enter")
    await page.locator(ORIGINAL_CAPTION).filter(has_text=f"seed {plan.seed}").wait_for()
    return page, log


async def pick_model(page, label: str) -> None:
    """Choose a model in the sidebar and wait for the editor (or its error) to show it."""
    await page.locator(MODEL_PICKER).click()
    await page.get_by_role("option", name=label, exact=True).click()
    shown = re.compile(rf"^{re.escape(label)}(:|$)")  # the title, or the error line that names it
    await page.locator(f"{MAIN_TITLE}, {ERRORS_SHOWN}").filter(has_text=shown).first.wait_for()


async def edit_until(
    page, log: SessionLog, values: Sequence[float], until: float, rng: random.Random
) -> None:
    """Move sliders to ``values`` and press Random, in random order, until ``time.monotonic()`` > ``until``.

    Each action waits until it is rendered, so the session never has more than one in flight.
    """
    sliders = await page.locator(ALL_SLIDERS).count()
    while time.monotonic() < until:
        if rng.random() < RANDOM_SHARE:
            before = await page.locator(ORIGINAL_CAPTION).inner_text()  # "Original · seed 12"
            await page.get_by_role("button", name="Random").click()
            await (
                page.locator(ORIGINAL_CAPTION)
                .filter(has_not_text=re.compile(f"^{re.escape(before)}$"))
                .wait_for(timeout=FRAME_TIMEOUT_MS)
            )
            log.randoms += 1
            continue
        slider = page.locator(SLIDER.format(index=rng.randrange(sliders)))
        current = float(await slider.input_value())
        before, sent = await _image_src(page, "edited"), await _requests_sent(page)
        started = time.perf_counter()
        await slider.fill(str(rng.choice([v for v in values if v != current])))
        changed = await _move_rendered(page, before, sent)
        log.latencies_ms.append((time.perf_counter() - started) * 1000)
        log.moves += 1
        log.same_pixels += not changed


async def quiet_view(page, log: SessionLog) -> SessionView:
    """What the session shows once its edited image has stopped changing."""
    src = await _image_src(page, "edited")
    while True:
        await asyncio.sleep(QUIET_MS / 1000)
        now = await _image_src(page, "edited")
        if now == src:
            break
        src = now
    return SessionView(
        title=await page.locator(MAIN_TITLE).inner_text(),
        original=await page.locator(ORIGINAL_CAPTION).inner_text(),
        labels=tuple(await page.locator(SLIDER_LABELS).all_inner_texts()),
        alphas=tuple(
            float(v) for v in await page.locator(ALL_SLIDERS).evaluate_all("els => els.map(e => e.value)")
        ),
        edited_src=src,
        errors=tuple(await page.locator(ERRORS_SHOWN).all_inner_texts()) + tuple(log.page_errors),
    )


async def models_in_memory(browser, url: str) -> list[dict[str, str]]:
    """The Models page's "In memory" table, one dict per row."""
    page = await browser.new_page()
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    await page.goto(f"{url}/Models")
    table = page.locator("[data-testid='stTable'] table")
    await table.wait_for()
    headers = await table.locator("thead th").all_inner_texts()
    rows = []
    for row in await table.locator("tbody tr").all():
        rows.append(dict(zip(headers, await row.locator("td").all_inner_texts(), strict=True)))
    await page.close()
    return rows


def logged_failures(text: str) -> list[str]:
    """One line per failure a server log reports: the exception that got out of each traceback, and
    each warning or error logged without one."""
    failures: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif line.startswith(("The above exception", "During handling of the above")):
            failures.pop()  # chained: the traceback that follows ends with the exception that got out
        elif in_traceback and line and not line[0].isspace():
            failures.append(line)
            in_traceback = False
        elif LOGGED_PROBLEM.search(line):
            failures.append(line)
    return failures
