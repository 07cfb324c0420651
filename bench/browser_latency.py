"""How fast the editor follows a slider, as a browser sees it.

    .venv/bin/python bench/browser_latency.py [--moves 60] [--drag-seconds 4]

Starts the app on a free local port, opens it in headless Chromium and prints:
- slider -> new pixels latency (p50, p95, max) over single moves: from the ``input`` event to the
  first animation frame after the new image has decoded, and where that time goes (the websocket
  messages the page receives split the server's part from the Streamlit frontend's);
- updates per second during a continuous mouse drag (new images shown before mouse-up);
- the CPU time a move costs the server process and the page's main thread (less sensitive to the
  load than the latencies: a busy machine delays a frame, it hardly makes it cost more CPU);
- the app's resident memory (RSS) after the run;
- the CPU and the load averages before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browser_support import (  # noqa: E402 - the shared helpers live beside the tests
    SLIDER,
    chromium,
    chromium_missing,
    open_editor,
    rss_mib,
    running_app,
)

from bench.common import load_average, machine  # noqa: E402 - after the path is set

# Before the app loads: note when the page sends anything to the server (a slider request), and
# when each message from the server arrives (a listener added before Streamlit's own handler); a drag
# frame fetched over HTTP (studio_ui/frames.py) counts as one send and one message, its answer.
NOTE_SENDS = """(() => {
  window.sefaSends = [];
  window.sefaReceived = [];
  window.sefaFetches = 0;
  const fetchOriginal = window.fetch;
  window.fetch = function (...args) {
    const frame = String(args[0]).includes("/sefa/frame/");
    if (frame) { window.sefaSends.push(performance.now()); window.sefaFetches += 1; }
    const answer = fetchOriginal.apply(this, args);
    if (frame) answer.then(() => window.sefaReceived.push(performance.now()), () => {});
    return answer;
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.sefaSends.push(performance.now());
    return send.call(this, data);
  };
  const Original = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new Original(...args);
    socket.addEventListener("message", () => window.sefaReceived.push(performance.now()));
    return socket;
  };
  window.WebSocket.prototype = Original.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""

# In the page: watch the edited image; note when its src changes and when the new one is painted
# (decoded, then the next animation frame). Components live in open shadow roots.
IN_SHADOW = """(key, selector) => [...document.querySelectorAll(`.st-key-${key} *`)]
  .find(e => e.shadowRoot).shadowRoot.querySelector(selector)"""
WATCH_IMAGE = f"""() => {{
  const target = ({IN_SHADOW})('edited', 'img');
  window.sefaFrames = [];
  new MutationObserver(() => {{
    const src = target.getAttribute('src');
    const changed = performance.now();
    target.decode().catch(() => {{}}).then(() => requestAnimationFrame(() => {{
      window.sefaFrames.push({{src, changed, t: performance.now()}});
      window.sefaFrameShown?.();
    }}));
  }}).observe(target, {{attributes: true, attributeFilter: ['src']}});
}}"""

# In the page: move slider 0 to each value in turn, waiting for each new picture.
SINGLE_MOVES = f"""async ([selector, values]) => {{
  const input = ({IN_SHADOW})('sliders', selector);
  const moves = [];
  for (const value of values) {{
    const before = window.sefaFrames.length;
    await new Promise(r => setTimeout(r, 30));
    const t0 = performance.now();
    input.value = String(value);
    input.dispatchEvent(new Event('input', {{bubbles: true}}));
    // Woken by the frame itself, not by polling: a poll would take the CPU the app needs.
    while (window.sefaFrames.length === before) await new Promise(r => (window.sefaFrameShown = r));
    const frame = window.sefaFrames[before];
    const sent = window.sefaSends.find(t => t >= t0) ?? t0;
    const replies = window.sefaReceived.filter(t => t >= sent && t <= frame.changed);
    const first = replies[0] ?? sent, last = replies[replies.length - 1] ?? sent;
    moves.push({{
      total: frame.t - t0, toSend: sent - t0, toReply: first - sent, replying: last - first,
      toSrc: frame.changed - last, toPaint: frame.t - frame.changed, messages: replies.length,
    }});
  }}
  return moves;
}}"""
PARTS = {
    "toSend": "input -> request sent (waits for the next animation frame)",
    "toReply": "request sent -> first message back (HTTP frame: the render; websocket: fragment start)",
    "replying": "first -> last message before the new src (websocket: the fragment's run)",
    "toSrc": "last message -> new src set (HTTP: blob, event; websocket: deltas, React, component)",
    "toPaint": "new src set -> painted (JPEG decode + next frame)",
}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds the app's process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def page_busy_s(cdp) -> float:
    """Seconds the page's main thread has spent running tasks (script, style, layout, paint)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(metric["value"] for metric in metrics if metric["name"] == "TaskDuration")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def single_moves(page, moves: int) -> list[dict[str, float]]:
    values = [round((-1) ** i * (1 + (i % 40) * 0.2), 1) for i in range(moves)]  # always a new value
    return page.evaluate(SINGLE_MOVES, [SLIDER.format(index=0), values])


@dataclass(frozen=True)
class DragRun:
    mouse_moves: int
    frames: int  # new images shown before mouse-up
    fetched: int  # of the slider requests, those sent as HTTP frames
    seconds: float


def continuous_drag(page, seconds: float) -> DragRun:
    """Drag slider 1 back and forth with the mouse; new images shown before mouse-up."""
    box = page.locator(SLIDER.format(index=1)).bounding_box()
    y = box["y"] + box["height"] / 2
    left, right = box["x"] + 6, box["x"] + box["width"] - 6
    page.mouse.move((left + right) / 2, y)
    page.mouse.down()
    before = page.evaluate("window.sefaFrames.length")
    fetched = page.evaluate("window.sefaFetches")
    started = time.perf_counter()
    step = 0
    while time.perf_counter() - started < seconds:
        phase = (step % 120) / 120  # one sweep there and back every 120 moves
        x = left + (right - left) * (2 * phase if phase < 0.5 else 2 - 2 * phase)
        page.mouse.move(x, y)
        page.wait_for_timeout(8)
        step += 1
    elapsed = time.perf_counter() - started
    frames = page.evaluate(f"window.sefaFrames.length - {before}")  # each one a new src
    fetched = page.evaluate(f"window.sefaFetches - {fetched}")
    page.mouse.up()
    return DragRun(step, frames, fetched, elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--drag-seconds", type=float, default=4.0)
    args = parser.parse_args()
    if reason := chromium_missing():
        print(f"cannot measure: {reason}")
        return 1
    print(machine())  # with the load averages before the run
    with running_app() as (url, pid), chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(NOTE_SENDS)
        open_editor(page, url)
        page.evaluate(WATCH_IMAGE)
        single_moves(page, 5)  # warm-up: first runs compile and fill caches
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        server_before, page_before = server_cpu_s(pid), page_busy_s(cdp)
        moves = single_moves(page, args.moves)
        server_cpu = (server_cpu_s(pid) - server_before) / len(moves) * 1000
        page_busy = (page_busy_s(cdp) - page_before) / len(moves) * 1000
        drag = continuous_drag(page, args.drag_seconds)
        rss = rss_mib(pid)
    latencies = [move["total"] for move in moves]
    print(
        f"slider -> new pixels over {len(latencies)} moves: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, max {max(latencies):.1f} ms, "
        f"mean {statistics.fmean(latencies):.1f} ms"
    )
    for key, label in PARTS.items():
        print(f"  p50 {percentile([move[key] for move in moves], 0.5):5.1f} ms  {label}")
    messages = percentile([move["messages"] for move in moves], 0.5)
    print(f"  p50 {messages:5.0f}     messages from the server per move (an HTTP frame counts as one)")
    print(f"CPU per move: server process {server_cpu:.1f} ms, page main thread {page_busy:.1f} ms")
    print(
        f"continuous drag: {drag.frames} new frames in {drag.seconds:.2f} s = "
        f"{drag.frames / drag.seconds:.1f} updates/s ({drag.mouse_moves / drag.seconds:.1f} mouse moves/s, "
        f"{drag.fetched} frames fetched over HTTP)"
    )
    print(f"app RSS after the run: {rss:.0f} MiB\nafter: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
