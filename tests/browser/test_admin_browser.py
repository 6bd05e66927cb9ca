"""The admin page driven in Chromium against `reconciler run`: sign-in (wrong password, cookie
flags, an expired session), a hostile name shown as text with no script run, search by a former
email, release (and a refused release when the list changed), a refused CSRF-less POST, the
resync button, a CSV download that parses, and no request leaving the admin listener. Each page
is screenshotted at 1280 px and at phone width."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    HOSTILE,
    PASSWORD,
    Deployment,
    requires_chromium,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, requires_chromium]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
OUTCOME_SECONDS = 60_000  # ms: a pass on the simulators takes about a second


class Seen:
    """Every request the browser made, and every dialog a script opened."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


@pytest.fixture(scope="module")
def context(browser: Any, deployment: Deployment, seen: Seen) -> Iterator[Any]:
    context = browser.new_context(base_url=deployment.url, viewport=DESKTOP, accept_downloads=True)
    context.on("request", lambda request: seen.urls.append(request.url))
    # Anything not for the admin listener is refused before it leaves the browser.
    context.route(
        re.compile(r"^(?!" + re.escape(deployment.url) + r"/).*"), lambda route: route.abort()
    )
    yield context
    context.close()


@pytest.fixture(scope="module")
def page(context: Any, seen: Seen) -> Any:
    page = context.new_page()

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def sign_in(page: Any, password: str = PASSWORD) -> None:
    page.goto("/sign-in")
    page.fill("#password", password)
    page.click("button[type=submit]")


def wait_outcome(page: Any) -> str:
    """On a request's page: wait for the outcome (the page refreshes itself until then)."""
    page.wait_for_selector("text=Finished", timeout=OUTCOME_SECONDS)
    page.wait_for_function(
        "() => !document.querySelector('meta[http-equiv=refresh]')", timeout=OUTCOME_SECONDS
    )
    return str(page.inner_text("main"))


def shoot(page: Any, name: str) -> None:
    screenshot(page, name)
    page.set_viewport_size(PHONE)
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_sign_in_refuses_a_wrong_password_then_sets_a_strict_httponly_cookie(
    page: Any, context: Any, deployment: Deployment
) -> None:
    sign_in(page, "not the password")
    assert "That password is not right" in page.inner_text("main")
    shoot(page, "sign-in")
    sign_in(page)
    page.wait_for_url(deployment.url + "/")
    cookie = next(c for c in context.cookies() if c["name"] == "reconciler_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # a loopback listener without a proxy
    assert "Readiness" in page.inner_text("main")
    shoot(page, "status")


def test_a_hostile_name_is_shown_as_text_and_runs_no_script(
    page: Any, deployment: Deployment, seen: Seen
) -> None:
    page.goto("/employees?q=onerror")
    assert HOSTILE in page.inner_text("main")
    shoot(page, "search")
    page.click(f"a[href='/employees/{deployment.hostile_id}']")
    page.wait_for_selector("text=Reconcile now")
    assert HOSTILE in page.inner_text("main")
    assert page.locator("main img").count() == 0
    shoot(page, "explain")
    assert seen.dialogs == []


def test_the_resync_button_runs_a_full_pass_and_shows_its_outcome(
    page: Any, deployment: Deployment
) -> None:
    page.goto("/resync")
    shoot(page, "resync")
    page.click("text=Full resync now")
    text = wait_outcome(page)
    assert "full pass" in text and "from the admin page" in text
    shoot(page, "resync-outcome")
    assert "from the admin page" in deployment.log.read_text()


def test_search_by_a_former_email_reaches_the_explain_view(
    page: Any, deployment: Deployment
) -> None:
    hibob_id = deployment.initial_active[3]
    former = deployment.hibob.records[hibob_id]["root.email"]
    deployment.hibob.update_employee(hibob_id, **{"root.email": "moved.on@example.com"})
    page.goto("/resync")
    page.click("text=Full resync now")
    wait_outcome(page)
    page.goto("/employees")
    page.fill("#q", former)
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(rf".*/employees/{hibob_id}\?q=.*"))
    text = page.inner_text("main")
    assert "moved.on@example.com" in text and "Reconcile now" in text
    page.click("text=Reconcile now")
    assert "reconcile employee" in wait_outcome(page)
    shoot(page, "reconcile-outcome")


def _hold(deployment: Deployment, count: int, start: int) -> list[str]:
    leavers = deployment.initial_active[start : start + count]
    for hibob_id in leavers:
        deployment.hibob.terminate(hibob_id, on=deployment.hibob.today)
    result = deployment.cli("sync", "--full")  # a request row, as the page's are
    assert result.returncode == 3, result.stdout + result.stderr
    return leavers


def test_release_these_n_releases_the_list_shown(page: Any, deployment: Deployment) -> None:
    leavers = _hold(deployment, 2, start=10)
    page.goto("/held")
    assert all(h in page.inner_text("main") for h in leavers)
    shoot(page, "held")
    page.click("text=Release these 2")
    text = wait_outcome(page)
    assert "released 2 of 2 held deactivations" in text
    shoot(page, "release-outcome")


def test_a_release_is_refused_when_the_list_changed_and_the_new_list_is_shown(
    page: Any, deployment: Deployment
) -> None:
    _hold(deployment, 2, start=12)
    page.goto("/held")
    assert "Release these 2" in page.inner_text("main")
    later = _hold(deployment, 2, start=14)  # meanwhile a new pass holds two more
    page.click("text=Release these 2")
    text = page.inner_text("main")
    assert "the list changed since you looked" in text and all(h in text for h in later)
    assert "Release these 4" in text
    shoot(page, "held-refused")


def test_a_post_without_the_csrf_token_is_refused(page: Any, deployment: Deployment) -> None:
    before = deployment.cli("status", "--json").stdout
    answer = page.request.post("/resync", form={"retry_quarantined": "1"})
    assert answer.status == 403
    answer = page.request.post("/held/release", form={"csrf": "forged", "token": "x"})
    assert answer.status == 403
    time.sleep(1.5)  # a request row would be claimed within a second
    after = deployment.cli("status", "--json").stdout
    assert before.count('"id"') == after.count('"id"')  # no new pass, no new request


def test_quarantine_and_shadow_pages(page: Any) -> None:
    page.goto("/quarantine")
    assert "Quarantine" in page.inner_text("h1")
    shoot(page, "quarantine")
    page.goto("/shadow")
    assert "Shadow mode is off" in page.inner_text("main")
    shoot(page, "shadow")


def test_history_filters_and_a_csv_download_that_parses(page: Any, tmp_path: Path) -> None:
    page.goto("/history")
    page.select_option("#action", "deactivate")
    page.click("text=Filter")
    assert "deactivate" in page.inner_text("main")
    shoot(page, "history")
    with page.expect_download() as caught:
        page.click("text=CSV")
    path = tmp_path / "history.csv"
    caught.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows and {r["action"] for r in rows} == {"deactivate"}
    assert set(rows[0]) >= {"at", "employee_id", "email", "action", "outcome", "reason"}


def test_an_expired_session_goes_back_to_sign_in(browser: Any, tmp_path: Path) -> None:
    short = Deployment(tmp_path, idle_minutes=0.05, size=5).start()  # 3 s idle
    try:
        context = browser.new_context(base_url=short.url)
        page = context.new_page()
        sign_in(page)
        page.wait_for_url(short.url + "/")
        time.sleep(4)
        page.goto("/held")
        assert "/sign-in" in page.url and "session expired" in page.inner_text("main")
        screenshot(page, "session-expired")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(short.url + "/held")  # back where it was going
        context.close()
    finally:
        short.close()


def test_the_status_page_shows_what_the_actions_left(page: Any) -> None:
    page.goto("/")
    text = page.inner_text("main")
    assert "4 held deactivation(s)" in text and "Recent passes" in text
    shoot(page, "status-after")


def test_no_request_left_the_admin_listener(seen: Seen, deployment: Deployment) -> None:
    assert seen.urls, "the browser made no request at all?"
    assert [u for u in seen.urls if not u.startswith(deployment.url + "/")] == []
