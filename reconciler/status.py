"""What `status` and `check` report: read the store, or probe both APIs, and print plainly.

Called by the CLI only. Never prints a secret: settings are shown by name, never by value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TextIO

from reconciler.config import Settings
from reconciler.desired import required_fields
from reconciler.errors import ApiError
from reconciler.reconcile import Services
from reconciler.store import Store

CRITICAL_FIELDS = ("root.id", "root.email", "internal.status", "internal.lifecycleStatus",
                   "work.startDate")


def collect_status(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    passes = store.list_passes(10)
    real = [p for p in passes if not p["dry_run"]]
    last = real[0] if real else None
    running = store.is_instance_running()
    service = store.load_service_state() if running else {}
    return {
        "database": store.path,
        "service_running": running,
        "last_pass": last,
        "last_success_at": store.last_successful_pass_at(),
        "next_pass_at": service.get("next_incremental_at"),
        "next_full_resync_at": service.get("next_full_at"),
        "recent_passes": passes,
        "held_deactivations": store.list_held(),
        "quarantined": store.list_quarantined(now),
        "pending_hints": store.count_pending_hints(),
    }


def print_status(status: dict[str, Any], out: TextIO) -> None:
    running = "running" if status["service_running"] else "not running"
    print(f"database {status['database']} (service {running})", file=out)
    last = status["last_pass"]
    if last:
        counts = ", ".join(f"{k} {v}" for k, v in last["counts"].items()) or "no changes"
        print(f"last pass #{last['id']} {last['kind']} {last['outcome']} at "
              f"{last['finished_at'] or last['started_at']}: {counts}", file=out)
        if last["error"]:
            print(f"  {last['error']}", file=out)
    else:
        print("no pass yet", file=out)
    print(f"last success: {status['last_success_at'] or 'never'}", file=out)
    if status["next_pass_at"]:
        print(f"next scheduled pass: {status['next_pass_at']} (full resync "
              f"{status['next_full_resync_at'] or 'not scheduled'})", file=out)
    print(f"pending hints: {status['pending_hints']}", file=out)
    held = status["held_deactivations"]
    print(f"held deactivations: {len(held)}", file=out)
    for row in held:
        print(f"  {row['employee_id']}  {row['email'] or '-'}  {row['reason']}", file=out)
    quarantined = status["quarantined"]
    print(f"quarantined employees: {len(quarantined)}", file=out)
    for row in quarantined:
        print(f"  {row['employee_id']}  until {row['until']}  {row['reason']}", file=out)


def run_checks(settings: Settings, services: Services, out: TextIO) -> int:
    """Probe both APIs with the configured credentials; 0 when all is usable, else 1."""
    failures = 0

    def report(ok: bool, text: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {text}", file=out)

    report(True, "settings are valid and every secret is set")
    fields = required_fields(settings)
    try:
        employees = services.hibob.search_employees(fields)
        report(bool(employees), f"Hibob search returned {len(employees)} employees")
        for field_id in fields:
            seen = sum(1 for e in employees if e.has(field_id))
            if employees and seen == 0:
                critical = field_id in CRITICAL_FIELDS
                report(not critical, f"Hibob field {field_id} is never returned: grant the "
                                     "service user View on its category"
                                     + ("" if critical else " (optional)"))
        statuses = {e.value("internal.status") for e in employees}
        report("Inactive" in statuses or not employees,
               "Hibob returns inactive people (access rights cover all lifecycle statuses)"
               if "Inactive" in statuses else
               "Hibob returns no inactive people: check the service user's access rights")
    except ApiError as exc:
        report(False, f"Hibob: {exc}")
    try:
        services.learning.check_access()
        report(True, "360Learning credentials and users:read scope work")
        _check_learning_setup(settings, services, report)
    except ApiError as exc:
        report(False, f"360Learning: {exc}")
    return 1 if failures else 0


def _check_learning_setup(settings: Settings, services: Services, report) -> None:
    groups = {settings.learning.default_group_id: "learning.default_group_id"}
    groups.update({rule.group_id: "mapping.groups" for rule in settings.mapping.groups})
    for group_id, setting in groups.items():
        group = services.learning.get_group(group_id)
        report(group is not None,
               f"group {group_id} ({setting}) " + (f"is {group.get('name')!r}" if group else
                                                   "does not exist in 360Learning"))
    platform = settings.learning.external_id_platform
    if platform:
        count = len(services.learning.list_external_ids(platform))
        report(True, f"external ids on platform {platform!r} are readable ({count} links)")
