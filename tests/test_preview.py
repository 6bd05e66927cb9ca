"""`reconciler preview --config CANDIDATE` (product §2.4, issue 17): one read, two plans, only
what differs, the candidate's safety verdict, and nothing written anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.commands.cli import main
from tests.support import World
from tests.test_requests import builder

SCOPE = """
[[scope.groups]]
conditions = [{ field = "work.department", op = "in", values = ["Engineering"] }]
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(tmp_path, RECONCILER_SYNC__MAX_DEACTIVATIONS="5")
    assert world.sync().outcome == "ok"
    for key, value in world.environ.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "settings.toml").write_text("")
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path / "settings.toml"))
    return world


def _preview(world: World, capsys, text: str, *extra: str) -> tuple[int, str]:
    candidate = world.db.parent / "candidate.toml"
    candidate.write_text(text, encoding="utf-8")
    code = main(["preview", "--config", str(candidate), *extra], build=builder(world))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _footprint(world: World) -> tuple:
    return (
        len(world.learning_writes()),
        len(world.store.list_passes(1000)),
        len(world.store.list_journal(limit=100_000)),
        world.store.list_held(),
    )


def test_a_scope_typo_shows_who_would_be_cut_off_and_exits_3_writing_nothing(world, capsys):
    before = _footprint(world)
    hibob_reads = len([r for r in world.hibob.requests if "search" in r[1]])
    code, out = _preview(world, capsys, SCOPE)
    assert code == 3, out
    outside = [
        h
        for h in world.active_employees()
        if world.hibob._labels["department"].get(world.hibob.records[h]["work.department"])
        != "Engineering"
        and world.user_of(h)
    ]
    lines = [line for line in out.splitlines()[1:] if "nothing -> deactivation held" in line]
    assert {line.split()[0] for line in lines} == set(outside)
    assert "limits: CANDIDATE's plan would hold" in out and "sync.max_deactivations" in out
    assert _footprint(world) == before
    assert len([r for r in world.hibob.requests if "search" in r[1]]) == hibob_reads + 1


def test_a_mapping_change_lists_old_and_new_values_in_json(world, capsys):
    code, out = _preview(world, capsys, '[mapping]\norganization = "work.site"\n', "--json")
    assert code == 0
    document = json.loads(out)
    hibob_id = world.active_employees()[2]
    [change] = [c for c in document["changes"] if c["employee_id"] == hibob_id]
    assert (change["current"], change["candidate"]) == ("nothing", "update")
    assert change["fields"]["organization"] == {
        "old": world.user_of(hibob_id)["organization"],
        "new": world.hibob.records[hibob_id]["work.site"],
    }
    assert document["held"] == []
    assert document["counts"]["nothing -> update"] == len(document["changes"])


def test_the_same_settings_show_no_difference(world, capsys):
    code, out = _preview(world, capsys, "")
    assert code == 0 and out.startswith("preview: 0 employees decided differently")


def test_an_invalid_candidate_exits_2_naming_the_key(world, capsys):
    code, out = _preview(world, capsys, '[sync]\nprehire = "sometimes"\n')
    assert code == 2 and "sync.prehire" in out
