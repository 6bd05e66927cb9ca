"""The shipped systemd unit: hardening, credentials matching the settings, and `systemd-analyze`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.config import CREDENTIAL_FILES

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "reconciler.service"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) pairs in order; systemd keys may repeat, so no configparser."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def single(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key} appears {len(found)} times"
    return found[0]


SERVICE = parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


@pytest.mark.parametrize(("key", "expected"), [
    ("Type", "simple"), ("DynamicUser", "yes"), ("StateDirectory", "reconciler"),
    ("WorkingDirectory", "/var/lib/reconciler"), ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("ExecStart", "/opt/reconciler/.venv/bin/reconciler run"), ("Restart", "on-failure"),
    ("RestartSec", "5"), ("TimeoutStopSec", "15"), ("KillSignal", "SIGTERM"),
])
def test_service_section_sets_the_hardening_and_lifecycle_keys(key, expected):
    assert single(SERVICE, key) == expected


def test_system_calls_are_limited_to_the_system_service_set():
    assert values(SERVICE, "SystemCallFilter")[0] == "@system-service"


def test_credentials_are_exactly_the_ones_the_settings_read_from_etc_reconciler():
    loaded = dict(value.split(":", 1) for value in values(SERVICE, "LoadCredential"))

    assert set(loaded) == set(CREDENTIAL_FILES)
    assert all(path == f"/etc/reconciler/credentials/{name}" for name, path in loaded.items())


def test_environment_points_at_the_settings_file_and_a_database_in_the_state_directory():
    assignments = " ".join(values(SERVICE, "Environment")).split()

    assert set(assignments) == {"RECONCILER_CONFIG=/etc/reconciler/settings.toml",
                                "RECONCILER_STORE__PATH=/var/lib/reconciler/reconciler.db"}


def test_unit_starts_at_boot_with_the_multi_user_target():
    install = parse_unit(UNIT.read_text(encoding="utf-8"))["Install"]

    assert single(install, "WantedBy") == "multi-user.target"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    analyze, true = shutil.which("systemd-analyze"), shutil.which("true")
    if analyze is None or true is None:
        pytest.skip("systemd-analyze is not on PATH (apt-get install systemd to run this check)")
    copy = tmp_path / "reconciler.service"
    # verify insists that ExecStart exists; the real one lives in /opt only on a server.
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(
        "/opt/reconciler/.venv/bin/reconciler", true), encoding="utf-8")

    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60, check=False)

    # Unknown or misspelt keys are only warnings (exit 0), so any line naming the unit fails too.
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "reconciler.service" in line]
    assert (result.returncode, complaints) == (0, [])
