"""Benchmark 2: the interactive loop on the server, from a slider value to encoded image bytes.

Three parts, all on the default model (the 64 px DCGAN) and at the app's torch thread count:
1. the loop the live view runs per slider move: edit the code (``apply_edits``), synthesize,
   encode (``to_uint8`` + JPEG), p50 and p95 of each step over ``--edits`` moves;
2. PNG against JPEG encoding at 64 px and at 1024 px: why the live view sends JPEG;
3. Streamlit's own cost: ``AppTest`` reruns of ``app.py`` after a slider change, against the same
   rendering done outside Streamlit, interleaved.

    .venv/bin/python -m bench.bench_server_loop [--edits 300] [--reruns 60] [--no-app]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from PIL import Image

from bench.common import REPO_ROOT, interleaved, load_average, machine, median, summary
from sefa_core import factorize, load_generator
from sefa_core.config import SliderRange, load_config
from sefa_core.editing import apply_edits
from sefa_core.models.base import Generator
from sefa_core.registry import model_statuses
from sefa_core.render import encode_image, to_uint8
from sefa_core.session import nonzero_alphas

MODEL = "default"
WARMUP_EDITS = 10
LARGE_SIZE = 1024  # px: the largest models' output
ENCODE_REPEATS = 30
APP_TIMEOUT_S = 120.0
APPTEST_COMPILES_PER_RUN = 2  # its page manager and its script runner each compile app.py from scratch
SEED = 0


def slider_moves(count: int, num_sliders: int, slider: SliderRange) -> list[tuple[float, ...]]:
    """``count`` slider positions as a user makes them: one slider moves to a new value each time."""
    rng = np.random.default_rng(SEED)
    values = [0.0] * num_sliders
    grid = np.round(np.arange(slider.min, slider.max + slider.step / 2, slider.step), 6)
    moves = []
    for index in range(count):
        slider = index % num_sliders
        values[slider] = float(rng.choice(grid[grid != values[slider]]))
        moves.append(tuple(values))
    return moves


def interactive_loop(generator: Generator, edits: int) -> None:
    """Part 1: edit, synthesize, encode, per slider move."""
    entry = load_config().entry(MODEL)
    semantics = factorize(generator, "all")
    code = generator.sample(1, seed=SEED)  # (1, latent_dim)
    moves = slider_moves(WARMUP_EDITS + edits, entry.num_semantics, entry.slider)
    steps: dict[str, list[float]] = {"edit": [], "synthesize": [], "encode": [], "total": []}
    size = 0
    for number, alphas in enumerate(moves):
        start = time.perf_counter()
        edited = apply_edits(code, semantics, nonzero_alphas(alphas))
        edited_at = time.perf_counter()
        images = generator.synthesize(edited)
        synthesized_at = time.perf_counter()
        encoded = encode_image(to_uint8(images)[0], "JPEG")
        done = time.perf_counter()
        if number < WARMUP_EDITS:
            continue
        size += len(encoded)
        for name, (begin, end) in {
            "edit": (start, edited_at),
            "synthesize": (edited_at, synthesized_at),
            "encode": (synthesized_at, done),
            "total": (start, done),
        }.items():
            steps[name].append((end - begin) * 1000)
    print(
        f"slider value -> JPEG bytes, {edits} moves of {entry.num_semantics} sliders on '{MODEL}' "
        f"({generator.resolution} px, mean {size / edits / 1024:.1f} KiB a frame):"
    )
    for name, times in steps.items():
        print(f"  {name:<10} {summary(times)}, max {max(times):.2f} ms")
    print(f"  -> {1000 / median(steps['total']):.0f} frames/s of server work at the median")


def encode_formats(face: np.ndarray) -> None:
    """Part 2: PNG vs JPEG, the same pixels, interleaved."""
    rng = np.random.default_rng(SEED)
    images = {
        f"{face.shape[0]} px face": face,
        f"{LARGE_SIZE} px face (upscaled)": np.asarray(
            Image.fromarray(face).resize((LARGE_SIZE, LARGE_SIZE), Image.Resampling.BICUBIC)
        ),
        f"{LARGE_SIZE} px random noise": rng.integers(0, 256, (LARGE_SIZE, LARGE_SIZE, 3), dtype=np.uint8),
    }
    print("PNG vs JPEG (quality as the live view), medians of interleaved encodes:")
    for name, pixels in images.items():
        encoders = {kind: lambda p=pixels, k=kind: encode_image(p, k) for kind in ("PNG", "JPEG")}
        times = interleaved(encoders, ENCODE_REPEATS)
        png, jpeg = median(times["PNG"]), median(times["JPEG"])
        png_kib = len(encode_image(pixels, "PNG")) / 1024
        jpeg_kib = len(encode_image(pixels, "JPEG")) / 1024
        print(
            f"  {name:<28} PNG {png:7.2f} ms ({png_kib:7.1f} KiB) | JPEG {jpeg:6.2f} ms "
            f"({jpeg_kib:6.1f} KiB) | JPEG {png / jpeg:.1f}x faster, {png_kib / jpeg_kib:.1f}x smaller"
        )


def app_reruns(reruns: int) -> None:
    """Part 3: a full ``app.py`` rerun after a slider change, against the rendering it does."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import AppTest

    from sefa_core import session
    from studio_ui import live, resources, state

    # Touching session state between AppTest runs warns "missing ScriptRunContext" every time: noise here.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").disabled = True
    script = str(REPO_ROOT / "app.py")
    app = AppTest.from_file(script, default_timeout=APP_TIMEOUT_S)
    start = time.perf_counter()
    app.run()
    first = time.perf_counter() - start
    if app.exception:
        raise RuntimeError(app.exception[0].message)
    edit = app.session_state[state.EDIT]
    config = load_config()
    entry = config.entry(edit.model)
    status = next(s for s in model_statuses(config) if s.entry.name == edit.model)
    generator = resources.generator(status.path, torch.device("cpu"))
    semantics = factorize(generator, edit.layers)
    moves = iter(slider_moves(reruns + 1, len(edit.alphas), entry.slider))

    def changed() -> None:
        app.session_state[state.EDIT] = app.session_state[state.EDIT].with_alphas(next(moves))
        app.run()

    def outside() -> None:  # what one rerun renders: the edited and the original image, as data URIs
        shown = app.session_state[state.EDIT]
        live.image_src(session.render_edit(generator, semantics, shown))
        live.image_src(session.render_original(generator, shown))

    def compile_app() -> None:  # AppTest starts every run with an empty script cache; a server does not
        ScriptCache().get_bytecode(script)

    times = interleaved(
        {"changed": changed, "unchanged": app.run, "outside": outside, "compile": compile_app}, reruns
    )
    if app.exception:
        raise RuntimeError(app.exception[0].message)
    overhead = median(times["changed"]) - median(times["outside"])
    compiling = APPTEST_COMPILES_PER_RUN * median(times["compile"])
    print(f"Streamlit AppTest reruns of app.py ({reruns} each, interleaved; first run {first:.2f} s):")
    print(f"  rerun after a slider change      {summary(times['changed'])}")
    print(f"  rerun, nothing changed           {summary(times['unchanged'])}")
    print(f"  the same two renders, no script  {summary(times['outside'])}")
    print(f"  compiling app.py (magic + AST)   {summary(times['compile'])}")
    print(
        f"  -> Streamlit + script overhead per rerun {overhead:.1f} ms at the median, of which "
        f"{compiling:.1f} ms is AppTest compiling app.py {APPTEST_COMPILES_PER_RUN}x a run (a server "
        f"compiles it once): about {overhead - compiling:.1f} ms left. In the browser a slider move "
        f"reruns only the '{state.LIVE_FRAGMENT}' fragment (one render), so even that is an upper bound."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=300, help="slider moves timed (at least 200)")
    parser.add_argument("--reruns", type=int, default=60, help="AppTest reruns of each kind")
    parser.add_argument("--no-app", action="store_true", help="skip the Streamlit rerun part")
    args = parser.parse_args()
    from studio_ui.resources import use_torch_threads

    threads = use_torch_threads()  # as the app does: the live view renders at this thread count
    print(f"machine: {machine()}")
    print(f"torch threads as the app sets them: {threads}")
    generator = load_generator(MODEL, "cpu")
    interactive_loop(generator, args.edits)
    encode_formats(to_uint8(generator.synthesize(generator.sample(1, seed=SEED)))[0])
    if not args.no_app:
        logging.getLogger("sefa_studio").setLevel(logging.ERROR)
        try:
            app_reruns(args.reruns)
        except Exception as error:  # noqa: BLE001 - the app is still being written; say why and go on
            print(f"Streamlit reruns: not measured, the app did not run: {type(error).__name__}: {error}")
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
