"""systemd's notify protocol for `reconciler run` (a `Type=notify` unit): READY, STOPPING and
the watchdog keep-alive, as datagrams to $NOTIFY_SOCKET.

Called by the service only. Outside systemd ($NOTIFY_SOCKET unset) every call does nothing, and
a failed send is logged, never raised: the protocol must not be able to stop the service.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("reconciler.service.sdnotify")


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; True when a notify socket took it."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # the abstract namespace: a leading NUL byte on the wire
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state.split("=", 1)[0], exc)
        return False
    return True


def watchdog_interval_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of systemd's WatchdogSec, or None when it is off.

    systemd sets WATCHDOG_USEC (and WATCHDOG_PID, the process it watches) only when the unit
    has `WatchdogSec=`; half the period leaves room for one late ping.
    """
    environ = os.environ if environ is None else environ
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def ping_watchdog() -> bool:
    return notify("WATCHDOG=1")
