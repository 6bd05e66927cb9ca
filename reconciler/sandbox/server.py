"""Serve a simulator's `handle(httpx.Request) -> httpx.Response` on 127.0.0.1 for end-to-end use.

Test and demo infrastructure only (the product's own receiver runs on waitress). Binds to the
loopback interface and never anywhere else; port 0 picks a free port. A `DropConnection` raised
by the simulator closes the socket without an answer, as a dropped connection would; a
`SimulatedTimeout` holds the socket for its `hold_seconds` first.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from reconciler.sandbox.faults import DropConnection, SimulatedTimeout

Handler = Callable[[httpx.Request], httpx.Response]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed or timed out mid-request (the crash and fault tests do it on purpose)
        # resets the socket: expected, so not printed as a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ServedSimulator:
    """A running loopback server; use as a context manager or call `stop()`."""

    def __init__(self, handle: Handler, port: int = 0) -> None:
        self._server = _QuietServer(("127.0.0.1", port), _make_handler(handle))
        self._server.daemon_threads = True
        # A short poll interval: `stop()` waits for it, and tests stop many servers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ServedSimulator:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ServedSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(handle: Handler, port: int = 0) -> ServedSimulator:
    return ServedSimulator(handle, port).start()


def _make_handler(handle: Handler) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            address = self.server.server_address
            if not isinstance(address, tuple):  # typed for any socket family; ours is TCP
                raise TypeError(f"not a TCP server address: {address!r}")
            host, port = address[:2]
            request = httpx.Request(
                self.command,
                f"http://{host}:{port}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = handle(request)
            except SimulatedTimeout as timeout:
                time.sleep(timeout.hold_seconds)
                self.close_connection = True
                self.connection.close()
                return
            except DropConnection:
                self.close_connection = True
                self.connection.close()
                return
            content = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return _Handler
