"""Benchmark: ``sefa sweep`` on the default model in this process and on Ray with 1 and 2 workers.

For each engine: the wall time as the command sees it (Ray's start, the workers' model loads and
the shards), the start-up (until the first shard is written) and the steady rate (images/s from
the first shard written to the last). Then the scaling ratio (2 workers / 1) and the overhead Ray
adds per task: one-image shards on 1 worker against the same shards rendered and written here by
``ShardWorker.render`` (the actor's own work) on one thread.

    .venv/bin/python -m bench.bench_sweep [--seeds 24] [--tiny-tasks 60]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import load_average, machine, median, time_ms
from sefa_core.registry import load_generator
from sefa_core.sweep import (
    LoadedModel,
    LocalEngine,
    SeedRange,
    ShardWorker,
    SweepSettings,
    prepare_model,
    ray_engine,
    run_sweep,
)

NUM_SEMANTICS = 10  # what config.yaml gives the default model
STEPS = 11  # the command's default
SHARD_SIZE = 4  # seeds per shard: 440 images
START, END = -3.0, 3.0


@dataclass(frozen=True)
class Timing:
    label: str
    images: int
    total_s: float  # from asking for the engine to the last shard written
    first_s: float  # until the first shard was written: start-up plus one shard
    steady_images_per_s: float  # once every worker has written a shard, to the last shard
    gaps_ms: tuple[float, ...]  # between one shard written and the next, in that steady part

    def line(self) -> str:
        return (
            f"{self.label:<22} {self.images:>6} images  total {self.total_s:6.2f} s "
            f"({self.images / self.total_s:7.1f} img/s)  first shard {self.first_s:5.2f} s  "
            f"steady {self.steady_images_per_s:7.1f} img/s"
        )


def timed(
    label: str,
    settings: SweepSettings,
    engine_for: Callable[[Path], contextlib.AbstractContextManager],
    workers: int = 1,
) -> Timing:
    """One sweep into a fresh folder, with a timestamp at every shard written.

    The steady rate starts once each of the ``workers`` has written its first shard (they finish
    their first shards together, which would flatter a rate taken from the first one).
    """
    marks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        started = time.perf_counter()
        with engine_for(Path(folder)) as engine:
            report = run_sweep(
                settings, folder, engine, progress=lambda done, _: marks.append((time.perf_counter(), done))
            )
        total = time.perf_counter() - started
    assert len(marks) > workers + 1, "too few shards for a steady rate; give more --seeds"
    (warm_at, warm_done), (last_at, last_done) = marks[workers], marks[-1]  # marks[0] is (start, 0)
    steady = (last_done - warm_done) / (last_at - warm_at)
    gaps = tuple((b[0] - a[0]) * 1000 for a, b in itertools.pairwise(marks[workers:]))
    return Timing(label, report.images, total, marks[1][0] - started, steady, gaps)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=32, help="seeds in the main sweep (110 images each)")
    parser.add_argument("--tiny-tasks", type=int, default=60, help="one-image shards for the overhead")
    args = parser.parse_args()

    generator = load_generator("default", "cpu")
    model = prepare_model(generator, "default", "all", NUM_SEMANTICS)
    settings = SweepSettings((model.spec,), SeedRange(0, args.seeds - 1), START, END, STEPS, SHARD_SIZE)
    tiny_model = prepare_model(generator, "default", "all", 1)
    tiny = SweepSettings((tiny_model.spec,), SeedRange(0, args.tiny_tasks - 1), 0.0, 0.0, 1, shard_size=1)

    def local(
        chosen: SweepSettings, loaded: LoadedModel
    ) -> Callable[[Path], contextlib.AbstractContextManager]:
        return lambda out: contextlib.nullcontext(
            LocalEngine(ShardWorker(chosen, out, loaded={"default": loaded}))
        )

    def on_ray(chosen: SweepSettings, workers: int) -> Callable[[Path], Iterator]:
        return lambda out: ray_engine(chosen, out, workers=workers, device="cpu")

    print(f"machine: {machine()}")
    print(
        f"sweep: default DCGAN 64 px, {args.seeds} seeds x {NUM_SEMANTICS} semantics x {STEPS} steps, "
        f"{SHARD_SIZE} seeds a shard; this process on {torch.get_num_threads()} torch threads, "
        "each Ray worker on 1"
    )
    timings = [timed("--local", settings, local(settings, model))]
    with torch_threads(1):  # as each Ray worker
        timings.append(timed("--local, 1 thread", settings, local(settings, model)))
    timings.append(timed("ray, 1 worker", settings, on_ray(settings, 1)))
    timings.append(timed("ray, 2 workers", settings, on_ray(settings, 2), workers=2))
    for timing in timings:
        print(timing.line())
    one, two = timings[2], timings[3]
    print(
        f"scaling 2 workers / 1: steady {two.steady_images_per_s / one.steady_images_per_s:.2f}x, "
        f"total {one.total_s / two.total_s:.2f}x"
    )
    print(f"after: {load_average()}")

    # on one thread, as a Ray worker: the difference is then Ray's alone
    with torch_threads(1), tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        worker = ShardWorker(tiny, folder, loaded={"default": tiny_model})
        shards = iter(tiny.shards())  # after one warm-up shard, as the steady part on Ray
        # what a worker does for one task: render, write atomically, checksum
        render_ms = median(time_ms(lambda: worker.render(next(shards)), len(tiny.shards()) - 1))
    ray_one = timed("ray 1 worker, tiny", tiny, on_ray(tiny, 1))
    ray_ms = median(list(ray_one.gaps_ms))
    print(ray_one.line())
    print(
        f"overhead per task on Ray: {ray_ms - render_ms:.1f} ms (medians: {ray_ms:.1f} ms a one-image task "
        f"on Ray, {render_ms:.1f} ms to render and write it here on 1 thread; {len(tiny.shards())} tasks)"
    )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
