"""`reconciler demo`: the whole product against the bundled simulators, no credentials needed.

Serves both simulators on 127.0.0.1 (real HTTP), generates a company, and walks through a dry
run, a first pass, HR changes and the passes that follow. Uses a temporary database; never
touches anything but loopback.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import tempfile
from pathlib import Path
from typing import TextIO

from reconciler.config import load_settings
from reconciler.reconcile import PassResult, run_pass
from reconciler.report import print_result
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve
from reconciler.wiring import Services, build_services

SHOWN_LINES = 12
# The demo raises the simulated 360Learning write limit (10/s in production) so that the
# first pass over a few hundred people takes seconds, not minutes.
DEMO_WRITES_PER_SECOND = 200


def run_demo(size: int = 300, out: TextIO | None = None) -> int:
    out = out or io.StringIO()
    logging.getLogger("reconciler").setLevel(logging.WARNING)
    today = dt.date.today()
    hibob = HibobSimulator(generate_company(size, seed=2026, today=today), today=today)
    learning = LearningSimulator()
    learning.write_limit_per_second = DEMO_WRITES_PER_SECOND + 50
    with serve(hibob.handle) as hibob_server, serve(learning.handle) as learning_server, \
            tempfile.TemporaryDirectory(prefix="reconciler-demo-") as folder:
        services = _services(hibob_server.url, learning_server.url, learning, Path(folder))
        say = _Narrator(services, out)
        say.title(f"Hibob simulator at {hibob_server.url}/v1 with {size} generated employees; "
                  f"360Learning simulator at {learning_server.url}; database in {folder}")
        say.step("1. Dry run: what the first pass would do (nothing is written); the generated "
                 "company has a few bad records, skipped with their reason", dry_run=True)
        say.step("2. First real pass: provision everyone in scope")
        changed = _hr_changes(hibob, say.linked_employees())
        say.title("3. HR changes in Hibob: " + "; ".join(changed[0]))
        say.step("4. Incremental pass: exactly those changes")
        hibob.rehire(changed[1])
        say.title("5. HR rehires the person terminated above")
        say.step("6. Incremental pass: the rehire is reactivated")
        final = say.step("7. Final pass: nothing left to do")
        calls = len(learning.requests)
        say.title(f"Done: {len(learning.users_by_mail())} users in the 360Learning simulator, "
                  f"{calls} 360Learning API calls in all; see `reconciler status` and "
                  "`reconciler history` on a real database.")
    return 0 if final.plan.is_empty else 1


def _services(hibob_url: str, learning_url: str, learning: LearningSimulator,
              folder: Path) -> Services:
    settings = load_settings(environ={
        "RECONCILER_HIBOB__BASE_URL": f"{hibob_url}/v1",
        "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
        "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
        "RECONCILER_LEARNING__BASE_URL": learning_url,
        "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
        "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
        "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
        "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": str(DEMO_WRITES_PER_SECOND),
        "RECONCILER_STORE__PATH": str(folder / "reconciler.db"),
    }, read_file=False)
    return build_services(settings)


def _hr_changes(hibob: HibobSimulator, linked: list[str]) -> tuple[list[str], str]:
    promoted, leaver = linked[10], linked[20]
    hire = hibob.add_employee(**{"root.firstName": "Zoë", "root.surname": "Nouvelle",
                                 "work.title": "Data Analyst"})
    hibob.update_employee(promoted, **{"work.title": "Head of Demos"})
    hibob.terminate(leaver, on=hibob.today)
    return [f"hired {hire} (Zoë Nouvelle)", f"new title for {promoted}",
            f"terminated {leaver}"], leaver


class _Narrator:
    def __init__(self, services: Services, out: TextIO) -> None:
        self.services = services
        self.out = out

    def title(self, text: str) -> None:
        print(f"\n== {text}", file=self.out)

    def step(self, text: str, dry_run: bool = False) -> PassResult:
        self.title(text)
        now = dt.datetime.now(dt.UTC)
        result = run_pass(self.services, "incremental", now=now, dry_run=dry_run)
        buffer = io.StringIO()
        # Skipped records are listed once, in the dry run; later passes only count them.
        print_result(result, buffer, show_problems=dry_run)
        lines = buffer.getvalue().splitlines()
        for line in lines[: SHOWN_LINES + 1]:
            print(line, file=self.out)
        if len(lines) > SHOWN_LINES + 1:
            print(f"  ... and {len(lines) - SHOWN_LINES - 1} more lines", file=self.out)
        print(f"  ({result.duration_seconds:.1f} s)", file=self.out)
        return result

    def linked_employees(self) -> list[str]:
        snapshot = self.services.store.load_snapshot()
        return sorted(h for h, e in snapshot.items() if e.learning_user_id and e.is_active)
