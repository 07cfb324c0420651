"""What ``app.py`` adds to Streamlit's own server when ``streamlit run`` starts it as an ``st.App``,
beside the drag-frame route of ``studio_ui.frames``:

- ``TCP_NODELAY`` on every connection. Streamlit binds its listening socket itself, with the
  protocol number left at 0, and asyncio turns Nagle's algorithm off only on sockets that say
  ``IPPROTO_TCP`` (the same flaw as uvicorn's issue #3149). With Nagle on, the second small write
  of a response (a body after its headers, a websocket message after another) waits for the
  browser's delayed ACK: 40 ms on Linux, measured on every keep-alive request and every frame.
  Linux hands the option on from the listening socket to each connection it accepts.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

OPEN_FILES = Path("/proc/self/fd")  # Linux; elsewhere the listening sockets are left as they are


def listening_tcp_sockets() -> list[int]:
    """File descriptors of this process's listening TCP sockets."""
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir(OPEN_FILES):
            with contextlib.suppress(OSError, ValueError):
                probe = socket.socket(fileno=int(name))
                try:
                    tcp = (
                        probe.family in (socket.AF_INET, socket.AF_INET6) and probe.type == socket.SOCK_STREAM
                    )
                    if tcp and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                        found.append(probe.fileno())
                finally:
                    probe.detach()  # the descriptor stays open: it is the server's
    return found


def no_delay_on_listeners() -> int:
    """Set ``TCP_NODELAY`` on every listening TCP socket of this process; how many were set."""
    for fd in (listening := listening_tcp_sockets()):
        probe = socket.socket(fileno=fd)
        try:
            probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        finally:
            probe.detach()
    return len(listening)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Runs once, after Streamlit has bound its socket and before it accepts a connection."""
    no_delay_on_listeners()
    yield
