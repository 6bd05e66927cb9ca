"""The instance lock: one reconciler process at a time owns a database.

An exclusive `flock` on `<database>.lock`, taken by the service and by writing commands through
`Store`. The kernel drops it when the process dies, so a crash never leaves it behind; the pid
written in the file is for humans only. Nothing here touches the database itself.
"""

from __future__ import annotations

import fcntl
import os
from typing import TextIO

from reconciler.errors import InstanceLocked, StoreUnusable


class InstanceLock:
    """The lock beside `database`; `acquire` holds it until `release` or the process ends."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = database + ".lock"
        self._handle: TextIO | None = None

    @property
    def is_held(self) -> bool:
        """True when this object holds the lock."""
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock; InstanceLocked when another process has it."""
        if self._handle is not None:
            return
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InstanceLocked(
                f"another reconciler is already running on {self.database} (pid "
                f"{_owner(self.path)}): stop it first, or let it do the work (`reconciler "
                "resync`)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock (this one counts as holding it too)."""
        if self._handle is not None:
            return True
        if not os.path.exists(self.path):
            return False
        with self._open() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    def _open(self) -> TextIO:
        try:
            # Owner-only whatever the umask (the file holds the pid of the running instance).
            descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_APPEND, 0o600)
            return open(descriptor, "a+", encoding="ascii")  # noqa: SIM115 - held while locked
        except IsADirectoryError:
            raise StoreUnusable(
                f"lock file {self.path} is a directory: remove it (rmdir {self.path}); the "
                "reconciler creates the file itself"
            ) from None
        except OSError as exc:
            raise StoreUnusable(
                f"cannot open the lock file {self.path} ({exc.strerror or exc}): run as the "
                "user that owns the database, or remove the file so it is re-created"
            ) from None


def _owner(path: str) -> str:
    """The pid the holder wrote, for the message only ("?" when unreadable)."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(20).strip() or "?"
    except (OSError, ValueError):
        return "?"
