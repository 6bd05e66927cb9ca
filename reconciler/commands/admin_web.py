"""What the CLI gives the admin page of `reconciler run` (`status`'s object, `explain`'s text,
`history --since`'s parser, so the page computes nothing twice), and `reconciler admin-password`.

Called by the CLI only. The password is read from the terminal without echo, or as one line of
standard input; only its hash is printed, never the password.
"""

from __future__ import annotations

import getpass
import io
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from reconciler.commands.explain import explain_employee
from reconciler.commands.status import collect_status
from reconciler.errors import ConfigError
from reconciler.passes.context import PassContext
from reconciler.service.admin_auth import hash_password
from reconciler.service.admin_views import AdminViews


def build_admin_views(
    services: PassContext, parse_since: Callable[[str, datetime], str]
) -> AdminViews:
    def explain(identifier: str, now: datetime) -> tuple[int, str]:
        out = io.StringIO()
        code = explain_employee(services, services.store, identifier, now, out)
        return code, out.getvalue()

    def since(text: str, now: datetime) -> str:
        try:
            return parse_since(text, now)
        except Exception as exc:  # argparse's ArgumentTypeError is no ValueError
            raise ValueError(str(exc)) from None

    return AdminViews(collect_status=collect_status, explain=explain, parse_since=since)


def print_password_hash(
    out: TextIO,
    stdin: TextIO | None = None,
    ask: Callable[[str], str] = getpass.getpass,
) -> int:
    """`reconciler admin-password`: read the password (twice on a terminal), print its hash."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = ask("admin password: ")
        if ask("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was printed")
    else:
        password = stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError("no password given (type it, or give one line on standard input)")
    print(hash_password(password), file=out)
    return 0
