"""Many users at once: each sees only their own model, face and sliders; nothing breaks, leaks or grows.

One app on a temporary config.yaml (the default model, four tiny random-weight checkpoints of other
architectures, and one corrupt file) and one headless Chromium with a browser context per user,
all driven at the same time from one asyncio loop. Run with ``pytest -m browser``; skipped, with
the reason printed, where Chromium or Playwright is missing. bench/bench_concurrency.py is the
longer variant.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from browser_support import (
    ERRORS_SHOWN,
    SessionLog,
    SessionPlan,
    SessionView,
    async_chromium,
    chromium_missing,
    edit_until,
    logged_failures,
    models_in_memory,
    open_session,
    pick_model,
    quiet_view,
    rss_mib,
    running_app,
)
from pickle_factory import write_network_pickle
from PIL import Image
from test_biggan import TINY_CONFIG, reference_state_dict, write_checkpoint
from test_genforce import genforce_stylegan_state, save_genforce
from test_stylegan2 import NVIDIA_TINY_KWARGS, _nvidia_state, _tiny_generator
from test_stylegan3 import make_stylegan3_state

from sefa_core import session
from sefa_core.config import AppConfig, SliderRange, load_config
from sefa_core.editing import distances
from sefa_core.factorize import factorize
from sefa_core.models.base import Generator
from sefa_core.registry import load_generator
from sefa_core.render import LIVE_FORMAT, encode_image
from sefa_core.session import CodeRows, CodeSource, Settings, Truncation

pytestmark = pytest.mark.browser

SESSIONS = 10  # two users on each model
OPEN_AT_ONCE = 4  # sessions loading the page together: twenty at once starve a 2-core machine
EDIT_SECONDS = 30.0
WARMUP_SECONDS = 10.0  # of editing, before the server's memory counts as settled
RSS_GROWTH_LIMIT_MIB = 48.0  # the server's RSS after the warm-up may not grow by more
RSS_EVERY_S = 0.5
MIN_MOVES = 3  # slider moves each session must at least have had rendered
NUM_SEMANTICS = 4
SLIDER = SliderRange(-3.0, 3.0, 0.5)
MAPPING_STORED_GAIN = 100.0  # genforce StyleGAN files store mapping weights 1 / lr_mul larger
CORRUPT = "corrupt"
CORRUPT_LABEL = "Corrupt file"
CORRUPT_EDIT_SECONDS = 8.0
CORRUPT_FILE = "corrupt.pt"
CORRUPT_BYTES = b"PK\x03\x04 half a zip: the upload broke off here"
FIRST_SEED = 1000


@dataclass(frozen=True)
class StudioModel:
    name: str  # in config.yaml
    label: str  # its display name, as the model picker shows it
    source: str  # "default" or a path under checkpoints/


def write_studio(root: Path) -> list[StudioModel]:
    """config.yaml with the default model, four tiny checkpoints of other architectures and a corrupt
    file, each written the way its public implementation saves it; returns the working models."""
    folder = root / "checkpoints"
    folder.mkdir(parents=True)
    stylegan = genforce_stylegan_state(8, 8, 8, 2, [8, 4])
    for key in stylegan:
        if key.startswith("mapping.") and key.endswith(".weight"):
            stylegan[key] = stylegan[key] * MAPPING_STORED_GAIN
    save_genforce(root, stylegan).rename(folder / "stylegan.pth")
    write_network_pickle(folder / "stylegan2.pkl", _nvidia_state(_tiny_generator(1)), NVIDIA_TINY_KWARGS)
    torch.save(make_stylegan3_state("r", 16, 4, 8), folder / "stylegan3-r.pt")
    write_checkpoint(folder / "biggan", TINY_CONFIG, reference_state_dict(TINY_CONFIG))
    (folder / CORRUPT_FILE).write_bytes(CORRUPT_BYTES)
    models = [
        StudioModel("default", "Faces (DCGAN)", "default"),
        StudioModel("stylegan", "Tiny StyleGAN", "checkpoints/stylegan.pth"),
        StudioModel("stylegan2", "Tiny StyleGAN2", "checkpoints/stylegan2.pkl"),
        StudioModel("stylegan3", "Tiny StyleGAN3-R", "checkpoints/stylegan3-r.pt"),
        StudioModel("biggan", "Tiny BigGAN", "checkpoints/biggan"),
    ]
    entries = [*models, StudioModel(CORRUPT, CORRUPT_LABEL, f"checkpoints/{CORRUPT_FILE}")]
    lines = ["version: 1", "models:"]
    for model in entries:
        lines += [
            f"  - name: {model.name}",
            f"    source: {model.source}",
            f'    display_name: "{model.label}"',
            f"    num_semantics: {NUM_SEMANTICS}",
            f"    slider: {{min: {SLIDER.min}, max: {SLIDER.max}, step: {SLIDER.step}}}",
        ]
    (root / "config.yaml").write_text("\n".join(lines) + "\n")
    return models


def plans(models: list[StudioModel], count: int) -> list[SessionPlan]:
    """``count`` users spread over the models, each on a seed of their own."""
    return [SessionPlan(models[k % len(models)].label, FIRST_SEED + k) for k in range(count)]


def slider_values(slider: SliderRange) -> list[float]:
    """Every position a slider can stop at."""
    return distances(slider.min, slider.max, round((slider.max - slider.min) / slider.step) + 1)


# ---- what each session should show, rendered here with sefa_core ----------------------------------
def shown_pixels(src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def as_live_image(pixels: np.ndarray, src: str) -> np.ndarray:
    """``pixels`` as the live view shows them: through the encoder its data URI names (PNG, lossless,
    for small images; JPEG for large ones) and back."""
    image_format = "PNG" if src.startswith("data:image/png") else LIVE_FORMAT
    return np.asarray(Image.open(io.BytesIO(encode_image(pixels, image_format))))


def expected_edit(config: AppConfig, name: str, generator: Generator, view: SessionView) -> np.ndarray:
    """The edited image for the model, seed and slider values a session shows, as the editor draws it."""
    entry = config.entry(name)
    truncation = Truncation()
    if generator.edit_space == "w+":
        truncation = Truncation(entry.trunc_psi, entry.trunc_layers or generator.num_layers)
    elif generator.num_classes:
        truncation = Truncation(entry.trunc_psi)
    class_index = 0 if generator.num_classes else None
    spec = first_layer_spec(config, name, generator)
    settings = Settings(spec, len(view.alphas), truncation, class_index)
    seed = int(view.original.rsplit(" ", 1)[1])  # "Original · seed 1234"
    state = session.new_state(name, generator, CodeSource("seed", seed), CodeRows(), settings)
    return session.render_edit(generator, factorize(generator, spec), state.with_alphas(view.alphas))


def first_layer_spec(config: AppConfig, name: str, generator: Generator) -> str:
    """The layers the editor opens a model on."""
    return next(iter(session.layer_choices(config.entry(name), generator).values()))


def mix_ups(
    root: Path, models: list[StudioModel], session_plans: list[SessionPlan], views: list[SessionView]
) -> list[str]:
    """Where a session shows anything but its own model, sliders and edit; empty when none does.

    Each session's edited image must be, pixel for pixel, what sefa_core renders for its model, seed
    and slider values (through the same encoder), and no other session's.
    """
    config = load_config(root / "config.yaml")
    by_label = {model.label: model.name for model in models}
    generators = {model.name: load_generator(model.name, "cpu", config) for model in models}
    problems, expected = [], []
    for index, (plan, view) in enumerate(zip(session_plans, views, strict=True)):
        name = by_label[plan.model]
        generator = generators[name]
        semantics = factorize(generator, first_layer_spec(config, name, generator))
        labels = tuple(session.slider_labels(semantics, (), NUM_SEMANTICS))
        if view.title != plan.model or view.labels != labels:
            problems.append(f"session {index} on {plan.model} shows {view.title} with sliders {view.labels}")
        expected.append(as_live_image(expected_edit(config, name, generator, view), view.edited_src))
    for index, view in enumerate(views):
        shown = shown_pixels(view.edited_src)
        matches = [k for k, image in enumerate(expected) if np.array_equal(image, shown)]
        if matches != [index]:
            problems.append(f"session {index} shows the edit of session(s) {matches}")
    return problems


# ---- the run ---------------------------------------------------------------------------------------
@dataclass
class Run:
    open_seconds: float  # opening every session
    views: list[SessionView]
    logs: list[SessionLog]
    rss: list[tuple[float, float]]  # (seconds since editing began, MiB)
    in_memory: list[dict[str, str]]


async def sample_rss(pid: int, every_s: float, into: list[tuple[float, float]], stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        into.append((time.monotonic() - started, rss_mib(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def many_users(
    url: str, pid: int, session_plans: list[SessionPlan], seconds: float, rss_every_s: float = RSS_EVERY_S
) -> Run:
    """Open every session, let them all edit at once for ``seconds``, then read what each shows."""
    rss: list[tuple[float, float]] = []
    opening = asyncio.Semaphore(OPEN_AT_ONCE)

    async def open_one(browser, plan: SessionPlan) -> tuple[object, SessionLog]:
        async with opening:
            return await open_session(browser, url, plan)

    async with async_chromium() as browser:
        started = time.monotonic()
        opened = await asyncio.gather(*(open_one(browser, plan) for plan in session_plans))
        open_seconds = time.monotonic() - started
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, rss_every_s, rss, stop))
        until = time.monotonic() + seconds
        values = slider_values(SLIDER)
        await asyncio.gather(
            *(edit_until(page, log, values, until, random.Random(log.plan.seed)) for page, log in opened)
        )
        views = await asyncio.gather(*(quiet_view(page, log) for page, log in opened))
        stop.set()  # the memory of the editing; the Models page below is a one-off visit
        await sampler
        in_memory = await models_in_memory(browser, url)
    return Run(open_seconds, list(views), [log for _, log in opened], rss, in_memory)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    if reason := chromium_missing():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("studio")
    models = write_studio(root)
    log = root / "streamlit.log"
    with running_app(config=root / "config.yaml", log=log) as (url, pid):
        yield root, models, url, pid, log


def test_many_users_at_once_each_see_only_their_own_edit(studio):
    root, models, url, pid, log = studio
    session_plans = plans(models, SESSIONS)
    log_start = log.stat().st_size
    run = asyncio.run(many_users(url, pid, session_plans, EDIT_SECONDS))
    server_log = log.read_bytes()[log_start:].decode(errors="replace")

    # Nobody saw an error, the server logged none, and every session kept being served.
    assert [view.errors for view in run.views] == [()] * SESSIONS
    assert logged_failures(server_log) == [] and "Traceback" not in server_log, server_log
    assert all(log.moves >= MIN_MOVES and log.randoms >= 1 for log in run.logs), [
        (log.moves, log.randoms) for log in run.logs
    ]

    # Each session shows its own model, its own sliders and exactly its own edit.
    assert mix_ups(root, models, session_plans, run.views) == []

    # Each model sits in memory once, however many sessions use it.
    config = load_config(root / "config.yaml")
    digests = {model.name: load_generator(model.name, "cpu", config).digest for model in models}
    loaded = sorted((row["model"], row["digest"], row["device"]) for row in run.in_memory)
    assert loaded == sorted((name, digest[:16], "cpu") for name, digest in digests.items())

    # The server's memory levels off once every model is loaded.
    settled = max(rss for t, rss in run.rss if t <= WARMUP_SECONDS)
    later = max(rss for t, rss in run.rss if t > WARMUP_SECONDS)
    assert later - settled < RSS_GROWTH_LIMIT_MIB, run.rss


@dataclass
class CorruptRun:
    error: str  # what the user who picked the corrupt model read
    recovered: SessionView  # what they see after picking a working model again
    editor: SessionView  # what the user who kept editing sees
    editor_log: SessionLog


async def corrupt_while_another_edits(url: str, working: SessionPlan, other: str) -> CorruptRun:
    """One user picks the corrupt model, then ``other``, while another keeps editing ``working``."""
    async with async_chromium() as browser:
        (editor, editor_log), (chooser, chooser_log) = await asyncio.gather(
            open_session(browser, url, working), open_session(browser, url, working)
        )
        until = time.monotonic() + CORRUPT_EDIT_SECONDS
        editing = asyncio.create_task(
            edit_until(editor, editor_log, slider_values(SLIDER), until, random.Random(0))
        )
        await pick_model(chooser, CORRUPT_LABEL)
        error = "\n".join(await chooser.locator(ERRORS_SHOWN).all_inner_texts())
        await pick_model(chooser, other)
        recovered = await quiet_view(chooser, chooser_log)
        await editing
        return CorruptRun(error, recovered, await quiet_view(editor, editor_log), editor_log)


def test_a_corrupt_model_is_one_line_for_its_user_while_others_edit_on(studio):
    root, models, url, _, log = studio
    log_start = log.stat().st_size
    run = asyncio.run(corrupt_while_another_edits(url, SessionPlan(models[1].label, 7), models[2].label))
    server_log = log.read_bytes()[log_start:].decode(errors="replace")

    assert run.error.startswith(f"{CORRUPT_LABEL}: ") and CORRUPT_FILE in run.error and "\n" not in run.error
    assert run.recovered.title == models[2].label and run.recovered.errors == ()
    assert run.editor.errors == () and run.editor_log.moves >= MIN_MOVES
    failures = logged_failures(server_log)
    assert failures, "the traceback of the failed load goes to the server log"
    assert all(CORRUPT_FILE in line for line in failures), failures
