"""Starting and stopping the server cleanly: the port is taken before the model loads, and on
SIGTERM in-flight requests get a bounded grace period, after which they end with an error.
"""

from __future__ import annotations

import socket
import time
from types import FrameType
from typing import Any

from steerlab.errors import SteerlabError


class Drain:
    """The server's shutdown clock. :meth:`begin` starts it (on SIGTERM / Ctrl-C); requests still
    running when :attr:`expired` turns true are cancelled and answered with an error."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, grace: float) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + grace

    @property
    def started(self) -> bool:
        return self.deadline is not None

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (handed to uvicorn), so a port already in use is reported
    before the model loads rather than after."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SteerlabError(f"cannot listen on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (is another server running there? pick another --port)" if port else ""
        raise SteerlabError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


def graceful_server(config: Any, drain: Drain, grace: float) -> Any:
    """A ``uvicorn.Server`` whose exit signal starts ``drain``: requests in flight get ``grace``
    seconds, then end with an error event / 503, and uvicorn waits a little longer for them."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            drain.begin(grace)
            super().handle_exit(sig, frame)

    config.timeout_graceful_shutdown = grace + 5.0  # our own cancellation comes first
    return _Server(config)
