"""The instance lock: one reconciler process at a time owns a database.

An exclusive `flock` on the database file itself, taken by the service and by writing commands
through `Store`. It follows the file, not a path: a symlinked `store.path`, or a deleted pid
file, cannot start a second instance. The kernel drops it when the process dies, so a crash
never leaves it behind. `<database>.lock` holds the owner's pid, for messages only.

SQLite locks the same file with POSIX record locks, which Linux keeps apart from `flock`; but
closing *any* descriptor of the file drops the process's POSIX locks. So the lock holds one
descriptor for the store's lifetime and never closes another: `close` runs after SQLite's.
"""

from __future__ import annotations

import fcntl
import os

from reconciler.errors import InstanceLocked, StoreUnusable


class InstanceLock:
    """The lock on `database`; `acquire` holds it until `release` or the process ends."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.pid_path = os.path.realpath(database) + ".lock"
        self._descriptor: int | None = None
        self._is_held = False

    @property
    def is_held(self) -> bool:
        """True when this object holds the lock."""
        return self._is_held

    def acquire(self) -> None:
        """Take the lock; InstanceLocked when another process (or store) has it."""
        if self._is_held:
            return
        try:
            fcntl.flock(self._fd(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstanceLocked(
                f"another reconciler is already running on {self.database} (pid "
                f"{_owner(self.pid_path)}): stop it first, or let it do the work (`reconciler "
                "resync`)"
            ) from None
        self._is_held = True
        _write_pid(self.pid_path)

    def release(self) -> None:
        if self._is_held and self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        self._is_held = False

    def close(self) -> None:
        """Release and close the descriptor: only once SQLite's connection is closed."""
        self.release()
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def is_held_elsewhere(self) -> bool:
        """True when another process holds the lock (this one counts as holding it too)."""
        if self._is_held:
            return True
        descriptor = self._fd()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False

    def _fd(self) -> int:
        if self._descriptor is None:
            try:
                self._descriptor = os.open(self.database, os.O_RDWR)
            except OSError as exc:
                raise StoreUnusable(
                    f"cannot open the database {self.database} to lock it "
                    f"({exc.strerror or exc}): run as the user that owns it"
                ) from None
        return self._descriptor


def _write_pid(path: str) -> None:
    """Best effort, owner-only: the pid is for messages, the lock is on the database."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))
    except OSError:
        pass


def _owner(path: str) -> str:
    """The pid the holder wrote, for the message only ("?" when unreadable)."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(20).strip() or "?"
    except (OSError, ValueError):
        return "?"
