"""`reconciler demo`: the whole product against the bundled simulators, no credentials needed.

Serves both simulators on 127.0.0.1 (real HTTP), generates a company, and walks through a dry
run, a first pass, HR changes and the passes that follow, and ends with the preview of a scope
change (the cut-offs it would hold). Uses a temporary database, or with
`keep` a folder that keeps the database and a settings file to explore afterwards; never
touches anything but loopback.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TextIO

from reconciler.commands.explain import explain_employee
from reconciler.commands.preview import run_preview
from reconciler.commands.terminal import print_result
from reconciler.commands.wiring import build_pass_context
from reconciler.config import load_settings
from reconciler.core.vocabulary import PassKind
from reconciler.passes.context import PassContext
from reconciler.passes.reconcile import PassResult, run_pass
from reconciler.sandbox.company import generate_company
from reconciler.sandbox.hibob import HibobSimulator
from reconciler.sandbox.learning import LearningSimulator
from reconciler.sandbox.server import serve

SHOWN_LINES = 12
# The demo raises the simulated 360Learning write limit (10/s in production) so that the
# first pass over a few hundred people takes seconds, not minutes.
DEMO_WRITES_PER_SECOND = 200


DEMO_SCOPE = (
    '[{"conditions": [{"field": "work.site", "op": "not_equals", "value": "Contractors"}]}]'
)
# The mapping model (product §1.5) on show: a template organization and two custom fields.
COST_CENTER, CONTRACT_END = "work.custom.field_1644932887286", "work.custom.field_1716448572063"
DEMO_FIELDS = '{"organization": {"template": "{work.site} / {work.department}"}}'
DEMO_CUSTOM_FIELDS = json.dumps(
    [
        {
            "name": "Cost center",
            "from": COST_CENTER,
            "map": {"CC 12": "CC-12", "CC12": "CC-12", "CC-40": "CC-40", "CC 77": "CC-77"},
            "empty": "clear",
        },
        {"name": "Contract end date", "from": CONTRACT_END},
    ]
)
PREVIEW_CONDITION = {"field": "work.department", "op": "equals", "value": "Engineering"}
SANDBOX_CREDENTIALS = {
    "RECONCILER_HIBOB__SERVICE_USER_ID": "sandbox-user",
    "RECONCILER_HIBOB__SERVICE_USER_TOKEN": "sandbox-token",
    "RECONCILER_LEARNING__CLIENT_ID": "sandbox-client",
    "RECONCILER_LEARNING__CLIENT_SECRET": "sandbox-secret",
}


def run_demo(size: int = 300, out: TextIO | None = None, keep: str | Path | None = None) -> int:
    """The walk-through; 0 when the final pass has nothing left to do."""
    out = out or io.StringIO()
    # Skip reasons are logged as warnings for operators; the demo prints them itself.
    logging.getLogger("reconciler").setLevel(logging.ERROR)
    today = dt.date.today()
    hibob = HibobSimulator(generate_company(size, seed=2026, today=today), today=today)
    learning = LearningSimulator()
    learning.write_limit_per_second = DEMO_WRITES_PER_SECOND + 50
    _custom_fields(hibob, learning)
    with (
        serve(hibob.handle) as hibob_server,
        serve(learning.handle) as learning_server,
        _folder(keep) as folder,
    ):
        services = _services(hibob_server.url, learning_server.url, learning, Path(folder))
        try:
            say = _Narrator(services, out)
            say.title(
                f"Hibob simulator at {hibob_server.url}/v1 with {size} generated employees; "
                f"360Learning simulator at {learning_server.url}; database in {folder}"
            )
            say.step(
                "1. Dry run: what the first pass would do (nothing is written); the generated "
                "company has a few bad records, skipped with their reason",
                dry_run=True,
            )
            say.step("2. First real pass: provision everyone in scope")
            changed = _hr_changes(hibob, say.linked_employees())
            say.title("3. HR changes in Hibob: " + "; ".join(changed[0]))
            say.step("4. Incremental pass: exactly those changes")
            hibob.rehire(changed[1])
            say.title("5. HR rehires the person terminated above")
            say.step("6. Incremental pass: the rehire is reactivated")
            final = say.step("7. Final pass: nothing left to do")
            calls = len(learning.requests)
            say.title(
                f"Done: {len(learning.users_by_mail())} users in the 360Learning simulator, "
                f"{calls} 360Learning API calls in all."
            )
            say.explain_examples(hibob)
            say.explain_mapping(
                next(h for h in say.linked_employees() if hibob.records[h].get(CONTRACT_END))
            )
            say.preview_scope_change()
            if keep is not None:
                _keep(services, hibob_server.url, learning_server.url, Path(folder), say)
        finally:
            services.close_clients()
            services.store.close()
    return 0 if final.plan.is_empty else 1


def _custom_fields(hibob: HibobSimulator, learning: LearningSimulator) -> None:
    """A Cost center (with authorized values, some spelt otherwise in Hibob) and a contract end
    date on both sides, and a Badge field the reconciler does not manage."""
    centers = ["CC-12", "CC-40", "CC-77"]
    learning.add_custom_field("Cost center", "string", authorized_values=centers)
    learning.add_custom_field("Contract end date", "date")
    learning.add_custom_field("Badge", "string")
    for number, hibob_id in enumerate(sorted(hibob.records)):
        end = hibob.today + dt.timedelta(days=200 + number) if number % 4 == 0 else None
        hibob.update_employee(
            hibob_id, **{COST_CENTER: ("CC 12", "CC-40", "CC 77")[number % 3], CONTRACT_END: end}
        )


def _folder(keep: str | Path | None) -> AbstractContextManager[str]:
    if keep is None:
        return tempfile.TemporaryDirectory(prefix="reconciler-demo-")
    Path(keep).mkdir(parents=True, exist_ok=True)
    return nullcontext(str(Path(keep).resolve()))


def _keep(
    services: PassContext, hibob_url: str, learning_url: str, folder: Path, say: _Narrator
) -> None:
    """Leave a settings file beside the database, and say what to try on them."""
    settings = folder / "settings.toml"
    settings.write_text(
        "# Left by `reconciler demo --keep`: the demo's database and settings.\n"
        "# The simulators below stopped with the demo: commands that read only the database\n"
        "# (status, history, quarantine, release --list, explain --offline) work; the others\n"
        "# cannot reach the APIs, and no credentials are kept (credentials never go in a\n"
        "# settings file: see the README).\n"
        f'[hibob]\nbase_url = "{hibob_url}/v1"\n\n'
        f'[learning]\nbase_url = "{learning_url}"\n'
        f'default_group_id = "{services.settings.learning.default_group_id}"\n\n'
        '[[scope.groups]]\nconditions = [{ field = "work.site", op = "not_equals", '
        'value = "Contractors" }]\n\n'
        f'[store]\npath = "{folder / "reconciler.db"}"\n',
        encoding="utf-8",
    )
    skipped = [
        row for row in services.store.list_skipped() if not row.reason.startswith("ambiguous")
    ]
    example = skipped[0].hibob_id if skipped else "EMPLOYEE"
    config = f"--config {settings}"
    say.title(
        f"Kept the database and settings in {folder}. These read only the database, so "
        "they work now that the simulators are gone:"
    )
    for line in (
        f"reconciler {config} status",
        f"reconciler {config} history --since 1h",
        f"reconciler {config} history --employee {example}",
        f"reconciler {config} explain --offline {example}",
        f"reconciler {config} quarantine",
        f"reconciler {config} release --list",
    ):
        print(f"  {line}", file=say.out)
    print(
        "  (explain without --offline, sync and resync need the APIs, which stopped with the demo)",
        file=say.out,
    )


def _services(
    hibob_url: str, learning_url: str, learning: LearningSimulator, folder: Path
) -> PassContext:
    settings = load_settings(
        environ={
            "RECONCILER_HIBOB__BASE_URL": f"{hibob_url}/v1",
            **SANDBOX_CREDENTIALS,
            "RECONCILER_LEARNING__BASE_URL": learning_url,
            "RECONCILER_SCOPE__GROUPS": DEMO_SCOPE,
            "RECONCILER_MAPPING__ORGANIZATION": "",
            "RECONCILER_MAPPING__FIELDS": DEMO_FIELDS,
            "RECONCILER_MAPPING__CUSTOM_FIELDS": DEMO_CUSTOM_FIELDS,
            "RECONCILER_LEARNING__DEFAULT_GROUP_ID": learning.root_group_id,
            "RECONCILER_LEARNING__MAX_WRITES_PER_SECOND": str(DEMO_WRITES_PER_SECOND),
            "RECONCILER_STORE__PATH": str(folder / "reconciler.db"),
        },
        read_file=False,
    )
    return build_pass_context(settings)


def _hr_changes(hibob: HibobSimulator, linked: list[str]) -> tuple[list[str], str]:
    promoted, leaver = linked[10], linked[20]
    hire = hibob.add_employee(
        **{"root.firstName": "Zoë", "root.surname": "Nouvelle", "work.title": "Data Analyst"}
    )
    hibob.update_employee(promoted, **{"work.title": "Head of Demos", COST_CENTER: "CC12"})
    hibob.terminate(leaver, on=hibob.today)
    return [
        f"hired {hire} (Zoë Nouvelle)",
        f"new title and cost center for {promoted}",
        f"terminated {leaver}",
    ], leaver


class _Narrator:
    def __init__(self, services: PassContext, out: TextIO) -> None:
        self.services = services
        self.out = out

    def title(self, text: str) -> None:
        print(f"\n== {text}", file=self.out)

    def step(self, text: str, dry_run: bool = False) -> PassResult:
        self.title(text)
        now = dt.datetime.now(dt.UTC)
        result = run_pass(self.services, PassKind.INCREMENTAL, now=now, dry_run=dry_run)
        buffer = io.StringIO()
        print_result(result, buffer, show_problems=False)
        lines = buffer.getvalue().splitlines()
        for line in lines[: SHOWN_LINES + 1]:
            print(line, file=self.out)
        if len(lines) > SHOWN_LINES + 1:
            print(f"  ... and {len(lines) - SHOWN_LINES - 1} more lines", file=self.out)
        # Skip reasons in full once, in the dry run; the passes journal them (`history`).
        for problem in result.plan.problems if dry_run else ():
            print(
                f"  {problem.hibob_id}  {problem.email or '-'}  skipped  {problem.reason}",
                file=self.out,
            )
        print(f"  ({result.duration_seconds:.1f} s)", file=self.out)
        return result

    def explain_examples(self, hibob: HibobSimulator) -> None:
        """`reconciler explain` for one out-of-scope and one skipped employee: why not synced."""
        skipped = [
            row
            for row in self.services.store.list_skipped()
            if not row.reason.startswith("ambiguous")
        ]
        outside = sorted(
            h
            for h, r in hibob.records.items()
            if r.get("work.site") == "Contractors" and r.get("internal.status") == "Active"
        )
        examples = [
            (f"8. Why is {h} not in 360Learning? (reconciler explain {h})", h) for h in outside[:1]
        ]
        examples += [
            (
                f"9. And {row.hibob_id}? (reconciler explain {row.hibob_id})",
                row.hibob_id,
            )
            for row in skipped[:1]
        ]
        for text, hibob_id in examples:
            self.title(text)
            buffer = io.StringIO()
            explain_employee(
                self.services, self.services.store, hibob_id, dt.datetime.now(dt.UTC), buffer
            )
            is_journal = False
            for line in buffer.getvalue().splitlines():
                is_journal = is_journal or line == "last actions:"
                # The verdicts and the journal; field values are in `explain` itself.
                if (
                    is_journal
                    or line.startswith("  group")
                    or not line.startswith(("  ", "fields read"))
                ):
                    print(line, file=self.out)

    def explain_mapping(self, hibob_id: str) -> None:
        """Each value written with its rule and the Hibob values it came from."""
        self.title(
            f"10. Where do {hibob_id}'s values come from? (reconciler explain {hibob_id}: a "
            "template organization, a Cost center through its lookup table, a contract end date)"
        )
        buffer = io.StringIO()
        explain_employee(
            self.services, self.services.store, hibob_id, dt.datetime.now(dt.UTC), buffer
        )
        shown = False
        for line in buffer.getvalue().splitlines():
            shown = (shown or line.startswith("desired:")) and not line.startswith("  groups")
            if shown and (line.startswith("desired:") or "←" in line):
                print(line, file=self.out)

    def preview_scope_change(self) -> None:
        """`reconciler preview` of a scope narrowed to one department: who would be cut off,
        and the breaker holding them. Nothing is written."""
        settings = self.services.settings
        scope = {"groups": [{"conditions": [PREVIEW_CONDITION]}]}
        candidate = settings.model_copy(
            update={"scope": type(settings.scope).model_validate(scope)}
        )
        self.title(
            "11. Preview of a scope change (reconciler preview --config candidate.toml): "
            'scope narrowed to work.department = "Engineering"; nothing is written'
        )
        buffer = io.StringIO()
        code = run_preview(self.services, candidate, buffer, as_json=False)
        lines = buffer.getvalue().splitlines()
        shown = lines[: SHOWN_LINES + 1]
        verdict = [line for line in lines[SHOWN_LINES + 1 :] if line.startswith("limits:")]
        for line in shown:
            print(line, file=self.out)
        if len(lines) > len(shown) + len(verdict):
            print(f"  ... and {len(lines) - len(shown) - len(verdict)} more lines", file=self.out)
        for line in verdict:
            print(line, file=self.out)
        print(f"  (exit {code}: a script can gate the change on it)", file=self.out)

    def linked_employees(self) -> list[str]:
        snapshot = self.services.store.load_snapshot()
        return sorted(h for h, e in snapshot.items() if e.learning_user_id and e.is_active)
