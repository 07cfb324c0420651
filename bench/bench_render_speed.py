"""Render speed against the CPU's limit: ms/img by batch size, GFLOP/s, share of the matmul rate.

Issue 18's goals, through the public API (``Generator.synthesize``) with random weights:
- at batch 8 (DCGAN: 64) an image costs <= 0.9x what it costs at batch 1;
- the best rate is >= 60 % of a 2048^2 float32 matmul's rate, measured in the same run.
Models: StyleGAN2 with config-f widths at 256 px (and 1024 px with ``--1024``), built by
``bench.bench_scaling.build``; the default DCGAN. StyleGAN2 runs both modulated-conv forms in
turns: ``batched`` (what the CPU runs) and ``fused`` (grouped conv, per-sample weights).

FLOPs: torch.profiler's count (``with_flops=True``, as the issue measured) leaves out transposed
convs, so the full count (``torch.utils.flop_counter``, which has them) is printed beside it; rates
use the full count. The matmul rate is MKL's sgemm (``a @ b``); oneDNN, which runs the convs, is
also timed on the same 2048^3 GEMM written as a 1x1 conv. One torch thread unless ``--threads``.
The machine is shared: each figure is the best and the median of ``--repeats``, taken in turns,
as wall time and as this process's CPU time; the goals are judged on CPU time.

Like the ``sefa`` command and Ray's workers, the bench keeps freed memory for the next batch
(``sefa_core.device.keep_freed_memory``); ``SEFA_KEEP_FREED_MEMORY=0`` measures glibc's default,
which unmaps every large activation when it is freed and faults it in again on the next pass.

    .venv/bin/python -m bench.bench_render_speed [--1024] [--repeats 3] [--threads 1] [--variants]
    SEFA_KEEP_FREED_MEMORY=0 .venv/bin/python -m bench.bench_render_speed   # glibc's default
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from bench.bench_scaling import build, gflops_per_image
from bench.common import interleaved, load_average, machine, median
from sefa_core.default_model import default_checkpoint_path
from sefa_core.device import keep_freed_memory
from sefa_core.formats import load_checkpoint
from sefa_core.models import stylegan2
from sefa_core.models.base import Generator

GEMM_SIZE = 2048
GEMM_REPEATS = 5
STYLEGAN2_BATCHES = (1, 4, 8)
STYLEGAN2_1024_BATCHES = (1, 4, 8)
DCGAN_BATCHES = (1, 16, 64)
BATCH_GOAL = 0.9  # at the largest batch an image costs at most this share of a batch-1 image
RATE_GOAL = 0.6  # the best rate reaches at least this share of the matmul rate
VARIANT_BATCH = 4
SEED = 0
FORMS = {"batched": False, "fused": True}  # name -> fused_modulation's answer


@dataclass(frozen=True)
class Timings:
    """Wall and CPU milliseconds of repeated calls (per image where a batch ran)."""

    wall: list[float]
    cpu: list[float]  # this process's CPU time: time spent waiting for a core is not in it

    def per(self, count: int) -> Timings:
        return Timings([t / count for t in self.wall], [t / count for t in self.cpu])


def timed(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timings]:
    """``bench.common.interleaved`` (in turns, rotating order), with each call's CPU time beside it.

    On this shared machine the wall time of the same call swings 2x with the other tenants' load;
    with one torch thread the CPU time (page faults included) swings far less.
    """
    cpu: dict[str, list[float]] = {name: [] for name in functions}

    def with_cpu_time(name: str, function: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            start = time.process_time()
            result = function()
            cpu[name].append((time.process_time() - start) * 1000)
            return result

        return call

    wall = interleaved({name: with_cpu_time(name, f) for name, f in functions.items()}, repeats)
    return {name: Timings(wall[name], cpu[name][-repeats:]) for name in functions}  # warm-up dropped


def gemm_rates() -> dict[str, float]:
    """GFLOP/s (on CPU time) of a 2048^3 float32 GEMM: MKL's sgemm, and oneDNN's as a 1x1 conv."""
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    image = torch.randn(1, GEMM_SIZE, 32, GEMM_SIZE // 32).contiguous(memory_format=torch.channels_last)
    kernel = b[:, :, None, None]  # (out, in, 1, 1): 2048 pixels x 2048 in -> 2048 out
    flops = 2 * GEMM_SIZE**3
    calls = {"matmul (MKL sgemm)": lambda: a @ b, "1x1 conv (oneDNN)": lambda: F.conv2d(image, kernel)}
    with torch.inference_mode():
        times = timed(calls, GEMM_REPEATS)
    return {name: flops / min(t.cpu) / 1e6 for name, t in times.items()}


def profiler_gflops(generator: Generator, codes: torch.Tensor) -> float:
    """GFLOP of one image as torch.profiler counts them (no transposed convs)."""
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        generator.synthesize(codes[:1])
    return sum(event.flops for event in prof.events() if event.flops) / 1e9


def time_batches(
    calls: dict[str, Callable[[int], object]], batches: tuple[int, ...], repeats: int
) -> dict[tuple[str, int], Timings]:
    """ms per image of every (way, batch), all taken in turns so they share the machine's load."""
    jobs = {
        (name, batch): (lambda c=call, b=batch: c(b)) for name, call in calls.items() for batch in batches
    }
    times = timed({f"{name}@{batch}": job for (name, batch), job in jobs.items()}, repeats)
    return {(name, batch): times[f"{name}@{batch}"].per(batch) for name, batch in jobs}


def report(
    label: str,
    gflops: float,
    counted: float,
    times: dict[tuple[str, int], Timings],
    gemm: dict[str, float],
) -> None:
    """Per way and batch: best and median ms/img (wall, CPU) and GFLOP/s; then the two goals per way,
    judged on the best CPU times (the wall times' verdicts beside them)."""
    print(f"{label}: {gflops:.2f} GFLOP an image ({counted:.2f} as the profiler counts, no transposed convs)")
    matmul = next(iter(gemm.values()))
    for (name, batch), t in times.items():
        best = min(t.cpu)
        rate, counted_rate = gflops / best * 1000, counted / best * 1000
        print(
            f"  {name:<10} batch {batch:>2}: wall best {min(t.wall):7.1f} median {median(t.wall):7.1f} | "
            f"CPU best {best:7.1f} median {median(t.cpu):7.1f} ms/img | {rate:6.1f} GFLOP/s "
            f"(profiler's count {counted_rate:6.1f}) = {rate / matmul:4.0%} of matmul"
        )
    for name in dict.fromkeys(way for way, _ in times):
        batches = sorted(batch for way, batch in times if way == name)
        first, last = times[(name, batches[0])], times[(name, batches[-1])]
        ratio, wall_ratio = min(last.cpu) / min(first.cpu), min(last.wall) / min(first.wall)
        best_rate = gflops / min(min(times[(name, b)].cpu) for b in batches) * 1000
        verdicts = [
            f"batch {batches[-1]} / batch 1 = {ratio:.2f} (wall {wall_ratio:.2f}; goal <= {BATCH_GOAL})"
            f" {'met' if ratio <= BATCH_GOAL else 'MISSED'}",
            f"best rate {best_rate / matmul:.0%} of matmul (goal >= {RATE_GOAL:.0%})"
            f" {'met' if best_rate >= RATE_GOAL * matmul else 'MISSED'}",
        ]
        print(f"  {name}: " + "; ".join(verdicts))


def stylegan2_speed(resolution: int, batches: tuple[int, ...], repeats: int, gemm: dict[str, float]) -> None:
    generator = build(resolution, "cpu")
    codes = generator.sample(max(batches), seed=SEED)  # (B, num_ws, w_dim)

    def form(fused: bool) -> Callable[[int], object]:
        def call(batch: int) -> object:
            with mock.patch.object(stylegan2, "fused_modulation", lambda x: fused):
                return generator.synthesize(codes[:batch])

        return call

    counted = profiler_gflops(generator, codes)
    times = time_batches({name: form(fused) for name, fused in FORMS.items()}, batches, repeats)
    report(f"StyleGAN2 {resolution} px", gflops_per_image(generator, codes), counted, times, gemm)


def dcgan_speed(repeats: int, gemm: dict[str, float]) -> None:
    generator = load_checkpoint(default_checkpoint_path(), device="cpu")
    codes = generator.sample(max(DCGAN_BATCHES), seed=SEED)  # (B, nz)
    counted = profiler_gflops(generator, codes)
    times = time_batches({"as loaded": lambda b: generator.synthesize(codes[:b])}, DCGAN_BATCHES, repeats)
    report(
        f"default DCGAN {generator.resolution} px", gflops_per_image(generator, codes), counted, times, gemm
    )


def variants(repeats: int) -> None:
    """Candidates measured once, at 256 px: bf16 autocast (speed, and how far the pixels move) and
    torch.compile (its start-up, then its speed)."""
    generator = build(256, "cpu")
    codes = generator.sample(VARIANT_BATCH, seed=SEED)
    reference = generator.synthesize(codes)

    def bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return generator.synthesize(codes).float()

    moved = (bf16() - reference).abs().max().item()
    start = time.perf_counter()
    compiled = torch.compile(generator.synthesis)
    with torch.inference_mode():
        compiled(codes)
    startup = time.perf_counter() - start

    def run_compiled() -> torch.Tensor:
        with torch.inference_mode():
            return compiled(codes)

    calls = {
        "float32": lambda: generator.synthesize(codes),
        "bf16 autocast": bf16,
        "torch.compile": run_compiled,
    }
    times = timed(calls, repeats)
    print(f"variants, StyleGAN2 256 px, batch {VARIANT_BATCH}:")
    for name, t in times.items():
        per_image = t.per(VARIANT_BATCH)
        cpu, wall = min(per_image.cpu), min(per_image.wall)
        print(f"  {name:<14} CPU best {cpu:8.1f} median {median(per_image.cpu):8.1f} ms/img, wall {wall:.1f}")
    print(f"  bf16 autocast moves pixels by up to {moved:.3g} (images in [-1, 1]; the fixtures allow 1e-3)")
    print(f"  torch.compile start-up (compile + first batch): {startup:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of every (way, batch)")
    parser.add_argument("--threads", type=int, default=1, help=f"torch threads (all cores: {os.cpu_count()})")
    parser.add_argument("--1024", dest="with_1024", action="store_true", help="also 1024 px, batch 1 to 8")
    parser.add_argument("--variants", action="store_true", help="also bf16 autocast and torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"freed memory kept for the next batch (as `sefa` does): {keep_freed_memory()}")
    for variable in ("THP_MEM_ALLOC_ENABLE", "GLIBC_TUNABLES"):  # how freed memory is reused (BENCHMARKS.md)
        print(f"{variable}={os.environ.get(variable, 'unset')}")
    gemm = gemm_rates()
    print("2048^3 float32 GEMM: " + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in gemm.items()))
    stylegan2_speed(256, STYLEGAN2_BATCHES, args.repeats, gemm)
    if args.with_1024:
        stylegan2_speed(1024, STYLEGAN2_1024_BATCHES, args.repeats, gemm)
    dcgan_speed(args.repeats, gemm)
    if args.variants:
        variants(args.repeats)
    print(
        "2048^3 GEMM again: " + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in gemm_rates().items())
    )
    print(f"after the run: {load_average()}")


if __name__ == "__main__":
    main()
