"""Adoption scenario (issue 20, target 2): the migration case, every employee already has a
360Learning account, nobody is linked yet, external-id links off, no write needed.

`reconciler sync` on a fresh store adopts everyone, then `reconciler sync --full` runs over the
platform it just linked (the yardstick: adoption within 2x of it) and an unchanged
`reconciler sync` (1 Hibob call, 0 360Learning calls). The 360Learning simulator enforces its
read limit and the product its default read ceiling (40/s). Figures: wall time of each, the
per-user roles reads (`GET /api/v2/users/{id}/roles`), the group-membership pages, all calls.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from bench.common import NOW, build_pass_context
from bench.steady import ROOT, _reconciler_command, measure, served_hibob, settings_file
from reconciler.config import load_settings
from reconciler.passes.reconcile import read_and_plan
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

USER_ROLES = re.compile(r"^/api/v2/users/[^/]+/roles$")
GROUP_ROLES = re.compile(r"^/api/v2/groups/[^/]+/roles$")
ADMINS = 10


def _kinds(requests: list[tuple[str, str, int]]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for method, path, _ in requests:
        if "oauth2" in path:
            kinds["token"] += 1
        elif method == "GET" and USER_ROLES.match(path):
            kinds["user roles reads"] += 1
        elif method == "GET" and GROUP_ROLES.match(path):
            kinds["group membership pages"] += 1
        elif method == "GET":
            kinds["other reads"] += 1
        else:
            kinds["writes"] += 1
    return kinds


def bench_adoption(size: int, folder: Path) -> dict:
    learning = LearningSimulator(enforce_rate_limits=True, now=lambda: NOW)
    with served_hibob(size) as (hibob_url, _), serve(learning.handle) as learning_server:
        # As bench/steady.py, without manager links: the migration case needs no write.
        config = settings_file(folder, learning)
        config.write_text(config.read_text().replace("manager = true", "manager = false"))
        environ = {
            "RECONCILER_CONFIG": str(config),
            "RECONCILER_HIBOB__BASE_URL": hibob_url,
            "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
            "RECONCILER_LEARNING__BASE_URL": learning_server.url,
            "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
            "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_LEARNING__EXTERNAL_ID_PLATFORM": "",
            "RECONCILER_STORE__PATH": str(folder / f"adoption-{size}.db"),
        }
        # Seed every account as the plan would write it, from a throwaway store: no link.
        scratch = dict(environ, RECONCILER_STORE__PATH=str(folder / f"scratch-{size}.db"))
        services = build_pass_context(load_settings(environ=scratch))
        plan = read_and_plan(services, "incremental", now=NOW)
        services.close_clients()
        services.store.close()
        accounts = 0
        for action in plan.actions:
            attributes = {k: v for k, v in action.changes.items() if v is not None}
            user_id = learning.seed_user(attributes.pop("mail"), **attributes)
            if action.state and len(action.state.groups) > 1:  # the rules' groups too
                for group in action.state.groups:
                    learning.add_role(user_id, group.group_id, group.role)
            if accounts < ADMINS:
                learning.add_role(user_id, learning.root_group_id, "admin")
            accounts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        env.update(environ)
        rows = {}
        for name, argv in (
            ("adoption", [_reconciler_command(), "sync"]),
            ("unchanged", [_reconciler_command(), "sync"]),
            ("full", [_reconciler_command(), "sync", "--full"]),
        ):
            before = len(learning.requests)
            measured = measure(argv, env, folder)
            if measured.exit_code not in (0, 2):
                raise RuntimeError(f"{name} failed: {measured.stdout[-500:]}")
            kinds = _kinds(learning.requests[before:])
            rows[name] = {
                "wall_seconds": measured.wall_seconds,
                "learning_calls": sum(kinds.values()),
                "calls": dict(sorted(kinds.items())),
                "output": measured.stdout.strip().splitlines()[-1:],
            }
    adoption, full = rows["adoption"], rows["full"]
    return {
        "scenario": "adoption",
        "employees": size,
        "accounts": accounts,
        "admins": ADMINS,
        "adoption": adoption,
        "unchanged": rows["unchanged"],
        "full": full,
        "user_roles_reads": adoption["calls"].get("user roles reads", 0),
        "wall_ratio_to_full": round(adoption["wall_seconds"] / full["wall_seconds"], 2),
        "command": f"python -m bench --only adoption --adoption {size}",
        "root": str(ROOT),
    }
