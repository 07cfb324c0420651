"""Benchmark: photo inversion PSNR and time, on faces each model generated itself.

For each seed a face is synthesized, saved as a PNG (what a user would upload), read back with
``load_photo`` and inverted with ``invert_image`` at the given steps and restarts. Prints the PSNR
and the wall time of every face, then the median of each and the share of faces at or above the
goal (27 dB). ``--models default`` (the built-in DCGAN) and/or ``fixture``, a random-weight
reference StyleGAN2 from ../shared/fixtures (its PSNR is on its own, random, images).

    .venv/bin/python -m bench.bench_invert [--faces 8] [--steps 500] [--restarts 8] [--threads 1]
    .venv/bin/python -m bench.bench_invert --models fixture --faces 4 --steps 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.common import REPO_ROOT, load_average, machine
from sefa_core import load_generator
from sefa_core.formats import load_checkpoint
from sefa_core.invert import DEFAULT_RESTARTS, DEFAULT_STEPS, invert_image, load_photo
from sefa_core.models.base import Generator
from sefa_core.render import encode_image, to_uint8

GOAL_PSNR = 27.0  # dB, median over generated faces (issue 15)
GOAL_SECONDS = 60.0  # per face, with the defaults
FACE_SEED = 1000  # faces are seeds 1000, 1001, ...: not the starts' seed (0)
FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "rosinality_stylegan2_32" / "checkpoint.pt"
MODELS: dict[str, tuple[str, Callable[[], Generator]]] = {
    "default": ("default DCGAN", lambda: load_generator("default", device="cpu")),
    "fixture": ("fixture StyleGAN2", lambda: load_checkpoint(FIXTURE, device="cpu")),
}


def bench_model(label: str, generator: Generator, faces: int, steps: int, restarts: int, tmp: Path) -> None:
    scores, seconds = [], []
    for seed in range(FACE_SEED, FACE_SEED + faces):
        face = to_uint8(generator.synthesize(generator.sample(1, seed)))[0]  # (R, R, 3)
        path = tmp / f"face_{seed}.png"
        path.write_bytes(encode_image(face, "PNG"))
        started = time.perf_counter()
        inversion = invert_image(generator, load_photo(path), steps, restarts)
        seconds.append(time.perf_counter() - started)
        scores.append(inversion.psnr)
        print(
            f"  {label} seed {seed}: PSNR {inversion.psnr:6.2f} dB in {seconds[-1]:6.2f} s ({load_average()})"
        )
    reached = sum(score >= GOAL_PSNR for score in scores)
    typical = statistics.median(seconds)
    print(
        f"{label}: {generator.resolution} px, code {tuple(generator.sample(1, 0).shape)}, {steps} steps, "
        f"{restarts} restarts | median PSNR {statistics.median(scores):.2f} dB (min {min(scores):.2f}, "
        f"max {max(scores):.2f}), {reached}/{faces} >= {GOAL_PSNR:.0f} dB | median {typical:.1f} s "
        f"a face (max {max(seconds):.1f}; goal <= {GOAL_SECONDS:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=8, help="generated faces per model (default: 8)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS)
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=["default"], help="default DCGAN, fixture StyleGAN2"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 on a loaded machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            label, load = MODELS[name]
            bench_model(label, load(), args.faces, args.steps, args.restarts, Path(folder))
    print(f"done; {load_average()}")


if __name__ == "__main__":
    main()
