"""The httpx client both API clients are built on, and the overall deadline of one attempt.

`build_http_client` makes the `httpx.Client` (its `transport=` is the tests' seam) and bounds
every socket read and write by the deadline `ApiSession` sets for the attempt in progress, so a
server trickling bytes cannot hold a request open. Used only by `clients.http`'s session and the
clients' constructors; it maps no status and retries nothing.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_deadline = threading.local()
"""The monotonic time the attempt in progress on this thread must end by (None: no limit)."""


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the thread's deadline.

    httpx applies its timeout to each read, so a server sending one byte per second keeps a
    request alive forever; bounding each socket call by the time left ends it on time.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with the streams it opens bounded by `_DeadlineStream`."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the overall deadline of the request passed")
    return remaining if timeout is None else min(timeout, remaining)


def _install_deadlines(client: httpx.Client) -> None:
    """Bound the sockets of the client's own transports (env proxies included).

    httpx offers no public seam for httpcore's network backend, so its pools are reached
    through their attributes; a transport of another shape (a test's MockTransport) has no
    sockets, and `ApiSession` still checks the deadline between the chunks of a body.
    """
    transports = [client._transport, *client._mounts.values()]  # noqa: SLF001
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(
            backend, _DeadlineBackend
        ):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]  # noqa: SLF001


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's roots, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured),
    made once per process: loading the roots costs about 50 ms a client, and a context serves
    any number of connections."""
    return httpx.create_ssl_context()


def build_http_client(
    base_url: str,
    *,
    timeout_seconds: float,
    transport: httpx.BaseTransport | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An httpx.Client for one service; `transport` is the seam tests use for the simulators.

    `timeout_seconds` bounds each socket operation and, through `ApiSession`, each attempt as a
    whole (connect, send, headers and body)."""
    client = httpx.Client(
        base_url=base_url,
        timeout=timeout_seconds,
        transport=transport,
        auth=auth,
        headers=dict(headers or {}),
        follow_redirects=False,
        verify=_tls_context() if transport is None else True,
    )
    if transport is None:
        _install_deadlines(client)
    return client


@contextmanager
def _overall_deadline(at: float | None) -> Iterator[None]:
    """This thread's deadline for the sockets of one attempt, cleared after it."""
    _deadline.at = at
    try:
        yield
    finally:
        _deadline.at = None
