"""Shadow mode end to end against the simulators (product §2.4, issue 17 part 3): an incumbent
connector (a reconciler of its own, on its own database) keeps 360Learning; a second reconciler
in shadow mode reads both sides in full, writes nothing and records every disagreement; the
incumbent's fixes close as lag; switching to apply cuts over through the safety limits."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from reconciler.commands.cli import main
from reconciler.commands.wiring import build_pass_context
from reconciler.config import load_settings
from reconciler.passes.reconcile import PassResult, run_pass
from reconciler.passes.shadow import shadow_report
from reconciler.store.database import Store
from tests.support import World
from tests.support.world import TODAY
from tests.test_requests import builder

LATER = dt.timedelta(minutes=20)


class Shadow:
    """The reconciler being migrated to: the incumbent's simulators, a database of its own."""

    def __init__(self, world: World, path: Path, **settings: str) -> None:
        path.mkdir()
        self.world, self.db = world, path / "shadow.db"
        self.environ = {**world.environ, "RECONCILER_STORE__PATH": str(self.db), **settings}
        self.store = Store(self.db)
        self.build("shadow")

    def build(self, mode: str, **overrides: str) -> None:
        environ = {**self.environ, "RECONCILER_SYNC__MODE": mode, **overrides}
        self.environ = environ
        self.settings = load_settings(environ=environ, read_file=False)
        self.services = build_pass_context(
            self.settings,
            hibob_transport=httpx.MockTransport(self.world.hibob.handle),
            learning_transport=httpx.MockTransport(self.world.learning.handle),
            store=self.store,
            sleep=self.world.time.sleep,
        )

    def sync(self, kind: str = "incremental", at: dt.datetime | None = None, **kw) -> PassResult:
        return run_pass(self.services, kind, now=at or self.world.now, **kw)

    def open(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for record in self.store.list_disagreements(is_open=True):
            found.setdefault(record.disagreement.hibob_id, set()).add(str(record.disagreement.kind))
        return found


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path / "incumbent")
    for hibob_id in world.company.bad_records.get("duplicate_email", []):
        world.hibob.update_employee(hibob_id, email=f"unique.{hibob_id}@acme.example")
    assert world.sync("full").outcome == "ok"
    return world


def _seed(world: World) -> dict[str, str]:
    """One employee per kind of disagreement, the incumbent unaware of each."""
    learning, records = world.learning, world.hibob.records
    with_manager = [
        h
        for h in world.active_employees()
        if world.user_of(h)
        and records[h].get("work.reportsTo") not in (None, h)
        and h not in {r.get("work.reportsTo") for r in records.values()}
        and world.user_of(records[h]["work.reportsTo"])
    ]
    bosses = {r.get("work.reportsTo") for r in records.values()}
    others = [  # nobody's manager: their accounts' troubles stay theirs
        h for h in world.active_employees() if world.user_of(h) and h not in bosses
    ][1:]
    seeded = {
        "manager": with_manager[0],
        "missing": others[0],
        "not_deactivated": others[1],
        "fields": others[2],
        "groups": others[3],
        "ambiguous": others[4],
    }
    assert seeded["manager"] not in others and seeded["manager"] not in bosses

    def uid(kind: str) -> str:
        return world.store.get_entry(seeded[kind]).learning_user_id  # type: ignore[union-attr,return-value]

    learning.delete_user(uid("missing"))
    world.hibob.terminate(seeded["not_deactivated"], on=TODAY)
    learning.edit_user(uid("fields"), job="Juggler")
    learning.add_manager(uid("manager"), uid("fields"))
    with learning._lock:  # noqa: SLF001 - removed by hand in the 360Learning UI
        learning._roles[uid("groups")].clear()  # noqa: SLF001
    twin = others[5]
    world.hibob.update_employee(twin, email=records[seeded["ambiguous"]]["root.email"])
    seeded["ambiguous twin"] = twin
    return seeded


def _expected(seeded: dict[str, str]) -> dict[str, set[str]]:
    return {h: {kind.split()[0]} for kind, h in seeded.items()}


def test_a_shadow_pass_writes_nothing_and_reports_each_seeded_disagreement(world, tmp_path):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    before = len(world.learning_writes())
    result = shadow.sync()
    assert result.outcome == "ok", result.error
    assert len(world.learning_writes()) == before, world.learning_writes()[before:]
    assert result.kind == "full"
    assert shadow.open() == _expected(seeded)
    [fields] = shadow.store.list_disagreements(hibob_id=seeded["fields"])
    d = fields.disagreement
    assert (d.subject, d.wanted, d.holds) == (
        "job",
        world.hibob._human("work.title", world.hibob.records[seeded["fields"]]["work.title"]),  # noqa: SLF001
        "Juggler",
    )
    # Nothing applied is recorded: the snapshot links nobody, so the cut-over writes it all.
    assert not any(e.is_linked or e.state for e in shadow.store.load_snapshot().values())
    assert result.counts["disagreements"] == len(shadow.store.list_disagreements())


@pytest.mark.parametrize("kind", ["incremental", "full", "targeted"])
def test_every_pass_kind_reads_in_full_and_writes_nothing(world, tmp_path, kind):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    before = len(world.learning_writes())
    options = {"employee": seeded["fields"]} if kind == "targeted" else {}
    result = shadow.sync(kind, **options)
    assert (result.outcome, result.kind) == ("ok", "full")
    assert len(world.learning_writes()) == before
    assert shadow.open() == _expected(seeded)


def test_a_disagreement_the_incumbent_fixes_is_closed_as_lag(world, tmp_path):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    shadow.sync(at=world.now)
    # The incumbent repairs one drift (its targeted pass reads the linked account).
    assert world.sync("targeted", employee=seeded["fields"]).outcome == "ok"
    shadow.sync(at=world.now + LATER)
    assert seeded["fields"] not in shadow.open()
    report = shadow_report(shadow.store, shadow.settings, world.now + dt.timedelta(minutes=90))
    assert [(r["employee_id"], r["kind"]) for r in report["lag"]] == [(seeded["fields"], "fields")]
    assert report["lag"][0]["minutes"] == 20
    missed = {r["employee_id"] for r in report["misses"]}
    assert missed == set(seeded.values()) - {seeded["fields"]}
    assert report["counts"]["misses"]["missing"] == 1
    assert report["examples"]["misses"]["not_deactivated"] == [seeded["not_deactivated"]]


def test_the_cut_over_applies_the_rest(world, tmp_path):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    shadow.sync()
    shadow.build("apply")
    cutover = shadow.sync("incremental", at=world.now + LATER)
    assert (cutover.outcome, cutover.kind) == ("ok", "full"), cutover.error
    leaver = world.learning.users_by_mail()[
        world.hibob.records[seeded["not_deactivated"]]["root.email"].lower()
    ]
    assert leaver["status"] == "deleted"
    # What the cut-over applied is closed; a fresh shadow pass finds only the shared email.
    assert set(shadow.open()) == {seeded["ambiguous"], seeded["ambiguous twin"]}
    report = shadow_report(shadow.store, shadow.settings, world.now + LATER)
    assert report["applied"] == 5 and report["lag"] == []
    shadow.build("shadow")
    shadow.sync(at=world.now + 2 * LATER)
    assert shadow.open() == {
        seeded["ambiguous"]: {"ambiguous"},
        seeded["ambiguous twin"]: {"ambiguous"},
    }
    shadow.build("apply")
    assert shadow.sync(at=world.now + 3 * LATER).kind == "full"  # the ambiguity is still open
    shadow.build("apply")
    assert shadow.sync(at=world.now + 4 * LATER).plan.is_empty


def test_the_cut_over_goes_through_the_breaker(world, tmp_path):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    shadow.sync()
    shadow.build("apply", RECONCILER_SYNC__MAX_DEACTIVATIONS="0")
    cutover = shadow.sync()
    assert (cutover.outcome, cutover.kind) == ("held", "full")
    leaver = seeded["not_deactivated"]
    assert [h.hibob_id for h in shadow.store.list_held()] == [leaver]
    mail = world.hibob.records[leaver]["root.email"].lower()
    assert world.learning.users_by_mail()[mail]["status"] == "active"
    assert "not_deactivated" in shadow.open()[leaver]
    # Released, the next pass (a full one again: the cut-over is not done) deactivates.
    again = shadow.sync(at=world.now + LATER, released=frozenset({leaver}))
    assert (again.outcome, again.kind) == ("ok", "full"), again.error
    assert world.learning.users_by_mail()[mail]["status"] == "deleted"
    assert leaver not in shadow.open()


def test_shadow_report_prints_lag_and_misses_and_json(world, tmp_path, capsys, monkeypatch):
    seeded = _seed(world)
    shadow = Shadow(world, tmp_path / "shadow")
    shadow.sync(at=world.now - dt.timedelta(hours=2))
    for key, value in shadow.environ.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "settings.toml").write_text("")
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path / "settings.toml"))
    assert main(["shadow", "report", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {r["employee_id"] for r in document["misses"]} == set(seeded.values())
    assert document["counts"]["misses"]["fields"] == 1
    assert main(["shadow", "report"]) == 0
    out = capsys.readouterr().out
    assert "misses (open past 60 min)" in out and seeded["fields"] in out and "Juggler" in out
    assert main(["shadow", "report", "--since", "2099-01-01"]) == 0
    assert "no disagreement" in capsys.readouterr().out
    assert main(["explain", seeded["fields"]], build=builder(world)) == 0
    out = capsys.readouterr().out
    assert "shadow: open disagreements" in out and "Juggler" in out


def test_a_custom_field_the_incumbent_left_behind_is_a_fields_disagreement(tmp_path):
    from tests.test_custom_fields import RULES, custom_world

    world = custom_world(tmp_path / "incumbent", *RULES)
    assert world.sync("full").outcome == "ok"
    stale = world.active_employees()[3]
    cost = world.ids["cost"]
    world.learning.set_custom_value(world.user_of(stale)["_id"], cost, "CC-40")
    world.hibob.update_employee(stale, **{RULES[0]["from"]: "CC 12"})
    shadow = Shadow(world, tmp_path / "shadow")
    before = len(world.learning_writes())
    assert shadow.sync().outcome == "ok"
    assert len(world.learning_writes()) == before
    assert shadow.open() == {stale: {"fields"}}  # the others hold what the incumbent wrote
    [record] = shadow.store.list_disagreements(hibob_id=stale)
    d = record.disagreement
    assert (d.subject, d.wanted, d.holds) == (f"customField:{cost}", "CC-12", "CC-40")
    shadow.build("apply")
    assert shadow.sync().outcome == "ok"
    assert world.learning.custom_values_of(world.user_of(stale)["_id"])[cost] == "CC-12"
