"""`reconciler check`: probe the database and both APIs with the configured credentials,
changing nothing.

Called by the CLI only. Each line is `ok`, `WARN` (a heuristic that cannot tell a problem from an
unusual company; exit 0) or `FAIL` (the service cannot work; exit 1), naming the setting, scope,
field or Hibob category at fault. Never prints a secret: settings are shown by name, never value.
"""

from __future__ import annotations

import difflib
import ipaddress
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from reconciler.clients.hibob import HibobClient
from reconciler.clients.learning_groups import BULK_OPERATIONS_PATH
from reconciler.config import Settings, describe_secrets_in_file
from reconciler.core.custom_fields import compute_misfits
from reconciler.core.desired import required_fields
from reconciler.core.mapping import LANGS, default_rules
from reconciler.core.models import Employee
from reconciler.errors import ApiAuthFailed, ApiError, ReconcilerError, StoreUnusable
from reconciler.passes.apply import REFUSED_PLATFORM_KEY
from reconciler.passes.context import PassContext
from reconciler.passes.custom_fields import load_custom_fields
from reconciler.store.database import MIGRATIONS, Store

CRITICAL_FIELDS = (
    "root.id",
    "root.email",
    "internal.status",
    "internal.lifecycleStatus",
    "work.startDate",
)
EXPECTED_TABLES = frozenset(
    {
        "employees",
        "passes",
        "journal",
        "held_deactivations",
        "hints",
        "admin_requests",
        "service_state",
    }
)


class _Rollback(Exception):
    """Ends the database write probe without committing it."""


class CheckReport:
    """Prints `ok`/`WARN`/`FAIL` lines and counts them."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.failures, self.warnings = out, 0, 0

    def ok(self, text: str) -> None:
        print(f"ok   {text}", file=self.out)

    def warn(self, text: str) -> None:
        self.warnings += 1
        print(f"WARN {text}", file=self.out)

    def fail(self, text: str) -> None:
        self.failures += 1
        print(f"FAIL {text}", file=self.out)

    def check(self, is_ok: bool, text: str) -> None:
        (self.ok if is_ok else self.fail)(text)


def run_checks(
    settings: Settings,
    services: PassContext,
    out: TextIO,
    *,
    config_path: Path | None = None,
) -> int:
    """Probe everything; 0 when all is usable (warnings allowed), else 1. `config_path`: the
    settings file read (checked for secrets it should not hold)."""
    report = CheckReport(out)
    report.ok("settings are valid and every secret is set")
    check_exposure(settings, config_path, report)
    check_langs(settings, report)
    check_database(services.store, report)
    check_hibob(settings, services.hibob, report)
    check_learning(settings, services, report)
    summary = f"{report.failures} failed, {report.warnings} warning(s)"
    print(f"check: {summary}" if report.failures or report.warnings else "check: all ok", file=out)
    return 1 if report.failures else 0


def check_exposure(settings: Settings, config_path: Path | None, report: CheckReport) -> None:
    """What works but exposes: a secret in the settings file, a listener on every interface."""
    if config_path is not None and (advice := describe_secrets_in_file(config_path)):
        report.warn(advice)
    for setting, listen, who in (
        ("webhooks.listen", settings.webhooks.listen, "Hibob"),
        ("admin.listen", settings.admin.listen, "the admins' browsers"),
    ):
        host = listen.rpartition(":")[0].strip("[]")
        if host and not _is_loopback(host):
            report.warn(
                f"{setting} = {listen} accepts connections from the network: {who} must reach "
                "it over TLS, so put a TLS proxy in front (docs/service.md) and listen on "
                "127.0.0.1 behind it"
            )
    check_admin_page(settings, report)


def check_admin_page(settings: Settings, report: CheckReport) -> None:
    """With `admin.listen` set, `run` needs a well-formed password hash (never shown)."""
    if not settings.admin.listen:
        return
    from reconciler.service.admin_auth import PasswordHash

    text = settings.admin.password_hash.get_secret_value()
    if not text:
        report.fail(
            "admin.listen is set but admin.password_hash is missing: set "
            "RECONCILER_ADMIN__PASSWORD_HASH or the credential admin_password_hash to what "
            "`reconciler admin-password` prints"
        )
        return
    try:
        PasswordHash.parse(text)
    except ReconcilerError as exc:
        report.fail(str(exc))
        return
    report.ok(f"admin page: on {settings.admin.listen}, with a password hash")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# -- database -------------------------------------------------------------------------------


def check_database(store: Store, report: CheckReport) -> None:
    where = f"database {Path(store.path).resolve()}"
    try:
        with store.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            # A write inside a transaction that is rolled back: proves writability, leaves
            # nothing behind.
            conn.execute(
                "INSERT OR REPLACE INTO service_state (key, value) VALUES ('check_write_probe', '')"
            )
            raise _Rollback
    except _Rollback:
        pass
    except StoreUnusable as exc:  # busy, damaged or read-only: the store's line says what to do
        report.fail(str(exc))
        return
    except sqlite3.Error as exc:
        report.fail(f"{where} is not writable ({exc}): check store.path and its folder's owner")
        return
    if version > len(MIGRATIONS):
        report.fail(
            f"{where} has schema version {version}, newer than this reconciler knows "
            f"({len(MIGRATIONS)}): run the newer version or restore a backup"
        )
    elif missing := EXPECTED_TABLES - tables:
        report.fail(
            f"{where} is not a reconciler database (no {', '.join(sorted(missing))} "
            "table): check store.path"
        )
    else:
        report.ok(f"{where} is writable (schema version {version})")
        if not store.list_passes(1):
            # Right before the first run this is expected; later it means another database.
            report.warn(
                f"{where} holds no pass yet: if the service has run, store.path points "
                "elsewhere (use an absolute path)"
            )


# -- Hibob ----------------------------------------------------------------------------------


def check_hibob(settings: Settings, hibob: HibobClient, report: CheckReport) -> None:
    fields = required_fields(settings)
    try:
        metadata = {str(f["id"]): f for f in hibob.list_fields()}
        report.ok(f"Hibob credentials work; field metadata lists {len(metadata)} fields")
        employees = hibob.search_employees(fields)
    except ApiError as exc:
        report.fail(f"Hibob: {exc}")
        return
    report.check(bool(employees), f"Hibob search returned {len(employees)} employees")
    named = configured_fields(settings)
    for field_id in fields:
        check_field(field_id, named.get(field_id, []), metadata, employees, report)
    statuses = {e.value("internal.status") for e in employees}
    if "Inactive" in statuses:
        report.ok("Hibob returns inactive people (access rights cover all lifecycle statuses)")
    elif employees:
        # A young company may really have no leaver yet; access rights that hide inactive
        # people look the same from here.
        report.warn(
            "Hibob returns no inactive people: unless nobody ever left, give the service "
            'user access to every lifecycle status ("Select people by condition")'
        )
    check_labels(settings, hibob, metadata, employees, report)


def configured_fields(settings: Settings) -> dict[str, list[str]]:
    """Field id -> the settings naming it (scope conditions, mapping, extra fields)."""
    named: dict[str, list[str]] = {}
    for g, group in enumerate(settings.scope.groups):
        for c, condition in enumerate(group.conditions):
            named.setdefault(condition.field, []).append(f"scope.groups[{g}].conditions[{c}]")
    for r, rule in enumerate(settings.mapping.groups):
        named.setdefault(rule.field, []).append(f"mapping.groups[{r}]")
    for setting in ("organization", "lang_field"):
        if field_id := getattr(settings.mapping, setting):
            named.setdefault(field_id, []).append(f"mapping.{setting}")
    for target, field_rule in settings.mapping.fields.items():
        for field_id in field_rule.placeholders():
            named.setdefault(field_id, []).append(f"mapping.fields.{target}")
    for number, custom in enumerate(settings.mapping.custom_fields):
        for field_id in custom.placeholders():
            named.setdefault(field_id, []).append(f"mapping.custom_fields[{number}]")
    for field_id in settings.hibob.extra_fields:
        named.setdefault(field_id, []).append("hibob.extra_fields")
    return named


def check_field(
    field_id: str,
    settings_naming: list[str],
    metadata: dict[str, Any],
    employees: list[Employee],
    report: CheckReport,
) -> None:
    where = f" ({', '.join(settings_naming)})" if settings_naming else ""
    meta = metadata.get(field_id)
    if meta is None:
        report.fail(
            f"Hibob field {field_id}{where} does not exist in Hibob"
            + _did_you_mean(field_id, metadata)
        )
        return
    if not employees or any(e.has(field_id) for e in employees):
        return
    category = meta.get("categoryDisplayName") or meta.get("categoryId") or "?"
    text = (
        f"Hibob field {field_id}{where} is never returned: grant the service user View on "
        f"the {category!r} category"
    )
    if field_id in CRITICAL_FIELDS or settings_naming:
        report.fail(text)
    else:
        report.warn(text + " (optional)")


def check_labels(
    settings: Settings,
    hibob: HibobClient,
    metadata: dict[str, Any],
    employees: list[Employee],
    report: CheckReport,
) -> None:
    """Every label a scope condition or group rule compares against exists in Hibob."""
    lists: dict[str, set[str] | None] = {}
    for setting, field_id, labels in configured_labels(settings):
        meta = metadata.get(field_id)
        if meta is None or not labels:
            continue  # an unknown field is reported by check_field
        list_id = (meta.get("typeData") or {}).get("listId")
        if list_id:
            if list_id not in lists:
                lists[list_id] = _read_list(hibob, list_id, report)
            known = lists[list_id]
            if known is None:
                continue
            missing, found = f"is not in Hibob list {list_id!r}", f"exist in Hibob list {list_id!r}"
            complain = report.fail
        else:
            # A plain-text field has no list to compare with: only the labels employees hold,
            # and a label nobody holds yet may be fine (a site about to open).
            known = {label for e in employees if (label := e.label(field_id))}
            missing, found = "is held by no employee", "are held by employees"
            complain = report.warn
        for label in labels:
            if label not in known:
                complain(
                    f"label {label!r} of {field_id} ({setting}) {missing}"
                    + _did_you_mean(label, known)
                )
        if all(label in known for label in labels):
            report.ok(f"labels of {field_id} ({setting}) {found}")


def configured_labels(settings: Settings) -> Iterable[tuple[str, str, list[str]]]:
    for g, group in enumerate(settings.scope.groups):
        for c, condition in enumerate(group.conditions):
            labels = condition.values or ([condition.value] if condition.value is not None else [])
            yield f"scope.groups[{g}].conditions[{c}]", condition.field, labels
    for r, rule in enumerate(settings.mapping.groups):
        yield f"mapping.groups[{r}]", rule.field, [rule.label]


def _read_list(hibob: HibobClient, list_id: str, report: CheckReport) -> set[str] | None:
    try:
        return set(hibob.get_named_list(list_id).values())
    except ApiError as exc:
        report.warn(f"cannot read Hibob list {list_id!r} to check labels: {exc}")
        return None


def _did_you_mean(wanted: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(wanted, list(known), n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else ""


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


def check_langs(settings: Settings, report: CheckReport) -> None:
    """Every language a rule may write is one of 360Learning's codes."""
    rule = default_rules(settings)["lang"]
    where = "mapping.fields.lang" if "lang" in settings.mapping.fields else "mapping.lang"
    constants = [*rule.map.values(), rule.value, rule.default]
    if bad := sorted({c for c in constants if c and c not in LANGS}):
        report.fail(
            f"{where}: {', '.join(map(repr, bad))} is not a 360Learning language code "
            f"(one of {', '.join(sorted(LANGS)[:8])}, ...)"
        )


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
