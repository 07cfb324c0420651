"""Benchmark 6: the app's memory with the default model, then after each of many model switches.

A temporary ``config.yaml`` (``SEFA_CONFIG``) lists the default model and five random-weight
checkpoints of other architectures, written the way their public implementations save them
(PyTorch-tutorial DCGAN, genforce PGGAN and StyleGAN, NVIDIA StyleGAN2 and StyleGAN3): six models
against a model cache of ``MAX_CACHED_MODELS``, so switching must evict. After every switch a slider
is moved once, and the resident memory (RSS) is printed; it must level off, not grow with switches.

- default: ``app.py`` runs in this process through Streamlit's ``AppTest`` (the caches are the
  same process-wide ``st.cache_resource`` a server uses); RSS is this process's, and the number of
  generators alive is counted.
- ``--browser``: a real ``streamlit run`` server driven by headless Chromium (Playwright); RSS is
  the server process's.
- ``--sessions N``: N users at once, each on a different model, all switching every round.

    .venv/bin/python -m bench.bench_memory [--switches 20] [--sessions 1] [--browser]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from bench.common import REPO_ROOT, load_average, machine, peak_rss_mib, use_test_helpers
from sefa_core.config import CHECKPOINTS_DIR, CODES_DIR, CONFIG_ENV, CONFIG_VERSION
from sefa_core.models.dcgan import DCGANGenerator
from sefa_core.models.pggan import PGGANGenerator
from sefa_core.models.stylegan import StyleGANGenerator
from sefa_core.models.stylegan2 import StyleGAN2Generator

SEED = 0
DEFAULT_CODES = "latent_codes/default.npy"
# (config name, file name, what it is): the models the benchmark switches between, in order.
MODELS = (
    ("default", "", "the packaged DCGAN, 64 px"),
    ("dcgan", "dcgan_tutorial.pt", "PyTorch-tutorial DCGAN, 64 px, ngf 128"),
    ("pggan", "pggan_genforce.pth", "genforce PGGAN, 64 px, 256..64 channels"),
    ("stylegan", "stylegan_genforce.pth", "genforce StyleGAN, 64 px, 256..64 channels"),
    ("stylegan2", "stylegan2_nvidia.pt", "NVIDIA StyleGAN2, 256 px, config-f widths halved"),
    ("stylegan3", "stylegan3t_nvidia.pt", "NVIDIA StyleGAN3-T, 64 px (small)"),
)
APP_TIMEOUT_S = 180.0
# Slider 0 steps through these, one move a round: never the value it sent last, which the slider
# bank would not send again (even after a model switch has reset the slider to 0).
SLIDER_VALUES = (2.0, -2.0, 1.0, -1.0)
SESSION_OFFSET = 2  # session k walks the models 2k ahead of session 0, so sessions sit on different models
MIB = 1024 * 1024


# ---- the checkpoints ------------------------------------------------------------------------------
def randomized(generator: torch.nn.Module) -> torch.nn.Module:
    """Fill parameters a constructor left at zero (PGGAN, StyleGAN) with seeded normal values."""
    torch.manual_seed(SEED)
    with torch.no_grad():
        for parameter in generator.parameters():
            if not parameter.any():
                parameter.normal_()
    return generator


def checkpoint_states() -> dict[str, object]:
    """File name -> what ``torch.save`` writes, in each public implementation's layout."""
    use_test_helpers()
    from test_stylegan2 import _nvidia_state  # the tests' NVIDIA key mapping, not a second copy
    from test_stylegan3 import make_stylegan3_state

    torch.manual_seed(SEED)
    stylegan2 = StyleGAN2Generator(mapping_widths=[512] * 9, channels=[256] * 5 + [128, 64])
    return {
        # our DCGAN, PGGAN and StyleGAN modules use the tutorial's and genforce's own key names
        "dcgan_tutorial.pt": {"netG_state_dict": randomized(DCGANGenerator([100, 1024, 512, 256, 128, 3]))},
        "pggan_genforce.pth": {"generator_smooth": randomized(PGGANGenerator(512, [256, 256, 256, 128, 64]))},
        "stylegan_genforce.pth": {
            "generator_smooth": randomized(StyleGANGenerator(512, 512, 512, 8, [256, 256, 256, 128, 64]))
        },
        "stylegan2_nvidia.pt": _nvidia_state(stylegan2),
        "stylegan3t_nvidia.pt": make_stylegan3_state("t", resolution=64, channel_max=128, seed=SEED),
    }


def write_checkpoints(folder: Path) -> None:
    """Run in a child process, so that building them leaves nothing in the measured process's heap."""
    for name, content in checkpoint_states().items():
        if isinstance(content, dict):
            content = {
                key: value.state_dict() if isinstance(value, torch.nn.Module) else value
                for key, value in content.items()
            }
        torch.save(content, folder / CHECKPOINTS_DIR / name)


def prepare(folder: Path) -> Path:
    """A config folder: config.yaml, checkpoints/ and the default model's prepared codes."""
    (folder / CHECKPOINTS_DIR).mkdir()
    (folder / CODES_DIR).mkdir()
    shutil.copy(REPO_ROOT / DEFAULT_CODES, folder / DEFAULT_CODES)
    child = multiprocessing.get_context("spawn").Process(target=write_checkpoints, args=(folder,))
    child.start()
    child.join()
    assert child.exitcode == 0, "writing the checkpoints failed"
    models = [{"name": "default", "source": "default", "codes": DEFAULT_CODES}]
    models += [{"name": name, "source": f"{CHECKPOINTS_DIR}/{file}"} for name, file, _ in MODELS[1:]]
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"version": CONFIG_VERSION, "models": models}, sort_keys=False))
    return config


def target(session: int, switch: int) -> str:
    """The model ``session`` switches to at ``switch``: sessions walk the models in turn, apart."""
    return MODELS[(switch + SESSION_OFFSET * session) % len(MODELS)][0]


def rss_mib(pid: int) -> float:
    """Resident memory of a process, as the browser tests read it."""
    use_test_helpers()
    from browser_support import rss_mib as process_rss

    return process_rss(pid)


def generators_alive() -> tuple[int, float]:
    """How many generators this process still holds, and their weights (MiB)."""
    from sefa_core.models.base import Generator

    gc.collect()
    alive = [thing for thing in gc.get_objects() if isinstance(thing, Generator)]
    tensors = [t for generator in alive for t in (*generator.parameters(), *generator.buffers())]
    return len(alive), sum(t.numel() * t.element_size() for t in tensors) / MIB


# ---- driving the app: one object per user session -------------------------------------------------
class AppTestSession:
    """``app.py`` run by Streamlit's AppTest in this process: one session state, the shared caches."""

    def __init__(self) -> None:
        from streamlit.testing.v1 import AppTest

        from studio_ui import state

        self.state = state
        self.values = itertools.cycle(SLIDER_VALUES)
        self.app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=APP_TIMEOUT_S)
        self.app.run()
        self._check("opening the editor")

    def _check(self, doing: str) -> None:
        if self.app.exception:
            raise RuntimeError(f"{doing}: {self.app.exception[0].message}")

    def switch(self, name: str) -> None:
        self.app.selectbox(key=f"{self.state.KEEP}model").set_value(name).run()
        self._check(f"switching to {name}")

    def move_slider(self) -> None:
        edit = self.app.session_state[self.state.EDIT]
        moved = (next(self.values), *edit.alphas[1:])
        self.app.session_state[self.state.EDIT] = edit.with_alphas(moved)
        self.app.run()
        self._check("moving a slider")


class BrowserSession:
    """One Chromium page on a real server: a session of its own."""

    def __init__(self, browser: object, url: str) -> None:
        from browser_support import open_editor

        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.model = MODELS[0][0]
        self.values = itertools.cycle(SLIDER_VALUES)
        open_editor(self.page, url)

    def switch(self, name: str) -> None:
        self.page.get_by_role("combobox", name="Model").click()
        self.page.get_by_role("option", name=name, exact=True).click()  # no display names: labels are names
        heading = self.page.get_by_role("heading", name=re.compile(f"^{name}$"))
        error = self.page.get_by_role("alert")  # st.error: the model or its first render failed
        heading.or_(error).first.wait_for()
        if error.count():
            shown = " ".join(error.first.inner_text().replace("⚠️", "").split())
            raise RuntimeError(f"switching to {name}, the app shows: {shown}")
        self.model = name

    def move_slider(self) -> None:
        from browser_support import EDITED_IMAGE, LOAD_TIMEOUT_MS, SLIDER, image_src, screenshot
        from playwright.sync_api import expect

        before = image_src(self.page)
        self.page.locator(SLIDER.format(index=0)).fill(str(next(self.values)))
        try:
            drawn = expect(self.page.locator(EDITED_IMAGE))
            drawn.not_to_have_attribute("src", before, timeout=LOAD_TIMEOUT_MS)
        except AssertionError:
            shot = screenshot(self.page, "bench_memory_slider_not_drawn.png")
            raise RuntimeError(
                f"on {self.model}, a slider move was not drawn within {LOAD_TIMEOUT_MS / 1000:.0f} s "
                f"(screenshot: {shot})"
            ) from None


def measure(
    sessions: list, switches: int, rss: Callable[[], float], detail: Callable[[], str]
) -> list[float]:
    """Every session moves a slider, then switches model ``switches`` times; RSS (MiB) after each round."""

    def report(label: str) -> float:
        for session in sessions:
            session.move_slider()
        figure = rss()
        print(f"  {label:<44} RSS {figure:6.0f} MiB{detail()}")
        return figure

    figures = [report(f"{len(sessions)} session(s) on the default model")]
    for number in range(1, switches + 1):
        started = time.perf_counter()
        names = [target(index, number) for index in range(len(sessions))]
        for session, name in zip(sessions, names, strict=True):
            session.switch(name)
        seconds = time.perf_counter() - started
        figures.append(report(f"switch {number:>2} -> {', '.join(names)} ({seconds:.1f} s)"))
    return figures


def run_apptest(num_sessions: int, switches: int) -> list[float]:
    """``app.py`` under AppTest in this process; RSS is this process's."""
    from studio_ui import resources

    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").disabled = True
    logging.getLogger("sefa_studio").setLevel(logging.ERROR)
    print(f"  before the app (torch, streamlit imported): RSS {rss_mib(os.getpid()):.0f} MiB")

    def alive() -> str:
        count, weights = generators_alive()
        return f"; {count} generators alive, {weights:4.0f} MiB of weights"

    sessions = [AppTestSession() for _ in range(num_sessions)]
    figures = measure(sessions, switches, lambda: rss_mib(os.getpid()), alive)
    cache = resources.MAX_CACHED_MODELS
    print(f"  (the model cache holds at most {cache} models; peak RSS {peak_rss_mib():.0f} MiB)")
    return figures


def run_browser(config: Path, num_sessions: int, switches: int) -> list[float]:
    """A real ``streamlit run`` server, one Chromium page per session; RSS is the server's."""
    use_test_helpers()
    from browser_support import chromium, chromium_missing, running_app, screenshot

    if reason := chromium_missing():
        raise RuntimeError(f"cannot drive a browser: {reason}")
    from playwright.sync_api import Error as PlaywrightError

    with running_app(config=config) as (url, pid), chromium() as browser:
        print(f"  server started, no session yet: RSS {rss_mib(pid):.0f} MiB")
        sessions: list[BrowserSession] = []
        try:
            sessions += [BrowserSession(browser, url) for _ in range(num_sessions)]
            return measure(sessions, switches, lambda: rss_mib(pid), str)
        except PlaywrightError as error:  # a timeout: the page never showed what was waited for
            waited = next((line for line in str(error).splitlines() if "waiting for" in line), "")
            shots = [str(screenshot(s.page, f"bench_memory_session{k}.png")) for k, s in enumerate(sessions)]
            raise RuntimeError(
                f"{str(error).splitlines()[0]} {waited.strip()} (screenshots: {', '.join(shots)})"
            ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=20, help="model switches after the default")
    parser.add_argument("--sessions", type=int, default=1, help="users switching at the same time")
    parser.add_argument("--browser", action="store_true", help="a real server driven by Chromium")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        config = prepare(Path(folder))
        print("models: " + "; ".join(f"{name}: {what}" for name, _, what in MODELS))
        try:
            if args.browser:
                print(f"real server ({sys.executable} -m streamlit run app.py) driven by headless Chromium:")
                figures = run_browser(config, args.sessions, args.switches)
            else:
                os.environ[CONFIG_ENV] = str(config)
                print("app.py under streamlit.testing AppTest, in this process:")
                figures = run_apptest(args.sessions, args.switches)
        except RuntimeError as error:
            print(f"stopped: {error}")
            sys.exit(1)
    cycle = len(MODELS)
    highs = [max(figures[start : start + cycle]) for start in range(1, len(figures), cycle)]
    print(
        f"RSS: default model {figures[0]:.0f} MiB, highest {max(figures):.0f} MiB; highest in each "
        f"round of {cycle} switches: {', '.join(f'{high:.0f}' for high in highs)} MiB"
    )
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
