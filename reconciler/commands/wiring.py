"""Wiring, the composition root: builds the clients, the store and the clock from settings.

Used by the CLI and the demo; the only place that turns settings into the objects a pass needs
(`PassContext`, in `passes.context`). It decides nothing and sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from reconciler.clients.hibob import HibobClient
from reconciler.clients.learning import LearningClient
from reconciler.config import Settings, require_secrets
from reconciler.passes.context import PassContext
from reconciler.store.database import Store

SECRETS = (
    "hibob.service_user_id",
    "hibob.service_user_token",
    "learning.client_id",
    "learning.client_secret",
    "learning.default_group_id",
)


def build_pass_context(
    settings: Settings,
    *,
    hibob_transport: httpx.BaseTransport | None = None,
    learning_transport: httpx.BaseTransport | None = None,
    store: Store | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> PassContext:
    require_secrets(settings, *SECRETS)
    store = store or Store(settings.store.path)
    hibob = HibobClient(settings.hibob, transport=hibob_transport, sleep=sleep, clock=clock)
    # The search answer's size cap follows the population the store last saw.
    hibob.expect_population(store.count_employees())
    return PassContext(
        settings=settings,
        hibob=hibob,
        learning=LearningClient(
            settings.learning, transport=learning_transport, sleep=sleep, clock=clock
        ),
        store=store,
    )
