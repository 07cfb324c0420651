"""Benchmark 5: StyleGAN2 synthesis time against batch size and resolution (random weights).

The generator is ``sefa_core.models.stylegan2.StyleGAN2Generator`` with NVIDIA's config-f channel
widths, ``min(32768 / res, 512)`` feature maps at each resolution (512 up to 64 px, then 256, 128,
64, 32 at 128..1024 px) and an 8-layer 512-wide mapping network, at 64, 256 and 1024 px. Timed:
the synthesis network from W+ codes, which is what a slider move or a batch render runs. FLOPs per
image (``torch.utils.flop_counter``) show how the cost should grow, and ``torch.profiler`` splits
a CPU forward by operator.

On the CPU a full config-f image costs about a second, so the batch sweep (1..64) runs with every
width halved (a quarter of the FLOPs) to stay within a few minutes, with fewer batches at 1024 px;
full config-f is timed at batch 1 for each resolution beside it. The CPU runs on one torch thread
unless ``--threads`` says otherwise: on the shared 2-core machine, two threads made the same
forward swing 3x from one run to the next, which drowned the differences being measured.

With CUDA, the full sweep runs in full config-f fp32, then TF32, fp16 autocast and channels_last
at 1024 px, each kept only if no pixel moves by more than ``TOLERANCE_LEVELS`` from fp32's.
Goal: StyleGAN2-1024 <= 8 ms/img on a GPU.

    .venv/bin/python -m bench.bench_scaling [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bench.common import interleaved, load_average, machine, median
from sefa_core.models.stylegan2 import INIT_RESOLUTION, StyleGAN2Generator
from sefa_core.render import to_uint8

CHANNEL_BASE = 32768  # config f: feature maps = min(CHANNEL_BASE / resolution, CHANNEL_MAX)
CHANNEL_MAX = 512
Z_DIM = W_DIM = 512
MAPPING_LAYERS = 8
RESOLUTIONS = (64, 256, 1024)
ALL_BATCHES = (1, 2, 4, 8, 16, 32, 64)
FULL, HALF = 1, 2  # width divisors
# The CPU sweep (halved widths): batch sizes and repeats per resolution.
CPU_BATCHES = {64: ALL_BATCHES, 256: (1, 2, 4, 8, 16), 1024: (1, 2, 4)}
QUICK_BATCHES = {64: (1, 4, 16), 256: (1, 4), 1024: (1,)}
CPU_REPEATS = 3
GPU_REPEATS = 10
GPU_VARIANT_BATCH = 16
GOAL_MS_PER_IMAGE = 8.0
TOLERANCE_LEVELS = 2  # a faster GPU variant may move no pixel by more than this many uint8 levels
PROFILE_TOP_OPS = 6
SEED = 0


def config_f_channels(resolution: int, divisor: int = FULL) -> list[int]:
    """Feature maps at 4, 8, ..., ``resolution`` px, as NVIDIA's config f sets them, over ``divisor``."""
    sizes = [INIT_RESOLUTION * 2**k for k in range((resolution // INIT_RESOLUTION).bit_length())]
    return [min(CHANNEL_BASE // size, CHANNEL_MAX) // divisor for size in sizes]


def build(resolution: int, device: str, divisor: int = FULL) -> StyleGAN2Generator:
    torch.manual_seed(SEED)
    generator = StyleGAN2Generator(
        mapping_widths=[Z_DIM] + [W_DIM] * MAPPING_LAYERS, channels=config_f_channels(resolution, divisor)
    )
    assert generator.resolution == resolution
    return generator.requires_grad_(False).to(device).eval()  # no autograd: the FLOP counter tracks it


def gflops_per_image(generator: StyleGAN2Generator, codes: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        generator.synthesize(codes[:1])
    return counter.get_total_flops() / 1e9


def synchronized(function: Callable[[], object], device: str) -> Callable[[], object]:
    """``function``, waiting for the GPU to finish before the clock stops."""
    if device != "cuda":
        return function

    def call() -> object:
        result = function()
        torch.cuda.synchronize()
        return result

    return call


def runnable(batches: tuple[int, ...], call: Callable[[int], object], device: str) -> tuple[int, ...]:
    """The batch sizes that fit in memory: on a GPU each is tried once (which also warms it up)."""
    if device != "cuda":
        return batches
    kept = []
    for batch in batches:
        try:
            call(batch)
        except torch.cuda.OutOfMemoryError:
            print(f"    batch {batch}: out of GPU memory, skipped")
            torch.cuda.empty_cache()
            break
        kept.append(batch)
    return tuple(kept)


def per_image_ms(
    resolution: int, device: str, batches: tuple[int, ...], repeats: int, divisor: int
) -> dict[int, float]:
    """Prints and returns the median ms per image of one resolution at each batch size."""
    generator = build(resolution, device, divisor)
    codes = generator.sample(max(batches), seed=SEED)  # (B, num_ws, w_dim)
    gflops = gflops_per_image(generator, codes)
    channels = "/".join(map(str, config_f_channels(resolution, divisor)))
    print(f"  {resolution} px (channels {channels}; {gflops:.1f} GFLOP an image; medians of {repeats}):")

    def synthesize(batch: int) -> torch.Tensor:
        return generator.synthesize(codes[:batch])

    calls = {
        batch: synchronized(lambda b=batch: synthesize(b), device)
        for batch in runnable(batches, synthesize, device)
    }
    calls[1]()  # warm-up at the smallest batch only: a large warm-up at 1024 px costs seconds on a CPU
    times = interleaved(calls, repeats, warmup=0)
    per_image = {batch: median(values) / batch for batch, values in times.items()}
    for batch, ms in per_image.items():
        print(
            f"    batch {batch:>2}: {ms * batch:9.1f} ms a batch, {ms:8.2f} ms/img, "
            f"{1000 / ms:8.2f} img/s, {gflops / ms * 1000:8.1f} GFLOP/s"
        )
    return per_image


def sweep(device: str, batches: dict[int, tuple[int, ...]], repeats: int, divisor: int) -> dict[int, float]:
    """Every resolution and batch size; returns the best ms/img per resolution."""
    best: dict[int, float] = {}
    baseline_ms = None
    for resolution in RESOLUTIONS:
        per_image = per_image_ms(resolution, device, batches[resolution], repeats, divisor)
        best[resolution] = min(per_image.values())
        baseline_ms = baseline_ms or per_image[1]
        growth = (
            f"; batch 1 costs {per_image[1] / baseline_ms:.1f}x the {RESOLUTIONS[0]} px image "
            f"for {(resolution / RESOLUTIONS[0]) ** 2:.0f}x the pixels"
            if resolution != RESOLUTIONS[0]
            else ""
        )
        gain = per_image[1] / best[resolution]
        print(f"    -> the best batch is {gain:.2f}x cheaper per image than batch 1{growth}")
    return best


def profile_ops(resolution: int, divisor: int, batches: tuple[int, ...]) -> None:
    """Where a CPU forward's time goes, by operator (torch.profiler, self CPU time)."""
    generator = build(resolution, "cpu", divisor)
    codes = generator.sample(max(batches), seed=SEED)
    generator.synthesize(codes[:1])  # warm-up
    for batch in batches:
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            generator.synthesize(codes[:batch])
        events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
        total = sum(event.self_cpu_time_total for event in events)
        shares = ", ".join(
            f"{event.key.removeprefix('aten::')} {100 * event.self_cpu_time_total / total:.0f}%"
            for event in events[:PROFILE_TOP_OPS]
        )
        print(f"  {resolution} px, widths / {divisor}, batch {batch} ({total / 1e6:.2f} s CPU): {shares}")


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 convolutions and matmuls on or off inside the block (cuDNN convs default to on)."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@contextlib.contextmanager
def variant(name: str, generator: StyleGAN2Generator) -> Iterator[None]:
    """Run the GPU generator as ``name`` (fp32, tf32, fp16 autocast, channels_last) inside the block."""
    with tf32(name == "tf32"):
        if name == "fp16 autocast":
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        elif name == "channels_last":
            generator.to(memory_format=torch.channels_last)
            try:
                yield
            finally:
                generator.to(memory_format=torch.contiguous_format)
        else:
            yield


def gpu_variants(batch: int) -> None:
    """StyleGAN2 1024 px on the GPU: fp32 against the faster variants, pixels checked against fp32."""
    generator = build(1024, "cuda")
    codes = generator.sample(batch, seed=SEED)
    with variant("fp32", generator):
        reference = to_uint8(generator.synthesize(codes)).astype("int16")
    print(f"  1024 px, batch {batch}, medians of {GPU_REPEATS}:")
    for name in ("fp32", "tf32", "fp16 autocast", "channels_last"):
        with variant(name, generator):
            images = to_uint8(generator.synthesize(codes)).astype("int16")
            timed = synchronized(lambda: generator.synthesize(codes), "cuda")
            times = interleaved({name: timed}, GPU_REPEATS)
        levels = int(abs(images - reference).max())
        ms = median(times[name]) / batch
        kept = "kept" if levels <= TOLERANCE_LEVELS else f"REJECTED (> {TOLERANCE_LEVELS} levels)"
        goal = "meets" if ms <= GOAL_MS_PER_IMAGE else "misses"
        print(
            f"    {name:<14} {ms:7.2f} ms/img ({goal} <= {GOAL_MS_PER_IMAGE:.0f}), "
            f"max pixel diff vs fp32 {levels} levels: {kept}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see above)")
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    print(f"machine: {machine()}")
    started = time.perf_counter()
    print(f"CPU, fp32, torch threads {threads}, full config-f widths, batch 1:")
    sweep("cpu", dict.fromkeys(RESOLUTIONS, (1,)), CPU_REPEATS, FULL)
    print(f"CPU, fp32, torch threads {threads}, config-f widths halved, batch sweep:")
    sweep("cpu", QUICK_BATCHES if args.quick else CPU_BATCHES, CPU_REPEATS, HALF)
    print("CPU, where the time goes (torch.profiler, self CPU time by operator):")
    profile_ops(max(RESOLUTIONS), HALF, (1, 2))
    if torch.cuda.is_available():
        print(f"CUDA ({torch.cuda.get_device_name()}), fp32 (TF32 off), full config-f widths:")
        torch.backends.cudnn.benchmark = True
        with tf32(False):
            best = sweep("cuda", dict.fromkeys(RESOLUTIONS, ALL_BATCHES), GPU_REPEATS, FULL)
        verdict = "met" if best[1024] <= GOAL_MS_PER_IMAGE else "MISSED"
        print(f"goal StyleGAN2-1024 <= {GOAL_MS_PER_IMAGE:.0f} ms/img in fp32: {verdict} ({best[1024]:.2f})")
        gpu_variants(GPU_VARIANT_BATCH)
    else:
        print("CUDA: no GPU found (torch.cuda.is_available() is False); GPU figures not measured")
    print(f"took {time.perf_counter() - started:.0f} s; after the run: {load_average()}")


if __name__ == "__main__":
    main()
