"""`reconciler check`: probe the database and both APIs with the configured credentials,
changing nothing.

Called by the CLI only. Each line is `ok`, `WARN` (a heuristic that cannot tell a problem from an
unusual company; exit 0) or `FAIL` (the service cannot work; exit 1), naming the setting, scope,
field or Hibob category at fault. Never prints a secret: settings are shown by name, never value.

This module holds the runner and the local checks (exposure, admin page, database, langs); the
API probes are in check_hibob and check_learning, the line printer in check_lines.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path
from typing import TextIO

from reconciler.commands.check_hibob import check_hibob
from reconciler.commands.check_learning import check_learning
from reconciler.commands.check_lines import CheckReport
from reconciler.config import Settings, describe_secrets_in_file
from reconciler.core.mapping import LANGS, default_rules
from reconciler.errors import ReconcilerError, StoreUnusable
from reconciler.passes.context import PassContext
from reconciler.store.database import MIGRATIONS, Store

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
