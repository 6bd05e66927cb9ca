"""The admin page's WSGI app: sign-in, sessions, CSRF, routing, rendering, and `ask` (an
action as a request row, the very one the CLI writes, then a redirect to its outcome).

`admin_page` gives it the routes. Every page but sign-in needs a session; every POST needs the
session's CSRF token, else 403 and nothing changes. Nothing here renders a secret.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from reconciler.config import Settings
from reconciler.service import admin_views as views
from reconciler.service.admin_auth import PasswordHash, Session, Sessions, SignInThrottle
from reconciler.service.admin_auth import is_same_token as _same
from reconciler.service.admin_http import (
    Request,
    Response,
    StartResponse,
    Templates,
    cookie_header,
    is_loopback,
    redirect,
    static_file,
    url,
)
from reconciler.service.admin_requests import list_releasable
from reconciler.store.database import Store

log = logging.getLogger("reconciler.service.admin_page")

SESSION_COOKIE = "reconciler_admin"
SIGNIN_COOKIE = "reconciler_signin"
SOURCE = "admin page"
REQUEST_SECONDS = 3600.0
"""A request the page leaves expires if the service has not claimed it within this long."""
SHOWN_JOURNAL = 50
Handler = Callable[["AdminPage", Request, Session, re.Match[str]], Response]
Routes = list[tuple[str, re.Pattern[str], Handler]]


class AdminPage:
    """The WSGI app. `is_ready` is the service's readiness (ready, cause)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        page_views: views.AdminViews,
        *,
        is_ready: Callable[[], tuple[bool, str]],
        clock: Callable[[], datetime],
        routes: Routes,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.store, self.views, self.routes = settings, store, page_views, routes
        self.is_ready, self.clock = is_ready, clock
        self.password = PasswordHash.parse(settings.admin.password_hash.get_secret_value())
        self.sessions = Sessions(
            idle_seconds=settings.admin.session_idle_minutes * 60,
            max_seconds=settings.admin.session_max_hours * 3600,
            monotonic=monotonic,
        )
        self.throttle = SignInThrottle(monotonic=monotonic)
        host = settings.admin.listen.rpartition(":")[0]
        self.is_loopback_listener = is_loopback(host)
        # On loopback, the peer is the TLS proxy in front (or someone on this host already):
        # its X-Forwarded-For/-Proto say who is asking and that the browser uses https.
        self.trusted_proxy = host.strip("[]") if self.is_loopback_listener else None
        self.templates = Templates()

    def __call__(
        self, environ: Mapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        try:
            response = self.handle(request)
        except Exception:
            log.exception("admin page: %s %s failed", request.method, request.path)
            response = self.templates.render("error.html", 500, message="Something went wrong.")
        return response(start_response)

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/static/") and request.method == "GET":
            return static_file(request.path.removeprefix("/static/")) or self.not_found()
        if request.path == "/favicon.ico":  # asked for beside every page: never a sign-in page
            return static_file("favicon.svg") or self.not_found()
        if request.path == "/sign-in":
            if request.method == "POST":
                return self._sign_in(request)
            return self._sign_in_page(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.touch(token)
        if session is None:
            if request.method != "GET":
                return self._forbidden("Your session has ended: sign in again.")
            reason = "expired" if token else None
            target = request.path if request.path.startswith("/") else "/"
            return redirect(url("/sign-in", next=target, reason=reason))
        if request.method == "POST" and not _same(request.field("csrf"), session.csrf):
            log.warning("admin page: POST %s without a valid CSRF token refused", request.path)
            return self._forbidden("This form is out of date or was not sent by this page.")
        if request.method == "POST" and request.path == "/sign-out":
            self.sessions.end(token)
            return redirect("/sign-in?reason=signed-out", [self._clear_session(request)])
        for method, pattern, handler in self.routes:
            if method == request.method and (match := pattern.match(request.path)):
                return handler(self, request, session, match)
        return self.not_found()

    # -- rendering ----------------------------------------------------------------------------
    def render(
        self, template: str, request: Request, session: Session, code: int = 200, **context: Any
    ) -> Response:
        mode = getattr(self.settings.sync, "mode", "apply")
        return self.templates.render(
            template,
            code,
            csrf=session.csrf,
            path=request.path,
            is_shadow=mode == "shadow",
            held_count=len(list_releasable(self.store)),
            quarantined_count=len(self.store.list_quarantined(self.clock())),
            **context,
        )

    def _forbidden(self, message: str) -> Response:
        return self.templates.render("error.html", 403, message=message)

    def not_found(self) -> Response:
        return self.templates.render("error.html", 404, message="There is no such page.")

    # -- sign-in ------------------------------------------------------------------------------
    def _is_secure(self, request: Request) -> bool:
        return request.is_https or not self.is_loopback_listener

    def _sign_in_page(
        self, request: Request, status: int = 200, error: str | None = None
    ) -> Response:
        # One token per browser: a second sign-in page (another tab) must not spoil the first.
        given = request.cookies.get(SIGNIN_COOKIE, "")
        form_token = (
            given if re.fullmatch(r"[A-Za-z0-9_-]{32}", given) else secrets.token_urlsafe(24)
        )
        response = self.templates.render(
            "sign_in.html",
            status,
            form_token=form_token,
            next=_safe_next(request.query.get("next") or request.field("next")),
            reason=request.query.get("reason"),
            error=error,
        )
        cookie = cookie_header(SIGNIN_COOKIE, form_token, is_secure=self._is_secure(request))
        response.headers.append(("Set-Cookie", cookie))
        return response

    def _sign_in(self, request: Request) -> Response:
        if not _same(request.field("form_token"), request.cookies.get(SIGNIN_COOKIE, "")):
            return self._forbidden("This sign-in form is out of date: open the page again.")
        source = request.peer
        wait = self.throttle.wait_seconds(source)
        if wait > 0:
            log.warning("admin page: sign-in from %s refused, %.0f s too early", source, wait)
            response = self._sign_in_page(
                request,
                429,
                f"Too many failed sign-ins: wait {int(wait) + 1} s before trying again.",
            )
            response.headers.append(("Retry-After", str(int(wait) + 1)))
            return response
        if not self.password.verify(request.field("password")):
            count = self.throttle.record_failure(source)
            log.warning("admin page: failed sign-in from %s (%d in a row)", source, count)
            return self._sign_in_page(request, 401, "That password is not right.")
        self.throttle.record_success(source)
        token, _ = self.sessions.create()
        log.info("admin page: signed in from %s", source)
        secure = self._is_secure(request)
        return redirect(
            _safe_next(request.field("next")),
            [
                ("Set-Cookie", cookie_header(SESSION_COOKIE, token, is_secure=secure)),
                ("Set-Cookie", cookie_header(SIGNIN_COOKIE, "", is_secure=secure, max_age=0)),
            ],
        )

    def _clear_session(self, request: Request) -> tuple[str, str]:
        cookie = cookie_header(SESSION_COOKIE, "", is_secure=self._is_secure(request), max_age=0)
        return ("Set-Cookie", cookie)

    # -- actions: request rows, as the CLI writes them --------------------------------------
    def ask(self, request: Request, kind: str, args: dict[str, Any]) -> Response:
        at = self.clock()
        request_id = self.store.save_request(
            kind,
            {**args, "source": SOURCE},
            at,
            expires_at=at + timedelta(seconds=REQUEST_SECONDS),
        )
        log.info(
            "admin page: %s requested from %s (request %d)",
            kind,
            request.peer,
            request_id,
            extra={"request_id": request_id, "source": SOURCE},
        )
        return redirect(f"/requests/{request_id}")


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never `//host`, which a browser reads as another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
