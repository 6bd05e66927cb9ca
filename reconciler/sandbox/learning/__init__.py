"""Stateful simulator of the 360Learning API v2: token, users, managers, group roles, external ids,
bulk memberships and custom fields.

Tests, the demo and the benchmark mount `LearningSimulator.handle` through `httpx.MockTransport`
or `reconciler.sandbox.server.serve`. It follows shared/api/360learning.md and the Core API
OpenAPI file, quirks included; where both are silent the choice is marked "Sim decision".
It never touches the network, the environment or the real clock beyond the injected ones.
One module per resource: state, auth (token, rate limits), users (and managers), groups (and
roles), external_ids, bulk, custom_fields; http holds the wire plumbing, simulator the routing.
"""

from reconciler.sandbox.learning.bulk import BULK_MAX_CONCURRENT, BULK_MAX_ITEMS
from reconciler.sandbox.learning.external_ids import TARGET_TYPES
from reconciler.sandbox.learning.groups import PATH_ROLES
from reconciler.sandbox.learning.simulator import API_VERSION, LearningSimulator
from reconciler.sandbox.learning.state import BODY_ROLES, PROVISIONING_SCOPES, REAL_LIFETIME
from reconciler.sandbox.learning.users import LANGS

__all__ = [
    "API_VERSION",
    "BODY_ROLES",
    "BULK_MAX_CONCURRENT",
    "BULK_MAX_ITEMS",
    "LANGS",
    "PATH_ROLES",
    "PROVISIONING_SCOPES",
    "REAL_LIFETIME",
    "TARGET_TYPES",
    "LearningSimulator",
]
