"""LearningClient: 360Learning API v2 users, managers, group roles (bulk too), external ids.

Called by the reconcile pass (reads) and by apply (writes, possibly from a small thread pool).
The connection (token, throttles, paging) is `learning_api`'s, the user calls `learning_users`'s,
groups, memberships and bulk jobs `learning_groups`'s; this module puts them together. It must
not decide what to change; it only performs the calls asked of it.
"""

from __future__ import annotations

from reconciler.clients.learning_groups import LearningGroups
from reconciler.clients.learning_users import LearningUsers


class LearningClient(LearningUsers, LearningGroups):
    """Every call the product makes to 360Learning: `LearningUsers` and `LearningGroups` on one
    `LearningApi` connection (one token, one pair of throttles)."""
