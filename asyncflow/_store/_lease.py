"""Run ownership: who runs a run, whether that process still lives, and "crashed".

A run row whose status is ``running`` carries a lease: ``owner_pid`` and ``owner_host`` (the
process that created it) and ``heartbeat_at``, which that process's writer thread refreshes
every :data:`HEARTBEAT_SECONDS` while the run is unfinished (``FinishRun`` writes it one last
time). A process killed outright (SIGKILL, power loss of a remote machine, ``os._exit``) never
writes the run's final status; readers recognise such a run from its lease and report it as
``crashed``:

* owner on this host: the owner pid no longer exists (or is a zombie), or the heartbeat is
  older than :data:`STALE_SECONDS` and the process now holding that pid started after the
  heartbeat was written (the pid was reused). An owner that is alive keeps its run live
  however old its heartbeat: its writer thread cannot beat while a step holds the GIL (a
  long C call), and a stopped process may be continued;
* owner on another host: the heartbeat is older than :data:`STALE_SECONDS` (so the hosts'
  clocks must agree to well within that).

gc is stricter still (:func:`lease_held`): it keeps every run whose lease has not expired,
even if its owner on this host is gone, and every run a reader would call live.

The lease constants can be shrunk for tests with ``$ASYNCFLOW_TEST_LEASE_SECONDS`` (the
stale window; the heartbeat period is a twelfth of it). Every process using a store must
then agree on it.

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
import math
import os
import socket
import time

from ._rows import RunRow

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_ENV",
    "STALE_SECONDS",
    "crashed_reason",
    "host_name",
    "lease_held",
    "lease_seconds",
    "owner_alive",
    "process_started",
    "run_crash",
]

# How often the writer refreshes the heartbeat of the runs its process owns. The writer
# wakes at least every 2 s when idle, so a live owner's heartbeat is at most ~7 s old
# (longer only while its writer waits for a long transaction of another process).
HEARTBEAT_SECONDS = 5.0
# A heartbeat older than this means the owner is gone (12 missed refreshes).
STALE_SECONDS = 60.0
# Test knob: the stale window in seconds (the heartbeat period follows as a twelfth).
LEASE_ENV = "ASYNCFLOW_TEST_LEASE_SECONDS"
# How far a process's start time read from /proc may be off (whole-second boot time).
_START_SLACK = 2.0


def lease_seconds() -> tuple[float, float]:
    """(heartbeat period, stale window): the constants, or ``$ASYNCFLOW_TEST_LEASE_SECONDS``."""
    text = os.environ.get(LEASE_ENV)
    if text:
        try:
            window = float(text)
        except ValueError:
            window = math.nan
        if math.isfinite(window) and window > 0:
            return window / 12, window
    return HEARTBEAT_SECONDS, STALE_SECONDS


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


def process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch), if /proc says."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open("/proc/stat", "rb") as fh:
            boot = next(float(line.split()[1]) for line in fh if line.startswith(b"btime "))
        ticks = float(stat[stat.rfind(b")") + 1 :].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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
    stale = lease_seconds()[1]
    who = f"process {owner_pid} on {owner_host}"
    if owner_host == host_name():
        if not owner_alive(owner_pid):
            return f"{who} ended without finishing the run"
        if age > stale:
            started = process_started(owner_pid)
            if started is not None and started > heartbeat_at + _START_SLACK:
                return (
                    f"{who} stopped refreshing the run's lease {age:.0f} s ago, and that pid "
                    "now belongs to another process"
                )
        # Alive: a step may hold the GIL (so the writer cannot beat), or it is stopped.
        return None
    if age > stale:
        return f"{who} stopped refreshing the run's lease {age:.0f} s ago"
    return None


def lease_held(
    status: str,
    owner_pid: int | None,
    owner_host: str | None,
    heartbeat_at: float | None,
    *,
    now: float | None = None,
) -> str | None:
    """Why gc must treat a run as live (a short phrase), or None if it may be deleted.

    A running run is live while its lease has not expired, whatever its owner looks like
    from here, and while a reader would not call it crashed (:func:`crashed_reason`: on
    this host, its owner is alive). A ``running`` row without a lease (before schema 2)
    is kept too: nothing says it has ended.
    """
    if status != "running":
        return None
    if owner_pid is None or owner_host is None or heartbeat_at is None:
        return "running (no lease recorded: written by an older asyncflow)"
    now = time.time() if now is None else now
    age = now - heartbeat_at
    who = f"running in process {owner_pid} on {owner_host}"
    if age <= lease_seconds()[1]:
        return f"{who}, lease renewed {max(age, 0.0):.0f} s ago"
    if crashed_reason(status, owner_pid, owner_host, heartbeat_at, now=now) is None:
        return f"{who}, which is alive (lease last renewed {age:.0f} s ago)"
    return None


def run_crash(row: RunRow, *, now: float | None = None) -> str | None:
    """:func:`crashed_reason` of a run row: why its run is dead though recorded as running.

    A run for which this returns a reason is ``crashed``: nothing will ever finish it, and
    it may be resumed (its row still says ``running``).
    """
    return crashed_reason(row.status, row.owner_pid, row.owner_host, row.heartbeat_at, now=now)
