"""Serves the receiver's WSGI app on waitress, bounded against peers that never authenticate.

`service.py` calls `serve_webhooks`; the app itself (`webhooks.py`) knows nothing of sockets.
Waitress alone stops accepting once 100 connections are open, so 101 idle sockets starved
/healthz. Here a peer gets a deadline to send a whole request, a share of the connections per
address, and a new connection always gets in by closing the longest-quiet one doing no work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from reconciler.errors import ConfigError


@dataclass(frozen=True)
class ConnectionLimits:
    """What one unauthenticated peer can hold. Bob sends small JSON bodies, one per delivery."""

    max_connections: int = 100
    """Open connections in all; past it a new one closes the longest-quiet idle one."""
    max_connections_per_address: int = 20
    """Open connections from one IP address (behind a proxy: the proxy's connections)."""
    request_seconds: int = 10
    """Time to send a whole request, headers and body, from its first byte."""
    idle_seconds: int = 15
    """A connection with no request under way is closed after this long."""
    max_header_bytes: int = 16_384
    """Request line and headers; Bob's are well under 2 KiB."""
    threads: int = 4


class _Channel(HTTPChannel):  # type: ignore[misc]  # waitress ships no types
    """A connection that knows when its current request began, and asks to be admitted."""

    request_started_at: float | None = None

    def __init__(
        self,
        server: _Listener,
        sock: Any,
        addr: Any,
        adj: Adjustments,
        map: dict[int, Any] | None = None,
    ) -> None:  # noqa: A002 (waitress's name)
        super().__init__(server, sock, addr, adj, map=map)
        server.admit(self)

    def received(self, data: bytes) -> bool:
        if self.request is None:
            self.request_started_at = time.time()  # these bytes begin a request
        result = super().received(data)
        if self.request is None:
            self.request_started_at = None  # complete: now the app's time, not the peer's
        return bool(result)

    @property
    def is_working(self) -> bool:
        """A request is queued or running, or its answer is still being sent."""
        return bool(self.requests) or bool(self.total_outbufs_len)


class _Listener(TcpWSGIServer):  # type: ignore[misc]  # waitress ships no types
    channel_class = _Channel

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        map: dict[int, Any],  # noqa: A002
        dispatcher: ThreadedTaskDispatcher,
        adj: Adjustments,
        sockinfo: Any,
        limits: ConnectionLimits,
    ) -> None:
        self.limits = limits
        try:
            super().__init__(app, map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        except OSError:
            # waitress opened its wake-up pipe and the socket before the refused bind.
            self.close()
            raise

    def admit(self, new: _Channel) -> None:
        """Keep the peer's address and the total within limits, evicting quiet connections.

        Runs on the loop thread at accept. The longest-quiet idle connection goes first; a
        connection doing work is never evicted, so when all are busy the newcomer is refused.
        """
        channels = [
            c
            for c in self._map.values()
            if isinstance(c, _Channel) and c is not new and not c.will_close
        ]
        host = _host(new.addr)
        same = [c for c in channels if _host(c.addr) == host]
        for pool, limit in (
            (same, self.limits.max_connections_per_address),
            (channels, self.limits.max_connections),
        ):
            if len(pool) + 1 <= limit:
                continue
            idle = sorted(
                (c for c in pool if not c.is_working and not c.will_close),
                key=lambda c: c.last_activity,
            )
            excess = len([c for c in pool if not c.will_close]) + 1 - limit
            if len(idle) < excess:
                new.will_close = True  # closed on the next loop turn, before reading anything
                return
            for channel in idle[:excess]:
                channel.will_close = True

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # waitress: idle (no request) longer than channel_timeout
        cutoff = now - self.limits.request_seconds
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started_at", None)
            if started is not None and started < cutoff and not channel.requests:
                channel.will_close = True


def _host(addr: Any) -> str:
    return addr[0] if isinstance(addr, tuple) and addr else str(addr)


class WebhookServer:
    """The app on waitress, in a background thread. `stop()` stops accepting, lets requests in
    flight finish (up to `drain_seconds`), then closes every connection."""

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        *,
        max_body_bytes: int,
        limits: ConnectionLimits,
        drain_seconds: float,
        trusted_proxy: str | None = None,
    ) -> None:
        self._map: dict[int, Any] = {}
        # A proxy's X-Forwarded-For/-Proto count only from `trusted_proxy`; waitress drops them
        # from anyone else.
        proxy = (
            {
                "trusted_proxy": trusted_proxy,
                "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            }
            if trusted_proxy
            else {}
        )
        adj = Adjustments(
            **proxy,
            host=host,
            port=port,
            ident="reconciler",
            threads=limits.threads,
            # Waitress refuses (413) at ">=" and counts chunked framing too (Bob sends
            # Content-Length): an oversized upload is refused before it is buffered.
            max_request_body_size=max_body_bytes + 1,
            max_request_header_size=limits.max_header_bytes,
            channel_timeout=limits.idle_seconds,
            cleanup_interval=1,  # how often the deadlines are checked
            # Only a backstop: `admit` keeps the count at max_connections. When waitress's own
            # limit is reached it stops accepting, which is what starved the health checks.
            connection_limit=limits.max_connections + 16,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        self._listeners: list[_Listener] = []
        try:
            for sockinfo in adj.listen:
                self._listeners.append(
                    _Listener(
                        app,
                        map=self._map,
                        dispatcher=dispatcher,
                        adj=adj,
                        sockinfo=sockinfo,
                        limits=limits,
                    )
                )
        except OSError:
            for listener in self._listeners:
                listener.close()
            dispatcher.shutdown(timeout=1.0)
            raise
        self._dispatcher = dispatcher
        self._drain_seconds = drain_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        listener = self._listeners[0]
        host = listener.effective_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{listener.effective_port}"

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stopping.set()
        try:
            self._listeners[0].pull_trigger()
        except OSError:
            pass  # the server loop saw the flag first and already closed its trigger pipe
        self._thread.join(self._drain_seconds + 5)

    def __enter__(self) -> WebhookServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        # Our own loop instead of waitress's `run()`, whose `close()` would cut off responses
        # not yet flushed to their clients.
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, use_poll=True, map=self._map, count=1)
        for listener in self._listeners:
            wasyncore.dispatcher.close(listener)  # the listening socket only; keeps the trigger
        deadline = time.monotonic() + self._drain_seconds
        while self._is_busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, use_poll=True, map=self._map, count=1)
        self._dispatcher.shutdown(timeout=1.0)
        wasyncore.close_all(self._map, ignore_all=True)

    def _is_busy(self) -> bool:
        return any(
            channel.requests or channel.request or channel.total_outbufs_len
            for channel in list(self._map.values())
            if isinstance(channel, HTTPChannel)
        )


def serve_webhooks(
    app: Callable[..., Any],
    listen: str,
    *,
    max_body_bytes: int,
    limits: ConnectionLimits | None = None,
    drain_seconds: float = 5.0,
    setting: str = "webhooks.listen",
    trusted_proxy: str | None = None,
) -> WebhookServer:
    """Serve `app` on `listen` ("host:port", "[::1]:port"; port 0 = any free port); errors name
    `setting` (the admin page is served the same way on `admin.listen`)."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit():
        raise ConfigError(f"setting {setting}: expected host:port, got {listen!r}")
    try:
        return WebhookServer(
            app,
            host,
            int(port_text),
            max_body_bytes=max_body_bytes,
            limits=limits or ConnectionLimits(),
            drain_seconds=drain_seconds,
            trusted_proxy=trusted_proxy,
        )
    except OSError as exc:
        raise ConfigError(
            f"setting {setting}: cannot listen on {listen}: {exc.strerror or exc}"
        ) from None
