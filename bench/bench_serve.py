"""Benchmark: many browsers through `sefa serve` (replicas behind nginx), one replica killed halfway.

    .venv/bin/python -m bench.bench_serve [--sessions 20] [--seconds 60] [--kill-at 30] [--replicas 2]

Starts ``sefa serve`` on loopback with the default model, then:
1. slider -> new pixels, one session straight to a replica against one through nginx, in turns,
   on an otherwise idle server: what the balancer adds;
2. ``--sessions`` headless Chromium sessions (one browser context each) through nginx, moving
   sliders for ``--seconds``; at ``--kill-at`` replica 1 is killed (SIGKILL). ``sefa serve``
   restarts it; its sessions reconnect through nginx to a live replica.

Prints the errors (moves that timed out or failed, page errors, reloads), slider -> pixels p50/p95
before and after the kill, and how many sessions recovered: made a move after the kill, without
a reload. Every figure carries the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from bench.common import load_average, machine, summary, use_test_helpers

MOVE_TIMEOUT_MS = 10_000  # a move not rendered by then counts as an error (the tests allow 30 s)
RECOVER_TIMEOUT_MS = 45_000  # for the page to show its sliders again after a failed move
ALPHAS = (-4.0, -2.0, -1.0, 1.0, 2.0, 4.0)
COMPARE_MOVES = 30
OPEN_STAGGER_S = 1.5  # between opening two sessions, so 20 first page loads do not land at once
OPEN_TIMEOUT_MS = 180_000  # 20 first page loads on 2 busy cores take a while


@dataclass
class UserLog:
    """What one browser session did through the balancer."""

    replica: str = ""  # the sticky cookie nginx gave it first
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, ms)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (when, what)
    page_errors: list[str] = field(default_factory=list)
    reloads: int = 0


async def _replica_cookie(context) -> str:
    return next((c["value"] for c in await context.cookies() if c["name"] == "sefa_replica"), "")


async def _move(page, rng: random.Random) -> float:
    """One slider move, waited for until rendered; its latency in ms."""
    from browser_support import ALL_SLIDERS, SLIDER, _image_src, _move_rendered, _requests_sent

    count = await page.locator(ALL_SLIDERS).count()
    slider = page.locator(SLIDER.format(index=rng.randrange(count)))
    current = float(await slider.input_value())
    before, sent = await _image_src(page, "edited"), await _requests_sent(page)
    started = time.perf_counter()
    await slider.fill(str(rng.choice([a for a in ALPHAS if a != current])), timeout=MOVE_TIMEOUT_MS)
    await _move_rendered(page, before, sent)
    return (time.perf_counter() - started) * 1000


async def _open(browser, url: str):
    """A new user (a browser context) on ``url``, once the editor's sliders show."""
    from browser_support import LOAD_TIMEOUT_MS, SLIDER

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(OPEN_TIMEOUT_MS)
    try:
        await page.goto(url)
        await page.locator(SLIDER.format(index=0)).wait_for()
    except Exception as error:  # noqa: BLE001 - say what the page showed instead
        shown = " ".join((await page.inner_text("body")).split())[:100]
        raise RuntimeError(f"{type(error).__name__} showing '{shown}'") from error
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    return context, page


async def _open_later(browser, url: str, delay_s: float, log: UserLog):
    """The session's page once its editor shows, or None (logged) when it did not open in time."""
    await asyncio.sleep(delay_s)
    try:
        context, page = await _open(browser, url)
    except Exception as error:  # noqa: BLE001 - a session that never opened is an error to report
        log.errors.append((time.monotonic(), f"open: {error}"))
        return None
    page.on("pageerror", lambda error: log.page_errors.append(str(error)[:120]))
    log.replica = await _replica_cookie(context)
    return page


async def _moves(page, url: str, until: float, seed: int, log: UserLog) -> None:
    """Slider moves until ``until``; a failed move is logged, then the page recovers or is reloaded."""
    from browser_support import SLIDER

    rng = random.Random(seed)
    while time.monotonic() < until:
        try:
            log.latencies.append((time.monotonic(), await _move(page, rng)))
        except Exception as error:  # noqa: BLE001 - a failed move is what this benchmark counts
            log.errors.append((time.monotonic(), type(error).__name__))
            try:  # Streamlit reconnects by itself; wait for the sliders, else reload
                await page.locator(SLIDER.format(index=0)).wait_for(timeout=RECOVER_TIMEOUT_MS)
            except Exception:  # noqa: BLE001
                log.reloads += 1
                await page.goto(url)


async def compare(direct_url: str, balanced_url: str, moves: int) -> dict[str, list[float]]:
    """Slider -> pixels for one session on a replica and one through nginx, move by move in turns."""
    from browser_support import async_chromium

    async with async_chromium() as browser:
        pages = {
            "direct": (await _open(browser, direct_url))[1],
            "nginx": (await _open(browser, balanced_url))[1],
        }
        rng = random.Random(0)
        for page in pages.values():  # warm-up: first runs fill the caches
            for _ in range(3):
                await _move(page, rng)
        times: dict[str, list[float]] = {name: [] for name in pages}
        for i in range(moves * 2):
            name = ("direct", "nginx")[i % 2]
            times[name].append(await _move(pages[name], rng))
        return times


async def load(url: str, sessions: int, seconds: float, kill_at: float, kill) -> tuple[list[UserLog], float]:
    """``sessions`` users through nginx, all opened first; ``seconds`` of moves; ``kill()`` at ``kill_at``."""
    from browser_support import async_chromium

    logs = [UserLog() for _ in range(sessions)]
    async with async_chromium() as browser:
        pages = await asyncio.gather(
            *(_open_later(browser, url, i * OPEN_STAGGER_S, logs[i]) for i in range(sessions))
        )
        opened = sum(page is not None for page in pages)
        print(f"{opened} of {sessions} sessions open ({load_average()})", flush=True)
        until = time.monotonic() + seconds
        users = [
            asyncio.create_task(_moves(page, url, until, i, logs[i]))
            for i, page in enumerate(pages)
            if page is not None
        ]
        await asyncio.sleep(kill_at)
        killed_at = time.monotonic()
        kill()
        await asyncio.gather(*users)
    return logs, killed_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=float, default=30.0, help="seconds into the run")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--compare-moves", type=int, default=COMPARE_MOVES)
    args = parser.parse_args()
    use_test_helpers()
    import browser_support
    from browser_support import chromium_missing
    from test_serve import nginx_missing, running_serve

    if reason := chromium_missing() or nginx_missing():
        print(f"cannot measure: {reason}")
        return 1
    browser_support.FRAME_TIMEOUT_MS = MOVE_TIMEOUT_MS  # leave time to see a session recover
    print(machine())
    with running_serve(args.replicas) as served:
        direct_url = f"http://127.0.0.1:{served.replicas[2][0]}"
        times = asyncio.run(compare(direct_url, served.url, args.compare_moves))
        print(f"one session, idle server ({load_average()}):")
        for name, values in times.items():
            print(f"  slider -> pixels {name:>6}: {summary(values)} over {len(values)} moves")
        killed_pid = served.replicas[1][1]
        logs, killed_at = asyncio.run(
            load(
                served.url,
                args.sessions,
                args.seconds,
                args.kill_at,
                lambda: os.kill(killed_pid, signal.SIGKILL),
            )
        )
        print(f"after the load: {load_average()}")
        while not served.lines.empty():  # the "replica 1: ..." line of its restart, if printed
            served.next_line(0.1)
        restarted = served.replicas[1][1] != killed_pid
    before = [ms for log in logs for when, ms in log.latencies if when < killed_at]
    after = [ms for log in logs for when, ms in log.latencies if when >= killed_at]
    on_killed = [log for log in logs if log.replica == "r1"]
    recovered = [
        log for log in logs if any(when > killed_at for when, _ in log.latencies) and not log.reloads
    ]
    moves = sum(len(log.latencies) for log in logs)
    failed = sum(len(log.errors) for log in logs)
    print(
        f"{args.sessions} sessions through nginx on {args.replicas} replicas, {args.seconds:.0f} s of slider "
        f"moves, replica 1 killed at {args.kill_at:.0f} s ({len(on_killed)} sessions were on it); "
        f"restart seen: {restarted}"
    )
    print(
        f"  moves rendered: {moves}; errors: {failed} failed moves, "
        f"{sum(len(log.page_errors) for log in logs)} page errors, {sum(log.reloads for log in logs)} reloads"
    )
    if before:
        print(f"  slider -> pixels before the kill: {summary(before)} over {len(before)} moves")
    if after:
        print(f"  slider -> pixels after the kill:  {summary(after)} over {len(after)} moves")
    print(
        f"  sessions recovered (a move after the kill, no reload): {len(recovered)} of {args.sessions}; "
        f"of those on the killed replica: {sum(log in recovered for log in on_killed)} of {len(on_killed)}"
    )
    print(f"  sessions per replica at the start: {sorted(log.replica for log in logs)}")
    for i, log in enumerate(logs):
        if log.errors or log.page_errors:
            print(f"  session {i} ({log.replica}): {log.errors[:3]} {log.page_errors[:2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
