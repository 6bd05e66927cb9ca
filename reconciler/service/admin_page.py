"""The admin page's pages, for HR and IT admins: status, find and explain an employee, held
deactivations, quarantine, full resync, an action's outcome, history and its downloads, and the
shadow report.

`lifecycle` serves `build_admin_page` on `admin.listen`. Actions go through `AdminPage.ask`
(request rows, as the CLI's); reading goes through `admin_views` and the CLI's own status and
explain. Jinja2 escapes everything Hibob or 360Learning said.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from reconciler.config import Settings
from reconciler.core.vocabulary import PassKind
from reconciler.errors import ConfigError
from reconciler.passes.progress import describe_progress
from reconciler.passes.shadow import shadow_report
from reconciler.service import admin_views as views
from reconciler.service.admin_app import AdminPage, Handler, Routes
from reconciler.service.admin_auth import Session
from reconciler.service.admin_http import Request, Response, redirect, url
from reconciler.service.admin_requests import check_release, compute_held_token
from reconciler.store.database import Store, utc_text

log = logging.getLogger("reconciler.service.admin_page")

SHOWN_JOURNAL = 50
SHOWN_SHADOW_ROWS = 200
SHADOW_SECTIONS = (
    ("misses", "Misses: still open past the lag"),
    ("pending", "Pending: open, within the lag"),
    ("lag", "Lag: closed by the other connector within the lag"),
    ("late", "Late: closed by the other connector after the lag"),
)
ROUTES: Routes = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + r"\Z"), handler))
        return handler

    return register


def build_admin_page(
    settings: Settings,
    store: Store,
    page_views: views.AdminViews | None,
    *,
    is_ready: Callable[[], tuple[bool, str]],
    clock: Callable[[], datetime],
    monotonic: Callable[[], float] = time.monotonic,
) -> AdminPage | None:
    """The app when `admin.listen` is set (None when not); ConfigError naming the setting when
    no password hash is configured, or a malformed one."""
    admin = settings.admin
    if not admin.listen:
        return None
    if not admin.password_hash.get_secret_value():
        raise ConfigError(
            "setting admin.password_hash is missing (admin.listen is set): set "
            "RECONCILER_ADMIN__PASSWORD_HASH or the systemd credential admin_password_hash "
            "to what `reconciler admin-password` prints"
        )
    if page_views is None:
        raise ConfigError("setting admin.listen: this entry point serves no admin page")
    return AdminPage(
        settings,
        store,
        page_views,
        is_ready=is_ready,
        clock=clock,
        routes=ROUTES,
        monotonic=monotonic,
    )


# -- pages ------------------------------------------------------------------------------------
@route("GET", r"/")
def status_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    now = page.clock()
    status = page.views.collect_status(page.store, page.settings, now)
    is_ready, cause = page.is_ready()
    progress = status.get("pass_in_progress")
    return page.render(
        "status.html",
        request,
        session,
        status=status,
        is_ready=is_ready,
        readiness=cause,
        progress=progress,
        progress_text=describe_progress(progress) if progress else None,
        describe_request=views.describe_request,
    )


@route("GET", r"/employees")
def search_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    query = request.query.get("q", "").strip()
    results = views.search_employees(page.store, query) if query else []
    exact = [r for r in results if r["is_exact"]]
    if query and len(exact) == 1:
        return redirect(url(f"/employees/{exact[0]['employee_id']}", q=query))
    return page.render("search.html", request, session, query=query, results=results)


@route("GET", r"/employees/(?P<id>[^/]+)")
def explain_page(
    page: AdminPage, request: Request, session: Session, match: re.Match[str]
) -> Response:
    hibob_id = match["id"]
    code, text = page.views.explain(hibob_id, page.clock())
    return page.render(
        "explain.html",
        request,
        session,
        404 if code else 200,
        employee_id=hibob_id,
        query=request.query.get("q", ""),
        name=views.display_name(page.store, hibob_id),
        is_known=code == 0,
        sections=views.compute_sections(text),
    )


@route("POST", r"/employees/(?P<id>[^/]+)/reconcile")
def reconcile_now(
    page: AdminPage, request: Request, session: Session, match: re.Match[str]
) -> Response:
    return page.ask(request, "targeted", {"employee": match["id"]})


def _held_context(page: AdminPage) -> dict[str, Any]:
    held = page.store.list_held()
    releasable = [row for row in held if row.is_releasable]
    return {
        "held": held,
        "names": views.compute_names(page.store, (row.hibob_id for row in held)),
        "releasable": releasable,
        "token": compute_held_token(releasable) if releasable else None,
    }


@route("GET", r"/held")
def held_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    return page.render("held.html", request, session, refusal=None, **_held_context(page))


@route("POST", r"/held/release")
def release(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    token = request.field("token")
    _ids, refusal = check_release(page.store, {"token": token})
    if refusal:
        log.warning("admin page: release of list %s refused: %s", token, refusal)
        return page.render(
            "held.html", request, session, 409, refusal=refusal, **_held_context(page)
        )
    return page.ask(request, "release", {"token": token})


@route("GET", r"/quarantine")
def quarantine_page(
    page: AdminPage, request: Request, session: Session, _: re.Match[str]
) -> Response:
    rows = page.store.list_quarantined(page.clock())
    names = views.compute_names(page.store, (row.hibob_id for row in rows))
    return page.render("quarantine.html", request, session, rows=rows, names=names)


@route("POST", r"/quarantine/clear")
def clear_quarantine(
    page: AdminPage, request: Request, session: Session, _: re.Match[str]
) -> Response:
    ids = request.fields("id")
    if not ids and request.field("all") != "1":
        return redirect("/quarantine")
    return page.ask(request, "quarantine-clear", {"ids": ids or None})


@route("GET", r"/resync")
def resync_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    passes = [
        p for p in page.store.list_passes(30, include_dry_runs=False) if p.kind == PassKind.FULL
    ]
    return page.render("resync.html", request, session, passes=passes[:5])


@route("POST", r"/resync")
def resync(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    return page.ask(
        request, "resync", {"retry_quarantined": request.field("retry_quarantined") == "1"}
    )


@route("GET", r"/requests/(?P<id>\d+)")
def request_page(
    page: AdminPage, request: Request, session: Session, match: re.Match[str]
) -> Response:
    row = page.store.get_request(int(match["id"]))
    if row is None:
        return page.not_found()
    pass_row = page.store.get_pass(row.pass_id) if row.pass_id else None
    journal = page.store.list_journal(pass_id=row.pass_id) if row.pass_id else []
    return page.render(
        "request.html",
        request,
        session,
        row=row,
        what=views.describe_request(row),
        pass_row=pass_row,
        journal=journal[:SHOWN_JOURNAL],
        names=views.compute_names(page.store, (r.hibob_id for r in journal[:SHOWN_JOURNAL])),
        more=max(0, len(journal) - SHOWN_JOURNAL),
    )


def _history(page: AdminPage, request: Request) -> tuple[views.HistoryFilter, Any, str | None]:
    wanted = views.HistoryFilter(
        employee=request.query.get("employee", "").strip(),
        action=request.query.get("action", "")
        if request.query.get("action") in views.ACTIONS
        else "",
        outcome=request.query.get("outcome", "")
        if request.query.get("outcome") in views.OUTCOMES
        else "",
        since=request.query.get("since", "").strip(),
    )
    since_text = None
    if wanted.since:
        try:
            since_text = page.views.parse_since(wanted.since, page.clock())
        except ValueError:
            return (
                wanted,
                [],
                (
                    f"{wanted.since!r} is not a date (2026-11-28), a time (2026-11-28T09:30) or a "
                    "duration (90m, 2h, 3d, 1w)"
                ),
            )
    rows, error = views.list_history(page.store, wanted, since_text)
    return wanted, rows, error


@route("GET", r"/history")
def history_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    wanted, rows, error = _history(page, request)
    return page.render(
        "history.html",
        request,
        session,
        400 if error else 200,
        wanted=wanted,
        rows=rows[: views.HISTORY_SHOWN],
        names=views.compute_names(page.store, (r.hibob_id for r in rows[: views.HISTORY_SHOWN])),
        total=len(rows),
        error=error,
        actions=views.ACTIONS,
        outcomes=views.OUTCOMES,
        query={k: v for k, v in vars(wanted).items() if v},
    )


@route("GET", r"/history\.(?P<format>csv|jsonl)")
def history_download(
    page: AdminPage, request: Request, session: Session, match: re.Match[str]
) -> Response:
    wanted, rows, error = _history(page, request)
    if error:
        return page.templates.render("error.html", 400, message=error)
    rows.reverse()  # a download reads oldest first, as `history` prints
    stamp = utc_text(page.clock())[:16].replace(":", "").replace("-", "")
    if match["format"] == "csv":
        body, kind = views.render_csv(rows), "text/csv; charset=utf-8"
    else:
        body, kind = views.render_json_lines(rows), "application/x-ndjson; charset=utf-8"
    name = f"reconciler-history-{stamp}.{match['format']}"
    return Response(body, 200, kind, [("Content-Disposition", f'attachment; filename="{name}"')])


@route("GET", r"/shadow")
def shadow_page(page: AdminPage, request: Request, session: Session, _: re.Match[str]) -> Response:
    report = shadow_report(page.store, page.settings, page.clock())
    sections = [
        (name, title, report[name][:SHOWN_SHADOW_ROWS], len(report[name]))
        for name, title in SHADOW_SECTIONS
    ]
    for section in sections:
        for row in section[2]:
            row["name"] = views.display_name(page.store, row["employee_id"])
    return page.render("shadow.html", request, session, report=report, sections=sections)
