"""The Hibob simulator's webhooks: the signed v2 event Bob sends for an HR change, its
Bob-Signature, the ping bodies of a webhook's setup, and delivery to a loopback URL only.

Mixed into `HibobSimulator`; `reconciler.sandbox.sender.WebhookSender` builds on `make_webhook`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from typing import Any

import httpx

from reconciler.sandbox.documents import Json
from reconciler.sandbox.hibob.employees import EmployeeStore

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def sign(body: bytes, secret: str) -> str:
    """Bob-Signature: Base64 of HMAC-SHA512 over the raw body, keyed with the webhook secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()


def ping_bodies() -> list[bytes]:
    """What Bob POSTs when a webhook is set up: plain text first, then JSON if that failed."""
    return [b"Ping test", b'{"text":"Ping test"}']


class WebhooksMixin(EmployeeStore):
    ping_bodies = staticmethod(ping_bodies)

    # ---- webhooks --------------------------------------------------------------------------

    def make_webhook(
        self,
        event_type: str,
        hibob_id: str,
        secret: str,
        *,
        field_updates: list[str] | None = None,
        triggered_at: datetime.datetime | None = None,
        triggered_by: str = "system",
    ) -> tuple[bytes, dict[str, str]]:
        """A v2 event as Bob sends it: raw body bytes and headers (with Bob-Signature)."""
        data: Json = {"employeeId": hibob_id}
        if event_type == "employee.updated":
            # Element shape of fieldUpdates is an open question; we send dotted field ids.
            data["fieldUpdates"] = list(field_updates or [])
        if event_type == "employee.deleted":
            record = self.records.get(hibob_id) or self._deleted.get(hibob_id) or {}
            data["email"] = record.get("root.email")
        at = triggered_at or datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        if at.tzinfo is not None:
            at = at.astimezone(datetime.UTC).replace(tzinfo=None)
        envelope = {
            "companyId": self.company_id,
            "type": event_type,
            "triggeredBy": triggered_by,
            "triggeredAt": at.isoformat(),
            "version": "v2",
            "data": data,
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        return body, {"Bob-Signature": sign(body, secret), "Content-Type": "application/json"}

    def deliver_webhook(
        self,
        url: str,
        event_type: str,
        hibob_id: str,
        secret: str,
        *,
        client: httpx.Client | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """POST a signed event to a loopback URL (refuses any other host)."""
        host = httpx.URL(url).host
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"refusing to deliver a webhook to non-loopback host {host!r}")
        body, headers = self.make_webhook(event_type, hibob_id, secret, **kw)
        if client is not None:
            return client.post(url, content=body, headers=headers)
        with httpx.Client(timeout=10.0, trust_env=False) as own:
            return own.post(url, content=body, headers=headers)
