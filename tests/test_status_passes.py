"""`status` during and after passes (issue 15, item 16): a running pass says so with what it
has written so far, and an interrupted pass that had written shows those writes, never
"None … no changes"."""

from __future__ import annotations

import io
from pathlib import Path

from reconciler.commands.status import collect_status
from reconciler.commands.terminal import print_status
from reconciler.store.database import Store
from tests.support import NOW, World


def status_text(world: World, store: Store) -> str:
    out = io.StringIO()
    print_status(collect_status(store, world.settings, world.now), out)
    return out.getvalue()


def write_two_creates(store: Store, pass_id: int) -> None:
    for hibob_id in ("e1", "e2"):
        journal_id = store.journal_start(pass_id, hibob_id, None, "create", [], "new", NOW)
        store.journal_finish(journal_id, "ok")
    store.journal_start(pass_id, "e3", None, "update", [], "changed", NOW)  # never answered


def test_a_running_pass_is_shown_as_running_with_its_writes_so_far(tmp_path: Path) -> None:
    world = World(tmp_path, size=10)
    assert world.sync().outcome == "ok"
    store = Store(world.db)
    store.acquire_instance_lock()  # the process running the pass
    try:
        pass_id = store.start_pass("full", NOW)
        write_two_creates(store, pass_id)
        text = status_text(world, Store(world.db))
    finally:
        store.release_instance_lock()
        store.close()

    assert "None" not in text
    assert f"pass #{pass_id} full running since {NOW:%Y-%m-%dT%H:%M}" in text
    assert "so far: create 2, update 1 unconfirmed" in text
    assert f"last pass #{pass_id - 1} incremental ok" in text  # the last finished pass


def test_an_interrupted_pass_that_wrote_shows_its_writes(tmp_path: Path) -> None:
    world = World(tmp_path, size=10)
    assert world.sync().outcome == "ok"
    store = Store(world.db)
    pass_id = store.start_pass("incremental", NOW)
    write_two_creates(store, pass_id)
    store.close()  # killed: the row stays open, nobody holds the lock

    text = status_text(world, Store(world.db))

    assert "None" not in text and "no changes" not in text
    assert f"last pass #{pass_id} incremental interrupted" in text
    assert "create 2, update 1 unconfirmed" in text

    assert world.sync().outcome == "ok"  # the next pass closes it as interrupted
    history = {p.id: p for p in Store(world.db).list_passes(5)}
    assert history[pass_id].outcome == "interrupted"
    assert history[pass_id].counts == {"create": 2, "update_unconfirmed": 1}
