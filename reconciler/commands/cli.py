"""Command line: thin commands that load settings, build objects and call one function each.

Every ReconcilerError becomes one line on stderr and its exit code (0 ok, 1 failed, 2 bad
settings or usage, 3 held by a safety limit); never a traceback for an expected failure.
Actions (sync, resync, release, quarantine --clear, explain --apply) go through `admin`, which
asks the running service when there is one.

This module holds `main` (the console script and `python -m reconciler`); the argument parser
is in cli_parser, the commands' handlers in cli_handlers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.commands.cli_parser import build_parser
from reconciler.commands.logs import configure_logging
from reconciler.commands.wiring import build_pass_context
from reconciler.config import load_settings
from reconciler.errors import ApiError, ReconcilerError
from reconciler.passes.context import PassContext


def main(
    argv: Sequence[str] | None = None, *, build: Callable[..., PassContext] = build_pass_context
) -> int:
    """Run one command; `build` turns settings into PassContext (tests inject simulators)."""
    args = build_parser().parse_args(argv)
    built: list[PassContext] = []

    def build_and_keep(*given: Any, **options: Any) -> PassContext:
        built.append(build(*given, **options))
        return built[-1]

    args.build = build_and_keep
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        settings = (
            None if args.command in ("demo", "admin-password") else load_settings(args.config)
        )
        code = int(args.func(args, settings))
        sys.stdout.flush()  # a reader that closed the pipe is met here, not at exit
        return code
    except ReconcilerError as exc:
        code = exc.exit_code if not isinstance(exc, ApiError) else 1
        if args.command == "run":  # the service's journal reads JSON lines, this one too
            logging.getLogger("reconciler").error("%s", exc, extra={"exit_code": code})
        else:
            print(f"reconciler: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`history | head`): stop quietly, as if killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        for context in built:  # the HTTP clients' pooled connections end with the command
            context.close_clients()
