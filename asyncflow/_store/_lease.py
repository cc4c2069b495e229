"""Run ownership: who runs a run, whether that process still lives, and "crashed".

A run row whose status is ``running`` carries a lease: ``owner_pid`` and ``owner_host`` (the
process that created it) and ``heartbeat_at``, which that process's writer thread refreshes
every :data:`HEARTBEAT_SECONDS` while the run is unfinished (``FinishRun`` writes it one last
time). A process killed outright (SIGKILL, power loss of a remote machine, ``os._exit``) never
writes the run's final status; readers recognise such a run from its lease and report it as
``crashed``:

* owner on this host: the owner pid no longer exists (or is a zombie), or it exists but the
  heartbeat is older than :data:`STALE_SECONDS` (the pid was reused by another process, or
  the owner is stopped or stuck without its writer running);
* owner on another host: the heartbeat is older than :data:`STALE_SECONDS` (so the hosts'
  clocks must agree to well within that).

``crashed`` is derived when a run is read and never written: the row keeps ``running`` and
the lease facts, so every reader (on any host) decides for itself, nothing is written by a
reader, and a run whose owner turns out to be alive after all (a stopped process continued)
simply finishes as usual. A row without a lease (written before schema 2) stays
``running``: there is no evidence either way.

Two hosts (or containers) that share a host name but not a process table must not share a
store: each would take the other's live runs for crashed ones.
"""

from __future__ import annotations

import functools
import os
import socket
import time

from ._queries import RunRow

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "crashed_reason",
    "host_name",
    "owner_alive",
    "run_crash",
]

# How often the writer refreshes the heartbeat of the runs its process owns. The writer
# wakes at least every 2 s when idle, so a live owner's heartbeat is at most ~7 s old
# (longer only while its writer waits for a long transaction of another process).
HEARTBEAT_SECONDS = 5.0
# A heartbeat older than this means the owner is gone (12 missed refreshes).
STALE_SECONDS = 60.0


@functools.cache
def host_name() -> str:
    """This machine's host name, as recorded in ``runs.owner_host``."""
    return socket.gethostname()


def owner_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return True  # cannot tell: do not call it dead
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True  # no procfs (or it just ended): kill() said it exists
    # "pid (comm) state ...": comm may hold spaces and parentheses, so split at the last ")".
    fields = stat[stat.rfind(b")") + 1 :].split()
    return not fields or fields[0] not in (b"Z", b"X")


def crashed_reason(
    status: str,
    owner_pid: int | None,
    owner_host: str | None,
    heartbeat_at: float | None,
    *,
    now: float | None = None,
) -> str | None:
    """Why a run recorded as ``running`` is dead, or None (finished, alive or unknown).

    :param now: the current time (default ``time.time()``).
    """
    if status != "running" or owner_pid is None or owner_host is None or heartbeat_at is None:
        return None
    now = time.time() if now is None else now
    age = now - heartbeat_at
    who = f"process {owner_pid} on {owner_host}"
    if owner_host == host_name():
        if not owner_alive(owner_pid):
            return f"{who} ended without finishing the run"
        if age > STALE_SECONDS:
            return (
                f"{who} stopped refreshing the run's lease {age:.0f} s ago "
                "(that pid now belongs to another process, or the owner is stuck)"
            )
        return None
    if age > STALE_SECONDS:
        return f"{who} stopped refreshing the run's lease {age:.0f} s ago"
    return None


def run_crash(row: RunRow, *, now: float | None = None) -> str | None:
    """:func:`crashed_reason` of a run row: why its run is dead though recorded as running.

    A run for which this returns a reason is ``crashed``: nothing will ever finish it, and
    it may be resumed (its row still says ``running``).
    """
    return crashed_reason(row.status, row.owner_pid, row.owner_host, row.heartbeat_at, now=now)
