"""Errors that name what to fix (issue 15, item 14): an unreachable host names the URL and the
setting, and says it is retrying; missing secrets are all named with both ways to give them."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import SecretStr

from reconciler.clients.hibob import HibobClient
from reconciler.errors import ApiUnavailable
from reconciler.settings_sections import HibobSettings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_host_names_the_url_and_the_setting_and_says_it_retries(caplog) -> None:
    port = closed_port()
    settings = HibobSettings(
        base_url=f"http://127.0.0.1:{port}/v1",
        service_user_id="sandbox-user",
        service_user_token=SecretStr("sandbox-token"),
    )
    client = HibobClient(settings, sleep=lambda seconds: None)
    caplog.set_level(logging.WARNING)
    try:
        with pytest.raises(ApiUnavailable) as caught:
            client.search_employees(["root.email"])
    finally:
        client.close()

    message = str(caught.value)
    assert f"http://127.0.0.1:{port}" in message and "hibob.base_url" in message
    assert "\n" not in message
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and f"127.0.0.1:{port}" in retries[0].getMessage()


def test_every_missing_secret_is_named_with_its_variable_and_its_credential_file() -> None:
    from reconciler.config import Settings, require_secrets
    from reconciler.errors import ConfigError

    settings = Settings()
    with pytest.raises(ConfigError) as caught:
        require_secrets(
            settings, "hibob.service_user_id", "hibob.service_user_token", "learning.client_secret"
        )

    message = str(caught.value)
    assert "\n" not in message
    for setting, variable, credential in (
        ("hibob.service_user_id", "RECONCILER_HIBOB__SERVICE_USER_ID", "hibob_service_user_id"),
        (
            "hibob.service_user_token",
            "RECONCILER_HIBOB__SERVICE_USER_TOKEN",
            "hibob_service_user_token",
        ),
        ("learning.client_secret", "RECONCILER_LEARNING__CLIENT_SECRET", "learning_client_secret"),
    ):
        assert setting in message and variable in message and credential in message
