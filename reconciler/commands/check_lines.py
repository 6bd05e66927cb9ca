"""`reconciler check`'s output: `CheckReport` prints `ok`/`WARN`/`FAIL` lines and counts them."""

from __future__ import annotations

from typing import TextIO


class CheckReport:
    """Prints `ok`/`WARN`/`FAIL` lines and counts them."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.failures, self.warnings = out, 0, 0

    def ok(self, text: str) -> None:
        print(f"ok   {text}", file=self.out)

    def warn(self, text: str) -> None:
        self.warnings += 1
        print(f"WARN {text}", file=self.out)

    def fail(self, text: str) -> None:
        self.failures += 1
        print(f"FAIL {text}", file=self.out)

    def check(self, is_ok: bool, text: str) -> None:
        (self.ok if is_ok else self.fail)(text)
