"""`sefa serve`: Streamlit replicas behind nginx, restarted when they die, all stopped by SIGTERM.

One real run (two replicas of the editor on the default model, nginx in front, on loopback) is
shared by the tests in file order: the lines it prints, health and websocket through nginx, the
sticky cookie, a killed replica, then SIGTERM. Without nginx they skip, saying so (``make test``
installs it).
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sefa_core import serve
from sefa_core.cli import main
from sefa_core.errors import SefaError

REPO_ROOT = Path(__file__).resolve().parents[1]
REPLICA_LINE = re.compile(r"^replica (\d+): http://127\.0\.0\.1:(\d+) \(pid (\d+)\)$")
PUBLIC_LINE = re.compile(r"^public: (http://127\.0\.0\.1:\d+) \(nginx pid (\d+)\)$")
READY_TIMEOUT_S = 120.0  # two replicas importing torch on a busy 2-core machine
RESTART_WITHIN_S = 5.0  # "a replica that dies is restarted within a few seconds"
STOPPED_WITHIN_S = 30.0


def nginx_missing() -> str:
    try:
        serve.find_nginx()
    except SefaError as error:
        return str(error)
    return ""


needs_nginx = pytest.mark.skipif(bool(nginx_missing()), reason=nginx_missing() or "nginx found")


def get(url: str, cookie: str = "") -> tuple[int, str, str]:
    """(status, body, the sefa_replica cookie nginx set) of a GET, sent with ``cookie``."""
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
        replica = next((c.split(";")[0].split("=")[1] for c in cookies if c.startswith("sefa_replica=")), "")
        return response.status, response.read().decode(), replica


def websocket_handshake(port: int, cookie: str = "") -> str:
    """The status line nginx answers a browser's websocket upgrade of Streamlit's stream with."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
    ] + ([f"Cookie: {cookie}"] if cookie else [])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return connection.recv(4096).decode(errors="replace").splitlines()[0]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped or not, has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@dataclass
class Served:
    """A running `sefa serve` and what it has printed so far."""

    process: subprocess.Popen
    lines: queue.Queue
    replicas: dict[int, tuple[int, int]] = field(default_factory=dict)  # index -> (port, pid)
    url: str = ""
    nginx_pid: int = 0
    seen_pids: set[int] = field(default_factory=set)
    first_lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def next_line(self, timeout_s: float) -> str:
        line = self.lines.get(timeout=timeout_s)
        if line is None:
            raise RuntimeError(f"sefa serve exited with code {self.process.wait()}")
        if match := REPLICA_LINE.match(line):
            index, port, pid = (int(g) for g in match.groups())
            self.replicas[index] = (port, pid)
            self.seen_pids.add(pid)
        return line


@contextlib.contextmanager
def running_serve(replicas: int = 2) -> Iterator[Served]:
    """``sefa serve --replicas N`` on a free loopback port, once it has printed its public URL."""
    command = [
        sys.executable,
        "-m",
        "sefa_core",
        "serve",
        "--replicas",
        str(replicas),
        "--port",
        str(free_port()),
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
    )
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    run = Served(process, lines)
    try:
        run.first_lines = [run.next_line(READY_TIMEOUT_S) for _ in range(replicas + 1)]
        match = PUBLIC_LINE.match(run.first_lines[-1])
        assert match, f"expected the public URL last, got {run.first_lines}"
        run.url, run.nginx_pid = match.group(1), int(match.group(2))
        yield run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOPPED_WITHIN_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    if reason := nginx_missing():
        pytest.skip(reason)
    with running_serve(2) as run:
        yield run


def free_port() -> int:
    return serve.free_ports(1)[0]


# ---- one real run, in order ---------------------------------------------------------------------
@needs_nginx
def test_serve_prints_one_line_per_replica_then_the_public_url(served):
    replicas = [REPLICA_LINE.match(line) for line in served.first_lines[:2]]
    assert all(replicas), served.first_lines
    assert [int(m.group(1)) for m in replicas] == [1, 2]
    ports = {port for port, _ in served.replicas.values()}
    assert len(ports) == 2 and served.port not in ports
    assert all(alive(pid) for _, pid in served.replicas.values())


@needs_nginx
def test_every_replica_answers_on_its_own_port_and_shares_the_cache_and_cookie_secret(served):
    shared = []
    for port, pid in served.replicas.values():
        assert get(f"http://127.0.0.1:{port}/_stcore/health")[:2] == (200, "ok")
        env = environ(pid)
        shared.append((env[serve.CACHE_DIR_ENV], env[serve.COOKIE_SECRET_ENV]))
    assert shared[0] == shared[1] and Path(shared[0][0]).is_absolute()


@needs_nginx
def test_the_public_url_answers_health_through_nginx(served):
    status, body, replica = get(f"{served.url}/_stcore/health")
    assert (status, body) == (200, "ok") and replica in {"r1", "r2"}
    with urllib.request.urlopen(f"{served.url}/_stcore/health", timeout=10) as response:
        assert response.headers["Server"].startswith("nginx")


@needs_nginx
def test_the_websocket_upgrades_through_nginx(served):
    assert websocket_handshake(served.port).startswith("HTTP/1.1 101")


@needs_nginx
def test_new_browsers_spread_over_the_replicas_and_then_stick_to_theirs(served):
    fresh = {get(f"{served.url}/_stcore/health")[2] for _ in range(6)}
    assert fresh == {"r1", "r2"}
    for replica in ("r1", "r2"):
        assert {get(f"{served.url}/_stcore/health", f"sefa_replica={replica}")[2] for _ in range(4)} == {
            replica
        }


@needs_nginx
def test_a_killed_replica_is_restarted_and_its_traffic_goes_to_the_other_meanwhile(served):
    port, pid = served.replicas[1]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # Its browsers are answered by replica 2 while it is down, and their cookie follows them there.
    for _ in range(3):
        assert get(f"{served.url}/_stcore/health", "sefa_replica=r1") == (200, "ok", "r2")
    assert websocket_handshake(served.port, "sefa_replica=r1").startswith("HTTP/1.1 101")
    line = served.next_line(RESTART_WITHIN_S + 1)
    assert REPLICA_LINE.match(line), line
    assert time.monotonic() - killed < RESTART_WITHIN_S + 1
    new_port, new_pid = served.replicas[1]
    assert new_port == port and new_pid != pid and alive(new_pid)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not serve.is_healthy(f"http://127.0.0.1:{port}") and time.monotonic() < deadline:
        time.sleep(0.2)
    # Once nginx's fail_timeout has passed, browsers whose cookie names replica 1 are served there again.
    deadline = time.monotonic() + serve.FAIL_TIMEOUT_S + 2
    while get(f"{served.url}/_stcore/health", "sefa_replica=r1")[2] != "r1" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get(f"{served.url}/_stcore/health", "sefa_replica=r1") == (200, "ok", "r1")


@needs_nginx
def test_sigterm_stops_nginx_and_every_replica_and_leaves_no_process(served):
    pids = served.seen_pids | {served.nginx_pid, *children(served.nginx_pid)}
    pids |= {child for _, pid in served.replicas.values() for child in children(pid)}
    assert all(alive(pid) for _, pid in served.replicas.values())
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=STOPPED_WITHIN_S) == 0
    assert time.monotonic() - started < STOPPED_WITHIN_S
    assert [pid for pid in pids if alive(pid)] == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{served.url}/_stcore/health", timeout=2)


# ---- without a run -------------------------------------------------------------------------------
def test_without_nginx_serve_says_how_to_install_it_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(serve, "NGINX_CANDIDATES", ())
    assert main(["serve", "--replicas", "2", "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "apt-get install nginx" in error


@needs_nginx
def test_a_taken_port_is_refused_in_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot listen on 127.0.0.1:" in error


def test_the_upload_limit_is_streamlits_plus_the_multipart_envelope(tmp_path, monkeypatch):
    monkeypatch.delenv(serve.UPLOAD_LIMIT_ENV, raising=False)
    assert serve.upload_limit_mb(tmp_path) == serve.STREAMLIT_DEFAULT_UPLOAD_MB
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text("[server]\nmaxUploadSize = 7\n")
    limit = serve.upload_limit_mb(tmp_path)
    config = serve.nginx_config(serve.nginx_template(), tmp_path, "127.0.0.1", 8080, [], limit)
    assert limit == 7 and f"client_max_body_size {7 + serve.MULTIPART_SLACK_MB}m;" in config
    monkeypatch.setenv(serve.UPLOAD_LIMIT_ENV, "9")
    assert serve.upload_limit_mb(tmp_path) == 9


@needs_nginx
def test_the_nginx_config_is_valid_and_keeps_everything_in_its_folder(tmp_path):
    replicas = [serve.Replica(1, 41001), serve.Replica(2, 41002), serve.Replica(3, 41003)]
    config = serve.nginx_config(serve.nginx_template(), tmp_path, "127.0.0.1", free_port(), replicas, 1024)
    written = re.findall(r"^\s*(?:pid|error_log|\w+_temp_path) ([^ ;]+)", config, re.MULTILINE)
    assert len(written) == 2 + len(serve.NGINX_TEMP_DIRS)
    assert all(Path(path).is_relative_to(tmp_path) for path in written)
    assert "/etc/" not in config and "/var/" not in config
    assert config.count("backup;") == len(replicas) * (len(replicas) - 1)
    for name in serve.NGINX_TEMP_DIRS:
        (tmp_path / name).mkdir()
    (tmp_path / "nginx.conf").write_text(config)
    checked = subprocess.run(
        [str(serve.find_nginx()), "-t", "-p", str(tmp_path), "-c", "nginx.conf", "-e", "error.log"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
