"""`reconciler check`: probe both APIs with the configured credentials, changing nothing.

Called by the CLI only. Says exactly which setting, scope or Hibob permission is at fault.
Never prints a secret: settings are shown by name, never by value.
"""

from __future__ import annotations

from typing import TextIO

from reconciler.config import Settings
from reconciler.desired import required_fields
from reconciler.errors import ApiError
from reconciler.wiring import Services

CRITICAL_FIELDS = ("root.id", "root.email", "internal.status", "internal.lifecycleStatus",
                   "work.startDate")


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
