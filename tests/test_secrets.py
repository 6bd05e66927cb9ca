"""No secret leaks (issue 8, "Secrets"): recognisable credentials, upstreams that echo the
request (token endpoint, API errors, Hibob) back in their error bodies, then every log line,
stdout/stderr, `status`/`history`/`explain`/`check` output, /metrics and every database row is
searched for them."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from webhook_corpus import sign

from reconciler.commands import cli
from reconciler.commands.logs import configure_logging
from reconciler.commands.wiring import build_pass_context
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.service.lifecycle import Service

TODAY = dt.date(2026, 11, 28)
SECRETS = {
    "RECONCILER_HIBOB__SERVICE_USER_ID": "LEAK-hibob-user-1a2b",
    "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "LEAK-hibob-token-3c4d",
    "RECONCILER_LEARNING__CLIENT_ID": "LEAK-client-id-5e6f",
    "RECONCILER_LEARNING__CLIENT_SECRET": "LEAK-client-secret-7a8b",
    "RECONCILER_WEBHOOKS__UPSERT_SECRET": "LEAK-upsert-secret-9c0d",
    "RECONCILER_WEBHOOKS__DEACTIVATION_SECRET": "LEAK-deact-secret-1e2f",
}


def echo(request: httpx.Request) -> str:
    """What a careless upstream puts in its error: the whole request, credentials first."""
    return (
        f"auth={request.headers.get('authorization')} body={request.content.decode()} "
        f"headers={dict(request.headers)}"
    )


class EchoingUpstreams:
    """Both simulators behind switches that make them answer errors echoing the request."""

    def __init__(self) -> None:
        company = generate_company(25, seed=5, today=TODAY)
        self.hibob = HibobSimulator(
            company,
            today=TODAY,
            service_user_id=SECRETS["RECONCILER_HIBOB__SERVICE_USER_ID"],
            service_user_token=SECRETS["RECONCILER_HIBOB__SERVICE_USER_TOKEN"],
        )
        self.learning = LearningSimulator(
            enforce_rate_limits=False,
            client_id=SECRETS["RECONCILER_LEARNING__CLIENT_ID"],
            client_secret=SECRETS["RECONCILER_LEARNING__CLIENT_SECRET"],
        )
        self.mode = ""
        self.bearer_tokens: set[str] = set()

    def handle_hibob(self, request: httpx.Request) -> httpx.Response:
        if self.mode in ("hibob-401", "hibob-500", "hibob-403"):
            status = int(self.mode[-3:])
            return httpx.Response(
                status, json={"key": "echo", "error": echo(request), "errorMessage": echo(request)}
            )
        return self.hibob.handle(request)

    def handle_learning(self, request: httpx.Request) -> httpx.Response:
        is_token = request.url.path.endswith("/oauth2/token")
        if self.mode == "token" and is_token:
            return httpx.Response(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": echo(request),
                    "message": echo(request),
                },
            )
        if not is_token and (
            self.mode == "writes"
            and request.method != "GET"
            or self.mode == "reads"
            and request.method == "GET"
        ):
            status = 400 if self.mode == "writes" else 500
            return httpx.Response(
                status, json={"error": {"code": "echo", "message": echo(request)}}
            )
        response = self.learning.handle(request)
        if is_token and response.status_code == 200:
            self.bearer_tokens.add(json.loads(response.read())["access_token"])
        return response

    def build(self, settings, **kwargs):
        return build_pass_context(
            settings,
            hibob_transport=httpx.MockTransport(self.handle_hibob),
            learning_transport=httpx.MockTransport(self.handle_learning),
            sleep=lambda seconds: None,
            **kwargs,
        )

    def secrets(self) -> list[str]:
        user, token = (
            SECRETS["RECONCILER_HIBOB__SERVICE_USER_ID"],
            SECRETS["RECONCILER_HIBOB__SERVICE_USER_TOKEN"],
        )
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        return ["LEAK-", *SECRETS.values(), basic, *self.bearer_tokens]


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.slow
def test_secrets_echoed_by_upstreams_reach_no_output_log_database_or_metrics(
    tmp_path: Path, monkeypatch, capsys, restore_logging
):
    upstreams = EchoingUpstreams()
    db = tmp_path / "reconciler.db"
    config = tmp_path / "settings.toml"
    config.write_text("")
    environ = {
        **SECRETS,
        "RECONCILER_HIBOB__BASE_URL": "http://hibob.test/v1",
        "RECONCILER_LEARNING__BASE_URL": "http://learning.test",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": upstreams.learning.root_group_id,
        "RECONCILER_SYNC__MAX_DEACTIVATIONS": "1000",
        "RECONCILER_SYNC__MAX_DEACTIVATION_RATIO": "1",
        "RECONCILER_WEBHOOKS__LISTEN": "127.0.0.1:0",
        "RECONCILER_STORE__PATH": str(db),
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    outputs: list[str] = []
    exit_codes: dict[str, int] = {}

    def run(mode: str, *argv: str) -> None:
        upstreams.mode = mode
        exit_codes[f"{mode or 'ok'}: {' '.join(argv)}"] = cli.main(
            ["--config", str(config), *argv], build=upstreams.build
        )
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])

    employee = next(iter(upstreams.hibob.records))
    run("", "sync")
    for record_id in list(upstreams.hibob.records)[:5]:
        upstreams.hibob.update_employee(record_id, **{"root.firstName": "Changed"})
    run("token", "sync")
    run("token", "check")
    run("writes", "sync")
    run("reads", "sync", "--full")
    run("hibob-401", "sync")
    run("hibob-403", "check")
    run("hibob-500", "sync", "--employee", employee)
    run("hibob-500", "explain", employee)
    run("", "status")
    run("", "status", "--json")
    run("", "history")
    run("", "history", "--json", "--employee", employee)
    run("", "explain", employee)
    outputs.append(serve_briefly(upstreams, environ, config))

    leaks = find_leaks(upstreams.secrets(), outputs, db)

    assert leaks == []
    assert exit_codes["ok: sync"] == 0
    assert sum(code != 0 for code in exit_codes.values()) >= 5, exit_codes
    assert upstreams.bearer_tokens, "the scenario should have obtained bearer tokens"
    assert "[redacted]" in "".join(outputs), "the echoes should have reached the output"


def serve_briefly(upstreams: EchoingUpstreams, environ: dict[str, str], config: Path) -> str:
    """The service with webhooks, a signed delivery and a /metrics scrape; its log text."""
    from reconciler.config import load_settings

    stream = io.StringIO()
    configure_logging(stream=stream)
    upstreams.mode = "writes"
    service = Service(upstreams.build(load_settings(str(config))))
    service.start()
    try:
        body = json.dumps(
            {
                "type": "employee.updated",
                "data": {"employeeId": next(iter(upstreams.hibob.records))},
            }
        ).encode()
        secret = SECRETS["RECONCILER_WEBHOOKS__UPSERT_SECRET"]
        with httpx.Client(trust_env=False, timeout=5) as client:
            client.post(
                f"{service.url}/webhooks/hibob/upsert",
                content=body,
                headers={"Bob-Signature": sign(body, secret)},
            )
            client.post(
                f"{service.url}/webhooks/hibob/upsert",
                content=secret.encode(),
                headers={"Bob-Signature": secret},
            )
            metrics = client.get(f"{service.url}/metrics").text
    finally:
        service.stop()
    return stream.getvalue() + metrics


def find_leaks(secrets: list[str], outputs: list[str], db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        dump = "\n".join(connection.iterdump())
    places: dict[str, Callable[[], str]] = {
        "output": lambda: "\n".join(outputs),
        "database": lambda: dump,
    }
    return [
        f"{secret!r} in {place}"
        for place, text in places.items()
        for secret in secrets
        if secret in text()
    ]
