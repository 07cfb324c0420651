"""Shared by the benchmark scripts: the machine line, interleaved timing with medians, memory figures."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
KIB = 1024


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: the machine is shared, so every figure carries them."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine() -> str:
    """CPU model and cores (or the GPU), torch version, threads and load: printed with every figure."""
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {load_average()}"
    )


def time_ms(function: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls in milliseconds, after ``warmup`` untimed calls."""
    return interleaved({"only": function}, repeats, warmup)["only"]


def interleaved(
    functions: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times (ms) of every function, taken in turns and in a rotating order.

    On a shared machine the load drifts; timing one side after the other would give the drift to
    one side. In turns (a b c, b c a, c a b, ...) every side sees the same machine.
    """
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            functions[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary(values: list[float], unit: str = "ms") -> str:
    """``p50 1.2 ms, p95 3.4 ms`` for a list of timings."""
    return f"p50 {percentile(values, 50):.2f} {unit}, p95 {percentile(values, 95):.2f} {unit}"


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB


def use_test_helpers() -> None:
    """Let a benchmark import the helpers that live beside the tests (checkpoint builders, the app runner)."""
    tests = str(REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
