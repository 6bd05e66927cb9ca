"""Stateful simulator of Hibob's People read API and named lists, and of the webhooks Bob sends.

Tests, the demo and the benchmark mount `HibobSimulator.handle` through `httpx.MockTransport`
or `reconciler.sandbox.server.serve`. It follows api/hibob.md, quirks included: silent
omission of fields and people, the dual slash/nested layout, 401 with an empty body, strict
filters, per-endpoint rate limits, a WAF. Only `deliver_webhook` sends anything, to loopback.
One module per resource: employees (the store and HR changes), people (search and read),
metadata (named lists, fields), limits (rate limits, WAF), webhooks; simulator routes.
"""

from reconciler.sandbox.hibob.employees import ALIASES, EMPLOYEE_REFERENCES, LIST_FIELDS
from reconciler.sandbox.hibob.metadata import category
from reconciler.sandbox.hibob.simulator import HibobSimulator
from reconciler.sandbox.hibob.webhooks import LOOPBACK_HOSTS, ping_bodies, sign

__all__ = [
    "ALIASES",
    "EMPLOYEE_REFERENCES",
    "LIST_FIELDS",
    "LOOPBACK_HOSTS",
    "HibobSimulator",
    "category",
    "ping_bodies",
    "sign",
]
