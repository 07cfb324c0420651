"""Many users on one server: N Streamlit replicas of the editor behind nginx, from one command.

    sefa serve --replicas 4 --port 8501 [--host 0.0.0.0]

One Streamlit process runs every session's work on one interpreter; replicas spread the sessions
over processes (and cores). ``serve`` starts the replicas on free local ports, writes an nginx
config from ``data/nginx.conf.template`` into a private temporary folder and runs nginx there as
the current user, restarts a replica that dies, and on SIGTERM or Ctrl-C stops nginx and every
replica (each in a process group of its own, so nothing is left behind).

Replicas share what lives on disk: config.yaml, checkpoints/, direction_sets/ (written under file
locks, see ``shared_files``) and one cache of converted weights (``$SEFA_CACHE_DIR``). Sessions
stay in the replica that holds them; nginx keeps each browser on its replica with a cookie.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import TextIO

from sefa_core.config import CONFIG_ENV, default_config_path
from sefa_core.errors import SefaError
from sefa_core.formats.cache import CACHE_DIR_ENV, cache_dir

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP_FILE = "app.py"
LOOPBACK = "127.0.0.1"  # replicas listen here only; nginx is the one public door
COOKIE_SECRET_ENV = "STREAMLIT_SERVER_COOKIE_SECRET"  # one secret: a failed-over session's XSRF cookie holds
UPLOAD_LIMIT_ENV = "STREAMLIT_SERVER_MAX_UPLOAD_SIZE"
STREAMLIT_DEFAULT_UPLOAD_MB = 200  # Streamlit's maxUploadSize when .streamlit/config.toml sets none
MULTIPART_SLACK_MB = 1  # the multipart envelope around an uploaded file of exactly the limit
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
NGINX_MISSING = "nginx is not installed; install it with: apt-get install nginx (or run make serve)"
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
MAX_REPLICAS = 64
POLL_S = 0.5  # how often the supervisor looks for a dead replica
RESTART_BACKOFF_S = 1.0  # at least this long between two starts of one replica (a crash loop)
START_TIMEOUT_S = 180.0  # for every replica to answer its health check (torch imports on a busy box)
HEALTH_TIMEOUT_S = 2.0
STOP_GRACE_S = 12.0  # SIGTERM, then SIGKILL: all gone well inside 30 s
LOG_TAIL_LINES = 5
FAIL_TIMEOUT_S = 3  # nginx leaves a replica that failed alone this long, then tries it again
PR_SET_PDEATHSIG = 1  # Linux prctl: a child gets this signal when `sefa serve` itself is killed


class _NginxTemplate(Template):
    """``@name`` placeholders: nginx's own ``$variables`` and ``{}`` blocks pass through untouched."""

    delimiter = "@"


@dataclass(frozen=True)
class ServeOptions:
    """What ``sefa serve`` was asked for."""

    replicas: int
    port: int
    host: str = LOOPBACK
    config: Path | None = None  # config.yaml every replica reads (default: theirs, as `streamlit run`)
    root: Path = PROJECT_ROOT  # the checkout holding app.py and .streamlit/config.toml


@dataclass(frozen=True)
class Replica:
    """One Streamlit replica's place: its number (from 1) and its loopback port."""

    index: int
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def name(self) -> str:
        return f"r{self.index}"  # its value in nginx's sticky cookie


# ---- pure parts: ports, limits, the nginx config ------------------------------------------------------
def find_nginx() -> Path:
    """The nginx binary, or one ``SefaError`` line saying how to install it."""
    found = shutil.which("nginx") or next((c for c in NGINX_CANDIDATES if os.access(c, os.X_OK)), None)
    if found is None:
        raise SefaError(NGINX_MISSING)
    return Path(found)


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports nobody listens on now (all probes are held open until all are found)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            ports.append(probe.getsockname()[1])
        return ports


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a public port that is taken or that this user may not open."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds it
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SefaError(f"cannot listen on {host}:{port}: {error.strerror}") from error


def upload_limit_mb(root: Path) -> int:
    """Streamlit's upload limit in MB (MiB), as the replicas will read it: env, then config.toml."""
    if value := os.environ.get(UPLOAD_LIMIT_ENV):
        return _positive_int(value, UPLOAD_LIMIT_ENV)
    settings = root / ".streamlit" / "config.toml"
    if not settings.is_file():
        return STREAMLIT_DEFAULT_UPLOAD_MB
    try:
        data = tomllib.loads(settings.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SefaError(f"{settings}: not valid TOML ({error})") from error
    return _positive_int(
        data.get("server", {}).get("maxUploadSize", STREAMLIT_DEFAULT_UPLOAD_MB), str(settings)
    )


def _positive_int(value: object, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise SefaError(f"{where}: maxUploadSize must be a whole number of MB >= 1, got {value!r}")
    return number


def listen_address(host: str, port: int) -> str:
    """nginx's ``listen`` value: IPv6 addresses go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_config(
    template: str, prefix: Path, host: str, port: int, replicas: Sequence[Replica], upload_mb: int
) -> str:
    """The nginx.conf for ``replicas``, everything nginx writes kept under ``prefix``.

    Each replica gets an upstream of its own with the others as backups (where its sticky
    cookie sends a browser, and where that browser goes when it is down); ``sefa_any`` takes
    browsers without a cookie. Run as root, nginx's workers stay root too: the private folder
    is root's alone, and nginx's default worker user could not read it.
    """
    indent = " " * 4
    watched = f"max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s"  # one refused connection takes it out a while
    upstreams = []
    for replica in replicas:
        lines = [f"{indent}upstream sefa_{replica.name} {{"]
        lines.append(f"{indent * 2}server {LOOPBACK}:{replica.port} {watched};")
        lines += [f"{indent * 2}server {LOOPBACK}:{o.port} backup;" for o in replicas if o != replica]
        upstreams.append("\n".join([*lines, f"{indent}}}"]))
    any_servers = [f"{indent * 2}server {LOOPBACK}:{r.port} {watched};" for r in replicas]
    routes = [f"{indent * 2}{r.name} sefa_{r.name};" for r in replicas]
    cookie = "sefa_replica={}; Path=/; HttpOnly; SameSite=Lax"
    address = re.escape(LOOPBACK)
    served_by = [f'{indent * 2}"~(^|, ){address}:{r.port}$" "{cookie.format(r.name)}";' for r in replicas]
    user_line = ""
    if os.geteuid() == 0:
        user_line = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    return _NginxTemplate(template).substitute(
        user_line=user_line,
        prefix=str(prefix),
        upstreams="\n".join(upstreams),
        any_servers="\n".join(any_servers),
        cookie_routes="\n".join(routes),
        served_by="\n".join(served_by),
        listen=listen_address(host, port),
        max_body_mb=f"{upload_mb + MULTIPART_SLACK_MB}m",
    )


def nginx_template() -> str:
    return resources.files("sefa_core").joinpath("data/nginx.conf.template").read_text(encoding="utf-8")


def replica_environment(options: ServeOptions, cookie_secret: str) -> dict[str, str]:
    """The environment every replica gets: the same cache, config and cookie secret for all."""
    env = dict(os.environ)
    env[CACHE_DIR_ENV] = str(cache_dir().resolve())  # one converted-weights cache for all
    env[COOKIE_SECRET_ENV] = cookie_secret
    config = Path(options.config) if options.config is not None else default_config_path()
    if config.is_file() or options.config is not None:  # what this command read, whatever the cwd
        env[CONFIG_ENV] = str(config.resolve())
    return env


def public_url(host: str, port: int) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    return f"http://{listen_address(shown, port)}"


# ---- processes ---------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM if `sefa serve` dies without cleaning up (kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in a process group of its own (Ctrl-C reaches us, not it; we stop the whole group)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(processes: Sequence[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every process group, wait up to ``grace_s``, then SIGKILL what is left; reap all."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    while any(_group_alive(p.pid) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)  # a group outlives its leader while a child of it is still stopping
    for process in processes:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def is_healthy(base_url: str) -> bool:
    """Whether Streamlit (directly, or through nginx) answers its health check."""
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=HEALTH_TIMEOUT_S) as response:
            return response.status == 200
    except OSError:
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


# ---- the supervisor ------------------------------------------------------------------------------------
class Supervisor:
    """Starts, watches and stops the replicas and nginx of one ``sefa serve`` run."""

    def __init__(self, options: ServeOptions, folder: Path, out: TextIO, err: TextIO) -> None:
        self.options, self.folder, self.out, self.err = options, folder, out, err
        self.nginx = find_nginx()
        self.env = replica_environment(options, secrets.token_hex(32))
        ports = free_ports(options.replicas)
        self.replicas = [Replica(i + 1, port) for i, port in enumerate(ports)]
        self.running: dict[int, subprocess.Popen] = {}
        self.started_at: dict[int, float] = {}
        self.nginx_process: subprocess.Popen | None = None

    # -- replicas
    def _replica_log(self, replica: Replica) -> Path:
        return self.folder / f"replica-{replica.index}.log"

    def start_replica(self, replica: Replica) -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(self.options.root / APP_FILE),
            "--server.port",
            str(replica.port),
            "--server.address",
            LOOPBACK,
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ]
        process = _spawn(command, self.options.root, self.env, self._replica_log(replica))
        self.running[replica.index] = process
        self.started_at[replica.index] = time.monotonic()
        print(f"replica {replica.index}: {replica.url} (pid {process.pid})", file=self.out, flush=True)
        return process

    def restart_dead(self) -> None:
        """Start again every replica whose process has exited (and stop what its group left)."""
        for replica in self.replicas:
            process = self.running[replica.index]
            if process.poll() is None:
                continue
            if time.monotonic() - self.started_at[replica.index] < RESTART_BACKOFF_S:
                continue
            print(
                f"sefa serve: replica {replica.index} exited with code {process.returncode}; restarting "
                f"(last log: {log_tail(self._replica_log(replica)) or 'empty'})",
                file=self.err,
                flush=True,
            )
            stop_all([process], grace_s=0.0)
            self.start_replica(replica)

    # -- nginx
    def start_nginx(self) -> None:
        for name in NGINX_TEMP_DIRS:
            (self.folder / name).mkdir(exist_ok=True)
        config = nginx_config(
            nginx_template(),
            self.folder,
            self.options.host,
            self.options.port,
            self.replicas,
            upload_limit_mb(self.options.root),
        )
        (self.folder / "nginx.conf").write_text(config, encoding="utf-8")
        command = [str(self.nginx), "-p", str(self.folder), "-c", "nginx.conf", "-e", "error.log"]
        self.nginx_process = _spawn(
            [*command, "-g", "daemon off;"], self.folder, dict(os.environ), self.folder / "nginx.out"
        )

    def check_nginx(self) -> None:
        """nginx exiting is not a replica dying: say why, in one line, and stop."""
        assert self.nginx_process is not None, "nginx is started before it is watched"
        if self.nginx_process.poll() is not None:
            reason = log_tail(self.folder / "nginx.out") or log_tail(self.folder / "error.log") or "no log"
            raise SefaError(f"nginx exited with code {self.nginx_process.returncode}: {reason}")

    # -- the whole run
    def wait_until_ready(self, stop: threading.Event) -> bool:
        """Until every replica answers through its port and nginx answers on the public one."""
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = set(self.replicas)
        while waiting or not is_healthy(self.local_public_url):
            if stop.is_set():
                return False
            if time.monotonic() > deadline:
                late = ", ".join(
                    f"replica {r.index} ({log_tail(self._replica_log(r)) or 'no log'})" for r in waiting
                )
                raise SefaError(f"not ready within {START_TIMEOUT_S:.0f} s: {late or 'nginx'}")
            self.check_nginx()
            self.restart_dead()
            waiting = {r for r in waiting if not is_healthy(r.url)}
            stop.wait(POLL_S)
        return True

    @property
    def local_public_url(self) -> str:
        """Where this machine reaches nginx (loopback when it listens on every address)."""
        host = self.options.host
        if host in ("0.0.0.0", "::"):
            host = LOOPBACK if host == "0.0.0.0" else "::1"
        return f"http://{listen_address(host, self.options.port)}"

    def run(self, stop: threading.Event) -> None:
        for replica in self.replicas:
            self.start_replica(replica)
        self.start_nginx()
        if not self.wait_until_ready(stop):
            return
        url = public_url(self.options.host, self.options.port)
        print(f"public: {url} (nginx pid {self.nginx_process.pid})", file=self.out, flush=True)
        while not stop.wait(POLL_S):
            self.check_nginx()
            self.restart_dead()

    def stop(self) -> None:
        processes = list(self.running.values())
        if self.nginx_process is not None:
            processes.insert(0, self.nginx_process)  # the door closes first
        stop_all(processes)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM, SIGINT (Ctrl-C) and SIGHUP ask the supervisor to stop; the old handlers come back after."""
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous: dict[int, Callable | int | None] = {}
    for sig in handled:
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(options: ServeOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the replicas and nginx until a signal stops them; returns the exit code (0 when stopped)."""
    if not 1 <= options.replicas <= MAX_REPLICAS:
        raise SefaError(f"--replicas: expected 1 to {MAX_REPLICAS}, got {options.replicas}")
    if not 1 <= options.port <= 65535:
        raise SefaError(f"--port: expected 1 to 65535, got {options.port}")
    if not (options.root / APP_FILE).is_file():
        raise SefaError(
            f"{options.root / APP_FILE}: not found; run sefa serve from a checkout of SeFa Studio"
        )
    find_nginx()
    check_port_free(options.host, options.port)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="sefa-serve-") as folder, _stop_on_signals(stop):
        supervisor = Supervisor(options, Path(folder), out, err)
        try:
            supervisor.run(stop)
        finally:
            supervisor.stop()
    print("sefa serve: stopped nginx and every replica", file=err, flush=True)
    return 0
