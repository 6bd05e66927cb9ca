"""`reconciler check`'s 360Learning probes: the token, the custom fields, the groups, and the
write and bulk scopes.
"""

from __future__ import annotations

from reconciler.clients.learning_groups import BULK_OPERATIONS_PATH
from reconciler.commands.check_lines import CheckReport
from reconciler.config import Settings
from reconciler.core.custom_fields import compute_misfits
from reconciler.errors import ApiAuthFailed, ApiError
from reconciler.passes.apply import REFUSED_PLATFORM_KEY
from reconciler.passes.context import PassContext
from reconciler.passes.custom_fields import load_custom_fields

# -- 360Learning ----------------------------------------------------------------------------


def check_learning(settings: Settings, services: PassContext, report: CheckReport) -> None:
    learning = services.learning
    try:
        learning.check_access()
        report.ok("360Learning credentials and users:read scope work")
        check_groups(settings, services, report)
        platform = settings.learning.external_id_platform
        if platform:
            count = len(learning.list_external_ids(platform))
            report.ok(f"external ids on platform {platform!r} are readable ({count} links)")
            refused = services.store.load_service_state().get(REFUSED_PLATFORM_KEY)
            if refused == platform:
                report.fail(
                    f"learning.external_id_platform {platform!r}: 360Learning refused it "
                    "(reservedPlatformName) in the last pass, which wrote no external-id "
                    'links: choose another platform name, or "" for none'
                )
        check_custom_fields(settings, services, report)
        check_write_scopes(settings, services, report)
        if settings.sync.mode != "shadow":  # a shadow pass writes nothing, bulk or not
            check_bulk_scopes(services, report)
    except ApiError as exc:
        report.fail(f"360Learning: {exc}")


def check_custom_fields(settings: Settings, services: PassContext, report: CheckReport) -> None:
    """Every custom field resolves, and every constant of its rule fits it (customFields:read)."""
    if not settings.mapping.custom_fields:
        return
    try:
        resolved = load_custom_fields(
            services.learning, services.store, settings, refresh=True, record=False
        )
    except ApiAuthFailed as exc:
        if exc.status != 403:
            raise
        report.fail(
            "360Learning credential lacks the customFields:read scope, needed to resolve "
            "mapping.custom_fields: tick it under Settings > API v2"
        )
        return
    report.ok("360Learning scope customFields:read is granted")
    for problem in resolved.problems:
        report.fail(problem)
    for rule, definition in resolved.rules:
        number = next(i for i, r in enumerate(settings.mapping.custom_fields) if r is rule)
        where = f"mapping.custom_fields[{number}] ({rule.label})"
        if misfits := compute_misfits(rule, definition):
            for misfit in misfits:
                report.fail(f"{where}: {misfit}")
        else:
            allowed = len(definition.authorized_values)
            report.ok(
                f"360Learning custom field {definition.name!r} ({definition.type}"
                + (f", {allowed} authorized values" if allowed else "")
                + f") resolves for {where}"
            )


def check_groups(settings: Settings, services: PassContext, report: CheckReport) -> None:
    groups = {settings.learning.default_group_id: "learning.default_group_id"}
    groups.update({rule.group_id: "mapping.groups" for rule in settings.mapping.groups})
    for group_id, setting in groups.items():
        try:
            group = services.learning.get_group(group_id)
        except ApiAuthFailed as exc:
            if exc.status != 403:
                raise
            # Only check reads groups: a pass never does, so this is no failure.
            report.warn(
                "360Learning credential lacks the groups:read scope, so the group ids "
                f"({', '.join(sorted(set(groups.values())))}) cannot be checked; passes do "
                "not need it: tick it under Settings > API v2 to have them checked"
            )
            return
        report.check(
            group is not None,
            f"group {group_id} ({setting}) "
            + (f"is {group.get('name')!r}" if group else "does not exist in 360Learning"),
        )


def check_write_scopes(settings: Settings, services: PassContext, report: CheckReport) -> None:
    """Each write scope a pass uses, tested by a write that fails validation (no change).
    Shadow mode writes nothing, so it needs none and probes none."""
    if settings.sync.mode == "shadow":
        report.ok(
            "sync.mode = 'shadow': no write scope is needed (run check again after switching "
            "to 'apply': the cut-over needs users:write and groups:write)"
        )
        return
    needed = {
        "users:write": "to create, update and deactivate users",
        "groups:write": "to add memberships (the default group on adoption, mapping.groups)",
    }
    if settings.learning.external_id_platform:
        needed["externalIds:write"] = "to record links (learning.external_id_platform)"
    for scope, why in needed.items():
        if services.learning.probe_write_scope(scope):
            report.ok(f"360Learning scope {scope} is granted")
        else:
            report.fail(
                f"360Learning credential lacks the {scope} scope, needed {why}: tick it "
                "under Settings > API v2 (or ask your CSP to enable it for the company)"
            )


def check_bulk_scopes(services: PassContext, report: CheckReport) -> None:
    """Bulk memberships need two scopes: groups:bulk to start a job, bulkOperations:read to
    follow it. Either missing is no failure: memberships are then added one call each."""
    learning = services.learning
    can_start = learning.probe_write_scope("groups:bulk")
    can_follow = learning.probe_read_scope(BULK_OPERATIONS_PATH, "bulkOperations:read")
    one_by_one = "memberships are added one by one (slower for mass changes)"
    if can_start:
        report.ok("360Learning scope groups:bulk is granted")
    if can_follow:
        report.ok("360Learning scope bulkOperations:read is granted")
    if can_start and not can_follow:
        report.warn(
            "360Learning credential has groups:bulk but lacks bulkOperations:read, needed to "
            f"follow a bulk job: {one_by_one}; tick it under Settings > API v2"
        )
    elif not can_start:
        report.ok(
            f"360Learning scope groups:bulk is not granted: {one_by_one}; tick groups:bulk "
            "and bulkOperations:read under Settings > API v2 for bulk jobs"
        )
