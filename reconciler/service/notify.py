"""Alerts to an operator's chat: a Slack/Teams-compatible incoming webhook (`{"text": ...}`).

Called by the service after each pass (`Notifier.after_pass`). Sends each alert once: a held
pass, newly quarantined employees, `notify.failed_passes` failed passes in a row, and the
recovery after that. What was sent is kept in the store's service_state, so a restart neither
repeats nor forgets. Never raises, never fails a pass, never logs the webhook URL in full.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from reconciler.core.vocabulary import PassKind
from reconciler.settings_sections import NotifySettings
from reconciler.store.database import Store

log = logging.getLogger("reconciler.service.notify")
SCHEDULED_KINDS = (PassKind.INCREMENTAL, PassKind.FULL)
"""Only these count toward a failure streak: a targeted pass fails for one employee's reasons."""
MAX_LISTED = 10
_HELD, _QUARANTINED = "notify_held_ids", "notify_quarantined_ids"
_STREAK, _FAILING = "notify_failed_streak", "notify_failure_alerted"


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        store: Store,
        *,
        transport: httpx.BaseTransport | None = None,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        self.settings, self.store = settings, store
        self._url = settings.webhook_url.get_secret_value()
        self._transport = transport
        self._hostname = hostname

    @property
    def is_enabled(self) -> bool:
        return bool(self._url)

    def after_pass(self, kind: str, outcome: str, error: str | None, now: datetime) -> None:
        """Send what this pass makes newly true; failures are logged, never raised."""
        if not self.is_enabled:
            return
        try:
            state = self.store.load_service_state()
            self._alert_streak(kind, outcome, error, state)
            self._alert_held(state)
            self._alert_quarantined(now, state)
        except Exception:
            log.warning("notify: alert bookkeeping failed", exc_info=True)

    # -- the alerts -------------------------------------------------------------------------
    def _alert_streak(
        self, kind: str, outcome: str, error: str | None, state: dict[str, str | None]
    ) -> None:
        if kind not in SCHEDULED_KINDS:
            return
        streak = int(state.get(_STREAK) or 0)
        was_alerted = bool(state.get(_FAILING))
        if outcome == "failed":
            streak += 1
            self.store.save_service_state({_STREAK: str(streak)})
            if (
                streak >= self.settings.failed_passes
                and not was_alerted
                and self.send(
                    "failing", f"{streak} passes failed in a row; last error: {error or '?'}"
                )
            ):
                self.store.save_service_state({_FAILING: "1"})
            return
        if was_alerted and not self.send(
            "recovered",
            f"recovered: a {kind} pass completed ({outcome}) after {streak} failed passes",
        ):
            return  # try the recovery message again after the next pass
        self.store.save_service_state({_STREAK: "0", _FAILING: None})

    def _alert_held(self, state: dict[str, str | None]) -> None:
        held = {row.hibob_id: row for row in self.store.list_held()}
        alerted = set(json.loads(state.get(_HELD) or "[]"))
        new = sorted(set(held) - alerted)
        if new:
            lines = [f"{h} ({held[h].email or 'no email'})" for h in new[:MAX_LISTED]]
            reason = held[new[0]].reason.split(";")[0]
            text = (
                f"pass held {len(held)} deactivation(s): {reason}. Newly held: "
                f"{', '.join(lines)}{_more(new)}. Review with `reconciler status`, "
                "release with `reconciler release`."
            )
            if not self.send("held", text):
                return
        if set(held) != alerted:
            self.store.save_service_state({_HELD: json.dumps(sorted(held))})

    def _alert_quarantined(self, now: datetime, state: dict[str, str | None]) -> None:
        quarantined = {row.hibob_id: row for row in self.store.list_quarantined(now)}
        # An episode lasts until a success (or an admin) clears quarantined_until, not until
        # the backoff expires: a retry that fails again is the same news.
        alerted = {
            h
            for h in json.loads(state.get(_QUARANTINED) or "[]")
            if h in quarantined or ((entry := self.store.get_entry(h)) and entry.quarantined_until)
        }
        new = sorted(set(quarantined) - alerted)
        if new:
            lines = [
                f"{h} until {quarantined[h].quarantined_until}: {quarantined[h].last_error}"
                for h in new[:MAX_LISTED]
            ]
            text = (
                f"{len(new)} employee(s) newly quarantined after repeated failures: "
                f"{'; '.join(lines)}{_more(new)}. See `reconciler status`."
            )
            if not self.send("quarantined", text):
                return
        current = alerted | set(quarantined)
        if current != set(json.loads(state.get(_QUARANTINED) or "[]")):
            self.store.save_service_state({_QUARANTINED: json.dumps(sorted(current))})

    # -- sending ----------------------------------------------------------------------------
    def send(self, alert: str, text: str) -> bool:
        """POST one message; True when the receiver took it (2xx)."""
        body = {"text": f"reconciler on {self._hostname()}: {text}"}
        where = self.redacted_url
        try:
            with httpx.Client(
                transport=self._transport,
                timeout=self.settings.timeout_seconds,
                follow_redirects=False,
            ) as client:
                response = client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            log.warning(
                "notify: the %s alert did not reach %s: %s",
                alert,
                where,
                type(exc).__name__,
                extra={"alert": alert},
            )
            return False
        if response.status_code >= 300:
            log.warning(
                "notify: %s answered %d to the %s alert",
                where,
                response.status_code,
                alert,
                extra={"alert": alert, "status": response.status_code},
            )
            return False
        log.info("notify: %s alert sent to %s", alert, where, extra={"alert": alert})
        return True

    @property
    def redacted_url(self) -> str:
        """Scheme and host only: the path of an incoming-webhook URL is its secret."""
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname or '?'}/…"


def _more(items: list[str]) -> str:
    return f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
