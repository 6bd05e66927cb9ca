"""The admin page over a real server on 127.0.0.1 (httpx as the browser): sign-in, sessions,
CSRF, security headers, every page, actions through request rows, downloads, and no secret in
any rendered page."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.commands.admin_web import build_admin_views
from reconciler.commands.cli import main
from reconciler.commands.cli_handlers import parse_since
from reconciler.config import load_settings
from reconciler.errors import ConfigError
from reconciler.service.admin_auth import PasswordHash, hash_password
from reconciler.service.admin_page import build_admin_page
from reconciler.service.lifecycle import Service
from reconciler.service.webserver import serve_webhooks
from tests.support import TODAY, World

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
HOSTILE = "<img src=x onerror=alert(1)>"
SECRETS = {
    "RECONCILER_HIBOB__SERVICE_USER_ID": "SECRET-hibob-user-4242",
    "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "SECRET-hibob-token-4242",
    "RECONCILER_LEARNING__CLIENT_ID": "SECRET-learning-client-4242",
    "RECONCILER_LEARNING__CLIENT_SECRET": "SECRET-learning-secret-4242",
    "RECONCILER_WEBHOOKS__UPSERT_SECRET": "SECRET-upsert-4242",
    "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": "SECRET-deactivation-4242",
    "RECONCILER_NOTIFY__WEBHOOK_URL": "https://hooks.example/SECRET-notify-4242",
    "RECONCILER_ADMIN__PASSWORD_HASH": PASSWORD_HASH,
}


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


class Admin:
    """A world, a (not started) service to carry requests out, and its admin page served."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.world = World(
            tmp_path,
            size=30,
            RECONCILER_SYNC__MAX_DEACTIVATIONS="0",
            RECONCILER_ADMIN__LISTEN="127.0.0.1:0",
            **{**SECRETS, **settings},
        )
        user, token = (SECRETS[f"RECONCILER_HIBOB__SERVICE_USER_{k}"] for k in ("ID", "TOKEN"))
        self.world.hibob._auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.world.learning.client_id = SECRETS["RECONCILER_LEARNING__CLIENT_ID"]
        self.world.learning.client_secret = SECRETS["RECONCILER_LEARNING__CLIENT_SECRET"]
        first = self.world.sync()
        assert first.outcome == "ok", first.error
        self.monotonic = Clock()
        self.service = Service(self.world.services, clock=lambda: self.world.now)
        page = build_admin_page(
            self.world.settings,
            self.world.store,
            build_admin_views(self.world.services, parse_since),
            is_ready=self.service.is_ready,
            clock=lambda: self.world.now,
            monotonic=self.monotonic,
        )
        assert page is not None
        self.page = page
        self.server = serve_webhooks(
            page,
            "127.0.0.1:0",
            max_body_bytes=65536,
            setting="admin.listen",
            trusted_proxy=page.trusted_proxy,
        )
        self.client = httpx.Client(base_url=self.server.url, follow_redirects=False)

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.world.store.close()

    def sign_in(
        self, password: str = PASSWORD, client: httpx.Client | None = None
    ) -> httpx.Response:
        client = client or self.client
        form = client.get("/sign-in")
        token = re.search(r'name="form_token" value="([^"]+)"', form.text)[1]
        return client.post("/sign-in", data={"form_token": token, "password": password})

    def csrf(self, path: str = "/") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)[1]

    def carry_out(self) -> None:
        self.service.requests.poll()
        self.service.requests.serve()
        self.service.requests.serve_quick()


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    admin = Admin(tmp_path)
    yield admin
    admin.close()


@pytest.fixture
def signed_in(admin: Admin) -> Admin:
    assert admin.sign_in().status_code == 303
    return admin


def terminate(world: World, count: int, start: int = 0) -> list[str]:
    leavers = world.active_employees()[start : start + count]
    for hibob_id in leavers:
        world.hibob.terminate(hibob_id, on=TODAY)
    return leavers


# -- the password and the start -----------------------------------------------------------------
def test_admin_password_prints_a_scrypt_hash_of_one_stdin_line_never_the_password(
    monkeypatch, capsys
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin-password"]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out and out.startswith("scrypt$32768$8$1$")
    assert PasswordHash.parse(out.strip()).verify(PASSWORD)
    assert not PasswordHash.parse(out.strip()).verify(PASSWORD + "x")


def test_admin_password_refuses_an_empty_or_short_password(monkeypatch, capsys) -> None:
    for given in ("\n", "short\n"):
        monkeypatch.setattr("sys.stdin", io.StringIO(given))
        assert main(["admin-password"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err


def test_a_malformed_hash_is_refused_naming_the_setting_and_not_echoing_it() -> None:
    with pytest.raises(ConfigError, match="setting admin.password_hash") as caught:
        PasswordHash.parse("scrypt$1$2$hunter2")
    assert "hunter2" not in str(caught.value)


def test_the_service_refuses_to_start_with_admin_listen_and_no_hash(tmp_path: Path) -> None:
    world = World(tmp_path, size=5, RECONCILER_ADMIN__LISTEN="127.0.0.1:0")
    service = Service(world.services, admin_views=build_admin_views(world.services, parse_since))
    with pytest.raises(ConfigError, match=r"^setting admin.password_hash is missing"):
        service.start()
    assert not world.store.is_instance_running()  # refused before taking the database
    world.store.close()


def test_the_hash_comes_from_the_systemd_credential_file(tmp_path: Path) -> None:
    (tmp_path / "admin_password_hash").write_text(PASSWORD_HASH + "\n")
    settings = load_settings(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}, read_file=False)
    assert settings.admin.password_hash.get_secret_value() == PASSWORD_HASH


# -- sign-in, sessions, CSRF, headers ------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/", "/employees", "/held", "/quarantine", "/resync", "/history", "/history.csv"]
)
def test_every_page_but_sign_in_needs_a_session(admin: Admin, path: str) -> None:
    answer = admin.client.get(path)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


def test_health_and_metrics_are_not_served_on_the_admin_listener(signed_in: Admin) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/webhooks/hibob/upsert"):
        assert signed_in.client.get(path).status_code == 404


def test_sign_in_sets_an_httponly_strict_cookie_secure_behind_the_tls_proxy(admin: Admin) -> None:
    plain = admin.sign_in().headers.get_list("set-cookie")
    session = next(c for c in plain if c.startswith("reconciler_admin="))
    assert "HttpOnly" in session and "SameSite=Strict" in session
    assert "Secure" not in session  # loopback without a proxy
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    form = httpx.get(admin.server.url + "/sign-in", headers=proxy)
    token = re.search(r'name="form_token" value="([^"]+)"', form.text)[1]
    assert "Secure" in form.headers["set-cookie"]
    answer = httpx.post(
        admin.server.url + "/sign-in",
        headers={**proxy, "Cookie": f"reconciler_signin={token}"},
        data={"form_token": token, "password": PASSWORD},
    )
    assert answer.status_code == 303
    session = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("reconciler_admin=")
    )
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session


def test_a_wrong_password_is_refused_logged_without_it_and_slowed_down(
    admin: Admin, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    answers = [admin.sign_in(f"wrong password {i}").status_code for i in range(3)]
    assert answers == [401, 401, 401]
    assert admin.sign_in().status_code == 429  # even the right one waits its turn
    admin.monotonic.seconds += 1.5
    assert admin.sign_in("wrong again").status_code == 401
    admin.monotonic.seconds += 1.5
    assert admin.sign_in().status_code == 429  # the wait doubled
    assert "failed sign-in from 127.0.0.1 (4 in a row)" in caplog.text
    assert "wrong" not in caplog.text and PASSWORD not in caplog.text
    admin.monotonic.seconds += 1
    assert admin.sign_in().status_code == 303


def test_a_session_ends_after_the_idle_minutes(signed_in: Admin) -> None:
    assert signed_in.client.get("/").status_code == 200
    signed_in.monotonic.seconds += 29 * 60
    assert signed_in.client.get("/").status_code == 200  # a request restarts the idle clock
    signed_in.monotonic.seconds += 31 * 60
    answer = signed_in.client.get("/held")
    assert answer.status_code == 303 and "reason=expired" in answer.headers["location"]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(signed_in: Admin) -> None:
    for path, data in (
        ("/resync", {}),
        ("/held/release", {"token": "x"}),
        ("/quarantine/clear", {"all": "1"}),
        ("/resync", {"csrf": "forged"}),
        ("/sign-out", {}),
    ):
        assert signed_in.client.post(path, data=data).status_code == 403
    assert signed_in.world.store.list_open_requests() == []
    assert signed_in.client.get("/").status_code == 200  # still signed in


def test_every_answer_carries_a_strict_content_security_policy_and_no_store(
    signed_in: Admin,
) -> None:
    for path in ("/", "/sign-in", "/static/admin.css", "/nowhere"):
        headers = signed_in.client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"


def test_sign_out_ends_the_session(signed_in: Admin) -> None:
    assert signed_in.client.post("/sign-out", data={"csrf": signed_in.csrf()}).status_code == 303
    assert signed_in.client.get("/").status_code == 303


def test_sign_in_never_redirects_to_another_site(admin: Admin) -> None:
    form = admin.client.get("/sign-in", params={"next": "//evil.example/"})
    token = re.search(r'name="form_token" value="([^"]+)"', form.text)[1]
    answer = admin.client.post(
        "/sign-in", data={"form_token": token, "password": PASSWORD, "next": "//evil.example/"}
    )
    assert answer.headers["location"] == "/"


# -- pages and actions --------------------------------------------------------------------------
def test_a_hostile_name_from_hibob_is_shown_as_text(signed_in: Admin) -> None:
    hibob_id = signed_in.world.active_employees()[0]
    signed_in.world.hibob.update_employee(hibob_id, **{"root.firstName": HOSTILE})
    signed_in.world.sync("full")
    for path in (f"/employees/{hibob_id}", "/employees?q=onerror"):
        text = signed_in.client.get(path).text
        assert HOSTILE not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_search_by_a_former_email_reaches_the_explain_view(signed_in: Admin) -> None:
    world = signed_in.world
    hibob_id = world.active_employees()[1]
    former = world.hibob.records[hibob_id]["root.email"]
    world.hibob.update_employee(hibob_id, **{"root.email": "renamed.person@example.com"})
    world.sync("full")
    found = signed_in.client.get("/employees", params={"q": former})
    assert found.status_code == 303
    assert found.headers["location"].startswith(f"/employees/{hibob_id}")
    page = signed_in.client.get(found.headers["location"])
    assert page.status_code == 200 and "Reconcile now" in page.text
    assert "renamed.person@example.com" in page.text


def test_search_by_name_lists_the_matching_employees(signed_in: Admin) -> None:
    hibob_id = signed_in.world.active_employees()[2]
    record = signed_in.world.hibob.records[hibob_id]
    name = f"{record['root.firstName']} {record['root.surname']}"
    page = signed_in.client.get("/employees", params={"q": name.lower()})
    assert page.status_code == 200 and f"/employees/{hibob_id}" in page.text


def test_reconcile_now_is_a_targeted_request_row_from_the_admin_page(signed_in: Admin) -> None:
    hibob_id = signed_in.world.active_employees()[3]
    answer = signed_in.client.post(
        f"/employees/{hibob_id}/reconcile", data={"csrf": signed_in.csrf()}
    )
    assert answer.status_code == 303
    request_id = int(answer.headers["location"].rsplit("/", 1)[1])
    row = signed_in.world.store.get_request(request_id)
    assert row.kind == "targeted" and row.args == {
        "employee": hibob_id,
        "source": "admin page",
    }
    assert 'http-equiv="refresh"' in signed_in.client.get(answer.headers["location"]).text
    signed_in.carry_out()
    done = signed_in.client.get(answer.headers["location"]).text
    assert "refresh" not in done and "targeted pass" in done and "from the admin page" in done


def test_release_these_n_releases_exactly_the_list_shown(signed_in: Admin) -> None:
    world = signed_in.world
    leavers = terminate(world, 2)
    assert world.sync().outcome == "held"
    page = signed_in.client.get("/held").text
    assert "Release these 2" in page and all(h in page for h in leavers)
    token = re.search(r'name="token" value="([^"]+)"', page)[1]
    answer = signed_in.client.post("/held/release", data={"csrf": signed_in.csrf(), "token": token})
    assert answer.status_code == 303
    signed_in.carry_out()
    outcome = signed_in.client.get(answer.headers["location"]).text
    assert "released 2 of 2 held deactivations" in outcome
    assert world.store.list_held() == []


def test_a_release_is_refused_when_the_list_changed_and_the_new_list_is_shown(
    signed_in: Admin,
) -> None:
    world = signed_in.world
    terminate(world, 2)
    world.sync()
    token = re.search(r'name="token" value="([^"]+)"', signed_in.client.get("/held").text)[1]
    later = terminate(world, 1, start=5)
    world.sync()
    answer = signed_in.client.post("/held/release", data={"csrf": signed_in.csrf(), "token": token})
    assert answer.status_code == 409
    assert "the list changed since you looked" in answer.text and later[0] in answer.text
    assert "Release these 3" in answer.text
    assert world.store.list_open_requests() == [] and len(world.store.list_held()) == 3


def test_quarantine_clear_and_full_resync_go_through_request_rows(signed_in: Admin) -> None:
    world = signed_in.world
    hibob_id = world.active_employees()[4]
    world.store.record_failure(
        hibob_id,
        "360Learning rejected mail (mailInvalid)",
        quarantine_after=1,
        quarantined_until=dt.datetime(2999, 1, 1, tzinfo=dt.UTC),
        at=world.now,
    )
    assert hibob_id in signed_in.client.get("/quarantine").text
    cleared = signed_in.client.post(
        "/quarantine/clear", data={"csrf": signed_in.csrf(), "id": hibob_id}
    )
    resync = signed_in.client.post("/resync", data={"csrf": signed_in.csrf("/resync")})
    signed_in.carry_out()
    assert "quarantine lifted for 1" in signed_in.client.get(cleared.headers["location"]).text
    assert "full pass" in signed_in.client.get(resync.headers["location"]).text
    assert world.store.list_quarantined(world.now) == []


def test_history_filters_and_downloads_as_csv_and_json_lines(signed_in: Admin) -> None:
    query = {"action": "create", "outcome": "ok", "since": "2026-11-01"}
    page = signed_in.client.get("/history", params=query)
    assert page.status_code == 200 and "create" in page.text
    rows = list(
        csv.DictReader(io.StringIO(signed_in.client.get("/history.csv", params=query).text))
    )
    assert rows and all(r["action"] == "create" and r["outcome"] == "ok" for r in rows)
    lines = signed_in.client.get("/history.jsonl", params=query).text.splitlines()
    assert [json.loads(line)["employee_id"] for line in lines] == [r["employee_id"] for r in rows]
    bad = signed_in.client.get("/history", params={"since": "yesterday-ish"})
    assert bad.status_code == 400 and "is not a date" in bad.text


def test_the_shadow_report_has_its_place(signed_in: Admin) -> None:
    assert "Shadow mode is off" in signed_in.client.get("/shadow").text


def test_the_shadow_report_shows_what_the_incumbent_missed(tmp_path: Path) -> None:
    admin = Admin(tmp_path, RECONCILER_SYNC__MODE="shadow")  # its first pass: a shadow pass
    try:
        world = admin.world
        hibob_id = world.active_employees()[2]
        assert world.user_of(hibob_id) is None  # nothing written: everyone is missing
        assert admin.sign_in().status_code == 303

        page = admin.client.get("/shadow").text
        assert "not available yet" not in page
        assert hibob_id in page and "missing" in page and "Pending" in page
        world.now += dt.timedelta(hours=2)  # past sync.shadow_lag_minutes: a miss
        later = admin.client.get("/shadow").text
        assert "Misses" in later and hibob_id in later
    finally:
        admin.close()


def test_no_page_ever_shows_a_secret(signed_in: Admin) -> None:
    world = signed_in.world
    terminate(world, 1)
    world.sync()
    hibob_id = world.active_employees()[0]
    request = signed_in.client.post("/resync", data={"csrf": signed_in.csrf()})
    signed_in.carry_out()
    pages = [
        "/",
        "/employees",
        f"/employees?q={hibob_id}",
        f"/employees/{hibob_id}",
        "/held",
        "/quarantine",
        "/resync",
        "/history",
        "/history.csv",
        "/history.jsonl",
        "/shadow",
        request.headers["location"],
        "/sign-in",
        "/nowhere",
    ]
    secrets = [*SECRETS.values(), PASSWORD, *PASSWORD_HASH.split("$")[4:]]
    for path in pages:
        answer = signed_in.client.get(path, follow_redirects=True)
        assert answer.status_code in (200, 404), path
        shown = answer.text + str(answer.headers)
        assert [s for s in secrets if s in shown] == [], path


# -- serving ----------------------------------------------------------------------------------
def test_reconciler_run_serves_the_page_on_its_own_listener_beside_the_webhooks(
    tmp_path: Path,
) -> None:
    world = World(
        tmp_path,
        size=5,
        RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0",
        RECONCILER_ADMIN__LISTEN="127.0.0.1:0",
        RECONCILER_ADMIN__PASSWORD_HASH=PASSWORD_HASH,
    )
    service = Service(world.services, admin_views=build_admin_views(world.services, parse_since))
    service.start()
    try:
        assert service.admin_url and service.admin_url != service.url
        assert httpx.get(service.admin_url + "/sign-in").status_code == 200
        assert httpx.get(service.admin_url + "/healthz").status_code == 303  # no such page
        assert httpx.get(service.url + "/healthz").status_code == 200
        assert httpx.get(service.url + "/sign-in").status_code == 404
    finally:
        assert service.stop(timeout_seconds=5) is True


def test_a_listen_address_that_is_not_host_port_names_admin_listen(tmp_path: Path) -> None:
    world = World(
        tmp_path,
        size=5,
        RECONCILER_WEBHOOKS__LISTEN="127.0.0.1:0",
        RECONCILER_ADMIN__LISTEN="8481",
        RECONCILER_ADMIN__PASSWORD_HASH=PASSWORD_HASH,
    )
    service = Service(world.services, admin_views=build_admin_views(world.services, parse_since))
    with pytest.raises(ConfigError, match=r"^setting admin.listen: expected host:port"):
        service.start()
    world.store.close()


def test_failed_sign_ins_behind_the_proxy_are_counted_per_real_client(admin: Admin) -> None:
    def attempt(client_address: str) -> int:
        headers = {"X-Forwarded-For": client_address}
        with httpx.Client(base_url=admin.server.url, headers=headers) as client:
            return admin.sign_in("wrong", client=client).status_code

    assert [attempt("198.51.100.7") for _ in range(4)] == [401, 401, 401, 429]
    assert attempt("198.51.100.8") == 401  # another client is not held back by the first


def test_a_csv_cell_a_spreadsheet_would_run_is_quoted() -> None:
    from reconciler.core.vocabulary import ActionKind, ActionOutcome
    from reconciler.service.admin_views import render_csv
    from reconciler.store.records import JournalRecord

    rows = [
        JournalRecord(
            1, "t", "1", "=HYPERLINK(1)", ActionKind.UPDATE, (), ActionOutcome.OK, None, None
        )
    ]
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows).decode())))
    assert parsed[0]["email"] == "'=HYPERLINK(1)"


def test_admin_password_on_a_terminal_asks_twice_and_refuses_two_different_ones() -> None:
    from reconciler.commands.admin_web import print_password_hash

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter([PASSWORD, PASSWORD, PASSWORD, PASSWORD + "!"])
    out = io.StringIO()
    assert print_password_hash(out, Terminal(), ask=lambda prompt: next(answers)) == 0
    assert PasswordHash.parse(out.getvalue()).verify(PASSWORD)
    with pytest.raises(ConfigError, match="the two passwords differ"):
        print_password_hash(io.StringIO(), Terminal(), ask=lambda prompt: next(answers))
