"""Bob's webhook deliveries for the simulated Hibob: one signed v2 event per HR change, sent to
the upsert or the deactivation webhook, with a share of deliveries lost on the way.

Tests and the demo drive it after changing `HibobSimulator` (`events_for` says which events Bob
sends for a change). It sends only to loopback URLs (or through an in-process transport), never
anywhere else. Payload and signature come from `HibobSimulator.make_webhook` (api/hibob.md §5).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

from reconciler.sandbox.hibob import LOOPBACK_HOSTS, HibobSimulator

UPSERT_EVENTS = frozenset(
    {"employee.created", "employee.updated", "employee.activated", "employee.joined"}
)
# What Bob sends for each kind of HR change [api/hibob.md §5.2]: a termination effective today
# is `employee.left` and `employee.inactivated`; a rehire effective today is `employee.joined`.
EVENTS_OF_CHANGE = {
    "hire": ("employee.created", "employee.joined"),
    "title": ("employee.updated",),
    "department": ("employee.updated",),
    "email": ("employee.updated",),
    "manager": ("employee.updated",),
    "terminate": ("employee.left", "employee.inactivated"),
    "rehire": ("employee.joined",),
    "delete": ("employee.deleted",),
}
FIELD_UPDATES = {
    "title": ["work.title"],
    "department": ["work.department"],
    "email": ["root.email"],
    "manager": ["work.reportsTo"],
}


def events_for(change: str) -> tuple[str, ...]:
    return EVENTS_OF_CHANGE[change]


@dataclass
class Delivery:
    event_type: str
    hibob_id: str
    status: int | None
    """The receiver's answer; None when the delivery was lost."""


@dataclass
class WebhookSender:
    """Delivers Bob's events to a customer's two webhooks; `drop_ratio` of them never arrive."""

    hibob: HibobSimulator
    upsert_url: str
    upsert_secret: str
    deactivation_url: str
    deactivation_secret: str
    drop_ratio: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    client: httpx.Client | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        for url in (self.upsert_url, self.deactivation_url):
            host = httpx.URL(url).host
            if host not in LOOPBACK_HOSTS:
                raise ValueError(f"refusing to send webhooks to non-loopback host {host!r}")

    def send_change(self, change: str, hibob_id: str) -> list[Delivery]:
        """Every event Bob sends for one HR change (see EVENTS_OF_CHANGE)."""
        return [
            self.send(event, hibob_id, field_updates=FIELD_UPDATES.get(change))
            for event in events_for(change)
        ]

    def send(
        self, event_type: str, hibob_id: str, field_updates: list[str] | None = None
    ) -> Delivery:
        is_upsert = event_type in UPSERT_EVENTS
        url = self.upsert_url if is_upsert else self.deactivation_url
        secret = self.upsert_secret if is_upsert else self.deactivation_secret
        body, headers = self.hibob.make_webhook(
            event_type, hibob_id, secret, field_updates=field_updates
        )
        if self.rng.random() < self.drop_ratio:
            delivery = Delivery(event_type, hibob_id, None)
        else:
            client = self.client or httpx.Client(timeout=10.0, trust_env=False)
            try:
                status = client.post(url, content=body, headers=headers).status_code
            finally:
                if client is not self.client:
                    client.close()
            delivery = Delivery(event_type, hibob_id, status)
        self.deliveries.append(delivery)
        return delivery

    @property
    def lost(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status is None]
