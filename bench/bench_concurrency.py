"""Benchmark: many users at once on one server, each on a model, a face and sliders of their own.

The longer variant of tests/test_concurrency.py: a temporary ``config.yaml`` (the default model and
four tiny random-weight checkpoints of other architectures), a real ``streamlit run`` server, and
one headless Chromium with a browser context per user, all editing at the same time (slider moves,
and Random one action in five). Prints the sessions held, what each was served, the errors seen
(0 expected), slider -> new image latency, whether each session showed exactly its own edit, the
models in memory and the server's RSS over time.

    .venv/bin/python -m bench.bench_concurrency [--sessions 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import load_average, machine, percentile, summary, use_test_helpers

RSS_EVERY_S = 1.0
RSS_PRINT_EVERY_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    use_test_helpers()
    from browser_support import chromium_missing, logged_failures, running_app
    from test_concurrency import many_users, mix_ups, plans, write_studio

    if reason := chromium_missing():
        print(f"cannot measure: {reason}")
        return 1
    print(machine())
    with tempfile.TemporaryDirectory(prefix="sefa-bench-") as folder:
        root = Path(folder)
        models = write_studio(root)
        session_plans = plans(models, args.sessions)
        server_log = root / "streamlit.log"
        with running_app(config=root / "config.yaml", log=server_log) as (url, pid):
            started = time.perf_counter()
            run = asyncio.run(many_users(url, pid, session_plans, args.seconds, RSS_EVERY_S))
            wall = time.perf_counter() - started
        failures = logged_failures(server_log.read_text(errors="replace"))
        mixed = mix_ups(root, models, session_plans, run.views)

    moves = [log.moves for log in run.logs]
    randoms = [log.randoms for log in run.logs]
    served = [m + r for m, r in zip(moves, randoms, strict=True)]
    latencies = [ms for log in run.logs for ms in log.latencies_ms]
    shown_errors = sum(len(view.errors) for view in run.views)
    print(
        f"{len(run.views)} sessions held at once on {len(models)} models, editing for {args.seconds:.0f} s "
        f"(opening them took {run.open_seconds:.0f} s; {wall:.0f} s in all)"
    )
    print(
        f"served per session: {min(served)} min / {percentile(served, 50):.0f} median / {max(served)} max "
        f"(slider moves {sum(moves)}, of which {sum(log.same_pixels for log in run.logs)} rendered to the "
        f"image already shown; Random {sum(randoms)}; "
        f"{sum(served) / args.seconds:.1f} updates/s in all)"
    )
    print(f"slider move -> rendered on screen: {summary(latencies)}, max {max(latencies):.0f} ms")
    print(f"errors: {shown_errors} shown in sessions, {len(failures)} in the server log")
    for line in failures[:5]:
        print(f"  {line}")
    print(f"sessions showing exactly their own edit: {len(run.views) - len(mixed)} of {len(run.views)}")
    for line in mixed[:5]:
        print(f"  {line}")
    digests = [(row["digest"], row["device"]) for row in run.in_memory]
    print(f"models in memory: {len(run.in_memory)} ({len(set(digests))} distinct)")
    print("server RSS (MiB) over the editing time:")
    next_print = 0.0
    for seconds, mib in run.rss:
        if seconds >= next_print:
            print(f"  {seconds:5.1f} s  {mib:6.0f}")
            next_print += RSS_PRINT_EVERY_S
    print(f"  peak {max(mib for _, mib in run.rss):.0f} MiB; {load_average()}")
    return 0 if shown_errors == len(failures) == len(mixed) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
