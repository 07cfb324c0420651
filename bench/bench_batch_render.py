"""Benchmark 4: ``sefa render default -N 5 -K 5 --steps 11``, batched against one image at a time.

In-process (``sefa_core.cli.main``) the ways are timed in turns (batched, one image at a time, and
batched on one torch thread); as a subprocess (``python -m sefa_core``) the wall time includes
start-up, which is also timed alone, and ``wait4`` gives each run's peak memory. A cProfile of one
in-process batched run says where the time goes. Goal: <= 3 s for the command as typed.

    .venv/bin/python -m bench.bench_batch_render [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import KIB, REPO_ROOT, interleaved, load_average, machine, median
from sefa_core import cli
from sefa_core.render import DEFAULT_BATCH_SIZE

NUM_SAMPLES, NUM_SEMANTICS, STEPS = 5, 5, 11
IMAGES = NUM_SAMPLES * NUM_SEMANTICS * STEPS
GOAL_S = 3.0
DEFAULT_THREADS = torch.get_num_threads()
# name -> (extra arguments, torch threads); the first is the command as a user types it.
MODES = {
    f"batched (--batch-size {DEFAULT_BATCH_SIZE})": ([], DEFAULT_THREADS),
    "one at a time (--batch-size 1)": (["--batch-size", "1"], DEFAULT_THREADS),
    "batched, 1 thread": ([], 1),
}
# What the profile summary names: the stages of ``sefa render``.
STAGES = {
    "load_checkpoint": "load the model",
    "factorize": "factorize",
    "render_traversals": "render (synthesize + to_uint8)",
    "_synthesize": "  of which the generator",
    "sample_first_html": "HTML page, sample first",
    "semantic_first_html": "HTML page, semantic first",
    "image_grid": "PNG grids: lay out",
    "encode_image": "encode (PNG grids and HTML cells)",
    "atomic_write_bytes": "write PNG files",
}


def render_args(out: Path, extra: list[str]) -> list[str]:
    steps = ["--steps", str(STEPS)]
    counts = ["-N", str(NUM_SAMPLES), "-K", str(NUM_SEMANTICS)]
    return ["render", "default", *counts, *steps, "--out", str(out), "--device", "cpu", *extra]


def run_in_process(out: Path, extra: list[str], threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(render_args(out, extra))
    finally:
        torch.set_num_threads(DEFAULT_THREADS)
    assert code == 0, f"sefa render exited with {code}"


def run_subprocess(out: Path, extra: list[str], threads: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``python -m sefa_core render ...`` in a fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "sefa_core", *render_args(out, extra)],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
    assert process.returncode == 0, f"sefa render exited with {process.returncode}: {errors[-500:]}"
    return wall, usage.ru_maxrss / KIB


def startup_s() -> float:
    """Wall seconds of a fresh interpreter importing the CLI (torch included), doing nothing else."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sefa_core.cli"], cwd=REPO_ROOT, check=True)
    return time.perf_counter() - start


def profile(out: Path) -> None:
    """Cumulative time of each stage in one batched in-process run."""
    profiler = cProfile.Profile()
    profiler.runcall(run_in_process, out, [], DEFAULT_THREADS)
    stats = pstats.Stats(profiler)
    total = max(entry[3] for entry in stats.stats.values())  # the outermost call's cumulative time
    cumulative: dict[str, float] = {}
    for (_, _, function), (_, _, _, seconds, _) in stats.stats.items():
        if function in STAGES:
            cumulative[function] = cumulative.get(function, 0.0) + seconds
    print(f"where a batched run's {total:.2f} s go (cProfile, cumulative, stages overlap):")
    for function, label in STAGES.items():
        if function in cumulative:
            print(f"  {label:<36} {cumulative[function]:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each mode")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"sefa render default -N {NUM_SAMPLES} -K {NUM_SEMANTICS} --steps {STEPS}: {IMAGES} images, "
        f"{DEFAULT_THREADS} torch threads unless said"
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        calls = {name: (lambda mode=mode: run_in_process(out, *mode)) for name, mode in MODES.items()}
        times = interleaved(calls, args.repeats)
        medians = {name: median(values) / 1000 for name, values in times.items()}
        print(f"in-process, cli.main (medians of {args.repeats}, interleaved):")
        for name, seconds in medians.items():
            print(f"  {name:<32} {seconds:6.2f} s  {IMAGES / seconds:6.0f} images/s")
        batched, single, _ = medians.values()
        print(f"  one image at a time takes {single / batched:.2f}x the batched time")

        walls: dict[str, list[float]] = {name: [] for name in MODES}
        peaks: dict[str, list[float]] = {name: [] for name in MODES}
        startups = []
        for _ in range(args.repeats):
            startups.append(startup_s())
            for name, mode in MODES.items():
                wall, peak = run_subprocess(out, *mode)
                walls[name].append(wall)
                peaks[name].append(peak)
        print(f"subprocess, python -m sefa_core, start-up included (medians of {args.repeats}, interleaved):")
        for name in MODES:
            wall, peak = median(walls[name]), max(peaks[name])
            print(f"  {name:<32} {wall:6.2f} s  {IMAGES / wall:6.0f} images/s  peak RSS {peak:.0f} MiB")
        print(f"  start-up alone (import sefa_core.cli) {median(startups):.2f} s")
        typed = median(walls[next(iter(MODES))])  # the command as a user types it: default batch size
        verdict = "met" if typed <= GOAL_S else "MISSED"
        print(f"goal <= {GOAL_S:.0f} s, the command as typed, start-up included: {verdict} ({typed:.2f} s)")
        profile(out)
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
