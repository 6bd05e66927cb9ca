"""Hostile Hibob records: nulls everywhere, any unicode, 100 kB names, wrong types, bad and
shared emails, missing and duplicate ids. The pass finishes, reports each bad record once, and
writes nothing wrong (the end state equals the desired state of the records that are good).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.conftest import FaultWorld, record_figure
from faults.oracle import find_differences, unknown_access

pytestmark = pytest.mark.faults

HUGE = 100_000
FIELDS = (
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.title",
    "work.department",
    "work.site",
    "work.siteId",
    "work.reportsTo",
    "work.startDate",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "employee.lastDayOfWork",
)
DECIDING = ("root.email", "internal.status")
_MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Any text JSON can carry: no lone surrogates (not encodable), otherwise everything.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
odd_values = st.one_of(
    st.none(),
    texts,
    st.integers(),
    st.booleans(),
    st.just(""),
    st.just(" " * 5),
    st.just("\u200b"),
    st.just("x" * HUGE),
    st.just("Zoë \u202eevil\u202c 🙂 名前"),
)
mutations = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(FIELDS), odd_values), min_size=1, max_size=12
)


def _world(tmp_path: Path) -> FaultWorld:
    world = FaultWorld(tmp_path, size=20, seed=5)
    world.hibob.waf_enabled = False
    return world


def _ids(world: FaultWorld) -> list[str]:
    return sorted(world.hibob.records)


def _bad_records(world: FaultWorld) -> set[str]:
    """Records that cannot be provisioned and must be reported: access known to be Active but
    no valid email, or an email another employee has too."""
    records = world.hibob.records.values()
    mails = Counter(
        r["root.email"].strip().lower()
        for r in records
        if isinstance(r.get("root.email"), str) and r["root.email"].strip()
    )
    bad = set()
    for record in records:
        raw = record.get("root.email")
        mail = raw.strip().lower() if isinstance(raw, str) else ""
        if record.get("internal.status") == "Active" and (not _MAIL.match(mail) or mails[mail] > 1):
            bad.add(record["root.id"])
    return bad


def _check(world: FaultWorld) -> None:
    writes = len(world.learning_writes())
    result = world.sync()
    if result.outcome == "failed":  # too many unknown statuses: the read is not trusted
        assert "max_missing_field_ratio" in result.error, result.error
        assert len(world.learning_writes()) == writes
        return
    reported = Counter(p.hibob_id for p in result.plan.problems)
    assert [h for h, n in reported.items() if n > 1] == [], "reported more than once"
    assert _bad_records(world) <= set(reported), "a bad record was not reported"
    assert find_differences(world.hibob, world.learning, world.db) == []
    assert world.sync().plan.actions == ()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=mutations)
def test_odd_values_in_any_field_never_fail_the_pass_and_nothing_wrong_is_written(
    tmp_path_factory: pytest.TempPathFactory, changes
) -> None:
    world = _world(tmp_path_factory.mktemp("hostile"))
    ids = _ids(world)
    for index, field_id, value in changes:
        world.hibob.records[ids[index % len(ids)]][field_id] = value
    record_figure("hostile records: odd values injected", len(changes))

    _check(world)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=mutations)
def test_odd_values_arriving_after_a_sync_change_only_what_they_should(
    tmp_path_factory: pytest.TempPathFactory, changes
) -> None:
    world = _world(tmp_path_factory.mktemp("hostile"))
    assert world.sync().outcome == "ok"
    before = {h: (world.user_of(h) or {}).get("status") for h in _ids(world)}
    ids = _ids(world)
    for index, field_id, value in changes:
        world.hibob.records[ids[index % len(ids)]][field_id] = value
    record_figure("hostile records: odd values injected", len(changes))

    _check(world)

    for hibob_id in unknown_access(world.hibob):
        assert (world.user_of(hibob_id) or {}).get("status") == before[hibob_id], (
            f"{hibob_id}: access status {world.hibob.records[hibob_id]['internal.status']!r} "
            "is unknown, yet its user changed status"
        )


def test_records_with_every_field_null_are_reported_once_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    world = _world(tmp_path)
    world.hibob.records[_ids(world)[5]].update(dict.fromkeys(FIELDS))
    for hibob_id in _ids(world)[6:9]:  # everything null but the id and the access status
        world.hibob.records[hibob_id].update(dict.fromkeys(FIELDS[:-4]))

    _check(world)


def test_a_search_where_many_access_statuses_are_null_fails_with_one_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    world = _world(tmp_path)
    for hibob_id in _ids(world)[5:11]:
        world.hibob.records[hibob_id].update(dict.fromkeys(FIELDS))

    result = world.sync()

    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "max_missing_field_ratio" in result.error and "\n" not in result.error
    assert world.learning_writes() == []


def test_100_kb_names_in_unicode_are_written_whole_or_reported_never_cut(tmp_path) -> None:
    world = _world(tmp_path)
    for number, hibob_id in enumerate(_ids(world)[3:6]):
        world.hibob.records[hibob_id]["root.firstName"] = "Zoë🙂" * (HUGE // 4) + str(number)
        world.hibob.records[hibob_id]["root.surname"] = "名" * HUGE

    _check(world)


def test_an_employee_without_an_id_is_reported_once_and_everyone_else_is_synchronised(
    tmp_path: Path,
) -> None:
    world = _world(tmp_path)
    stray = copy.deepcopy(world.hibob.records[_ids(world)[4]])
    stray.update({"root.id": None, "root.email": "no.id@acme.example"})
    world.hibob.records["no-id"] = stray

    result = world.sync()

    assert result.outcome != "failed", result.error
    assert len(result.plan.problems) == len(_bad_records(world)) + 1
    del world.hibob.records["no-id"]
    assert find_differences(world.hibob, world.learning, world.db) == []


def test_two_records_with_one_id_are_reported_once_and_neither_is_written(tmp_path: Path) -> None:
    world = _world(tmp_path)
    twin_id = _ids(world)[6]
    twin = copy.deepcopy(world.hibob.records[twin_id])
    twin.update({"root.email": "twin@acme.example", "root.firstName": "Twin"})
    world.hibob.records["twin"] = twin

    result = world.sync()

    assert result.outcome != "failed", result.error
    assert Counter(p.hibob_id for p in result.plan.problems)[twin_id] == 1
    users = world.learning.users_by_mail()
    assert "twin@acme.example" not in users
    assert world.hibob.records[twin_id]["root.email"].strip().lower() not in users


def test_an_employee_whose_access_status_is_null_is_reported_once(tmp_path: Path) -> None:
    world = _world(tmp_path)
    hibob_id = _ids(world)[7]
    world.hibob.records[hibob_id]["internal.status"] = None

    result = world.sync()

    assert [p.hibob_id for p in result.plan.problems].count(hibob_id) == 1


@pytest.mark.parametrize("status", [None, "", "active", "Terminated", 1, True])
def test_an_unknown_access_status_after_a_sync_changes_nobody(tmp_path: Path, status) -> None:
    world = _world(tmp_path)
    assert world.sync().outcome == "ok"
    hibob_id = world.active_employees()[3]
    world.hibob.records[hibob_id]["internal.status"] = status

    assert world.sync().outcome == "ok"

    assert world.user_of(hibob_id)["status"] == "active"
