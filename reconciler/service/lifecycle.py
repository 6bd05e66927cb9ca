"""The long-running service behind `reconciler run`: scheduled passes, admin requests (through
`service.admin_requests`), readiness, metrics and a bounded shutdown, around the hint worker
(`reconciler.service.hints`).

Called by the CLI (`run_service`). Scheduled passes and admin requests go through `run_pass`
under one lock, so two never overlap; hinted employees' targeted passes run beside them, their
writes ordered per employee by `EmployeeClaims`. Threads live only here, in `hints` and in the
scheduler. Nothing here decides what to write (that is `reconcile`), and nothing here logs a
body or a secret.

This module holds `Service`'s start, stop and systemd notifications, and `run_service`; the
state, the passes and the worker loops are in `runner` (`ServiceRunner`, its base).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from reconciler.errors import ConfigError
from reconciler.passes.context import PassContext
from reconciler.service import sdnotify
from reconciler.service.admin_app import AdminPage
from reconciler.service.admin_page import build_admin_page
from reconciler.service.admin_views import AdminViews
from reconciler.service.runner import ServiceRunner
from reconciler.service.scheduler import add_watchdog_job, build_scheduler
from reconciler.service.webhooks import create_app
from reconciler.service.webserver import WebhookServer, serve_webhooks

log = logging.getLogger("reconciler.service.lifecycle")

"""How long SIGTERM waits for the pass in flight; systemd and the spec allow 10 s in all."""
WEBHOOK_DRAIN_SECONDS = 1.0
ADMIN_MAX_BODY_BYTES = 65_536
"""The admin page's forms are a few fields."""


class Service(ServiceRunner):
    """Scheduler, webhook receiver and hint worker around one pass context."""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Take the database (InstanceLocked if another holds it), then serve and schedule."""
        admin_page = self._build_admin_page()  # a missing hash stops the start, before the lock
        self.store.acquire_instance_lock()
        try:
            self._server = self._serve_webhooks()
            if admin_page is not None:
                self._admin_server = serve_webhooks(
                    admin_page,
                    self.settings.admin.listen,
                    max_body_bytes=ADMIN_MAX_BODY_BYTES,
                    drain_seconds=WEBHOOK_DRAIN_SECONDS,
                    setting="admin.listen",
                    trusted_proxy=admin_page.trusted_proxy,
                )
            self._scheduler = build_scheduler(
                self.settings.sync,
                run_incremental=self.run_incremental,
                run_full=self.run_full,
                poll_requests=self.requests.poll,
                first_incremental_at=self._clock(),
            )
            add_watchdog_job(
                self._scheduler, sdnotify.watchdog_interval_seconds(), self._ping_watchdog
            )
        except BaseException:
            for server in (self._server, self._admin_server):
                if server:
                    server.stop()
            self.store.release_instance_lock()
            raise
        self._scheduler.start()
        self._worker = threading.Thread(target=self._work, name="requests", daemon=True)
        self._quick_worker = threading.Thread(
            target=self._work_quick, name="requests-quick", daemon=True
        )
        self._quick_worker.start()
        self._worker.start()
        self.hints.start()
        self.store.save_service_state({"progress": None})  # a dead process's last pass
        self.update_state()
        log.info(
            "service started: webhooks on %s%s, incremental pass every %s min, "
            "full resync at %r (UTC)",
            self._server.url,
            f", admin page on {self._admin_server.url}" if self._admin_server else "",
            self.settings.sync.interval_minutes,
            self.settings.sync.full_resync_cron,
        )

    def _build_admin_page(self) -> AdminPage | None:
        return build_admin_page(
            self.settings,
            self.store,
            self._admin_views,
            is_ready=self.is_ready,
            clock=self._clock,
            monotonic=self._monotonic,
        )

    @property
    def admin_url(self) -> str | None:
        return self._admin_server.url if self._admin_server else None

    def _serve_webhooks(self) -> WebhookServer:
        app = create_app(
            self.settings.webhooks,
            on_hint=self.hints.on_hint,
            is_ready=self.is_ready,
            metrics=self.metrics,
        )
        listen = self.settings.webhooks.listen
        try:
            return serve_webhooks(
                app,
                listen,
                max_body_bytes=self.settings.webhooks.max_body_bytes,
                drain_seconds=WEBHOOK_DRAIN_SECONDS,
            )
        except OSError as exc:
            raise ConfigError(
                f"setting webhooks.listen: cannot listen on {listen}: {exc.strerror or exc}"
            ) from None

    @property
    def url(self) -> str | None:
        return self._server.url if self._server else None

    def wait(self) -> None:
        """Block until `request_stop` or a signal. Polls: a signal handler must take no lock."""
        while not self.is_stop_requested:
            time.sleep(0.2)

    def request_stop(self) -> None:
        self.is_stop_requested = True

    def notify_ready(self) -> None:
        """Tell systemd READY; the watchdog pings wait for it (they take the same lock)."""
        with self._notify_lock:
            sdnotify.notify(f"READY=1\nSTATUS=serving on {self.url}")  # Type=notify: started
            self._is_ready = True

    def notify_stopping(self) -> None:
        """Tell systemd STOPPING; no watchdog ping follows it (the pings take the same lock)."""
        with self._notify_lock:
            self._is_stopping = True
            sdnotify.notify("STOPPING=1")

    def _ping_watchdog(self) -> bool:
        with self._notify_lock:
            if self._is_stopping or not self._is_ready:
                return False
            return sdnotify.ping_watchdog()

    def stop(self, timeout_seconds: float | None = None) -> bool:
        """Stop taking hints, let the pass in flight finish, stop the scheduler and the worker.

        True when all stopped in time; False when a pass was still running after
        `timeout_seconds` (its journal lets the next start converge).
        """
        if timeout_seconds is None:
            timeout_seconds = self.settings.sync.shutdown_grace_seconds
        deadline = time.monotonic() + timeout_seconds
        self._closing.set()
        self.requests.close()
        self._wake.set()
        self._quick_wake.set()
        for server in (self._admin_server, self._server):
            if server:
                server.stop()
        is_idle = self._pass_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if self._scheduler and self._scheduler.running:
            self._scheduler.shutdown(wait=is_idle)
        if self._worker:
            self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._quick_worker:
            self._quick_worker.join(max(0.0, deadline - time.monotonic()))
        hints_idle = self.hints.stop(deadline, time.monotonic)
        if not is_idle or not hints_idle or (self._worker and self._worker.is_alive()):
            log.warning(
                "stopped with a pass still running after %.0f s; the next start finishes its work",
                timeout_seconds,
            )
            return False
        self.store.close()
        log.info("service stopped")
        return True


def run_service(services: PassContext, admin_views: AdminViews | None = None) -> int:
    """`reconciler run`: serve until SIGTERM/SIGINT, then stop within 10 s and return 0."""
    service = Service(services, admin_views=admin_views)

    def on_signal(signum: int, frame: object) -> None:
        service.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    service.start()
    service.notify_ready()
    service.wait()
    service.notify_stopping()
    log.info("stopping")
    if not service.stop():
        # The pass thread cannot be interrupted and Python would wait for it at exit; everything
        # it did is committed and journalled, so leave now as systemd expects.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
