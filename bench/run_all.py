"""Run every benchmark in turn, each in a fresh process, and print what each one prints.

    .venv/bin/python -m bench.run_all [--no-browser] [--only NAME ...]
    .venv/bin/python bench/run_all.py          (what ``make bench`` runs; the same)

The browser ones (a real server driven by headless Chromium; ``serve`` also starts nginx) run last;
``--no-browser`` skips them.
Exits non-zero when any benchmark failed, after running the rest.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# name -> extra arguments; each runs as ``python -m bench.<module>``.
BENCHMARKS = {
    "factorize": ("bench_factorize", []),
    "server_loop": ("bench_server_loop", []),
    "batch_render": ("bench_batch_render", []),
    "scaling": ("bench_scaling", []),
    "memory": ("bench_memory", []),
    "render_speed": ("bench_render_speed", []),
    "tf_cache": ("bench_tf_cache", []),
    "invert": ("bench_invert", []),
    "sweep": ("bench_sweep", []),
}
BROWSER_BENCHMARKS = {
    "browser_latency": ("browser_latency", []),
    "memory_browser": ("bench_memory", ["--browser"]),
    "concurrency": ("bench_concurrency", []),
    "serve": ("bench_serve", []),
}


def main() -> int:
    everything = {**BENCHMARKS, **BROWSER_BENCHMARKS}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="skip the benchmarks that drive Chromium")
    parser.add_argument("--only", nargs="+", choices=list(everything), metavar="NAME", help="run only these")
    args = parser.parse_args()
    chosen = {name: everything[name] for name in args.only} if args.only else dict(everything)
    if args.no_browser:
        chosen = {name: spec for name, spec in chosen.items() if name not in BROWSER_BENCHMARKS}
    results = []
    for name, (module, extra) in chosen.items():
        command = [sys.executable, "-m", f"bench.{module}", *extra]
        print(f"\n==== {name}: python -m bench.{module} {' '.join(extra)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, cwd=REPO_ROOT).returncode
        results.append((name, code, time.perf_counter() - started))
    print("\n==== summary")
    for name, code, seconds in results:
        print(f"  {name:<16} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
