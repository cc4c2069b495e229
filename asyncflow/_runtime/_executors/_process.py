"""The process executor: a pool of worker processes on this machine, one task at a time each.

Each worker is ``python -m asyncflow._runtime._procworker`` with one end of a private socket
pair (``_wire``); it is started the first time a task needs it and no worker is idle, up to
the pool's size, and stopped when the run ends. Starting, talking to and stopping workers all
happen in threads, never on the event loop. A worker serves its tasks one after another and
keeps what it learnt (the flow class, a read connection, a cache of read values) between them.

A task's worker is killed when the task must stop (its ``@timeout``, or the run is
cancelled); a worker that dies under a task (``os._exit``, a crash, the out-of-memory killer)
fails that task only, with a :class:`~asyncflow.WorkerLostError`; the next task gets a fresh
worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import anyio
import anyio.to_thread

from ..._errors import WorkerLostError
from .._jobs import Job, RemoteError, Reply, RunPack
from .._wire import ChannelClosed, receive, send

__all__ = ["ProcessExecutor"]

# How long a worker asked to stop may take before it is killed.
_STOP_SECONDS = 5.0


class _Undelivered(Exception):
    """The worker was gone before it got the job (it died while idle): the task never ran."""


class _Worker:
    """One worker process and the coordinator's end of its socket."""

    __slots__ = ("popen", "runs", "sock")

    def __init__(self, popen: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.popen = popen
        self.sock = sock
        self.runs: set[str] = set()  # runs whose pack this worker has

    @classmethod
    def start(cls) -> _Worker:
        """Start a worker process. Blocking (call it in a thread)."""
        ours, theirs = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "asyncflow._runtime._procworker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                env=_worker_env(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(popen, ours)

    def call(self, pack: RunPack, job: Job, pathspec: str) -> Reply:
        """Send ``job`` and wait for its reply. Blocking (call it in a thread).

        :raises WorkerLostError: the worker ended before it replied.
        """
        known = pack.key in self.runs
        try:
            send(self.sock, ("task", pack.key, None if known else pack, job))
        except ChannelClosed:
            raise _Undelivered from None  # the job never reached the worker: it did not run
        try:
            reply, buffers = receive(self.sock)
        except ChannelClosed:
            raise self._lost(pathspec) from None
        except Exception as exc:  # a reply that will not unpickle here
            # A foreach item whose class cannot be rebuilt here, or a step that wrote on the
            # worker's socket: the rest of the message is unread, so the worker is dropped
            # (the caller kills it) and the task fails saying why.
            raise RemoteError(
                type(exc).__name__,
                f"the reply of the worker process (pid {self.popen.pid}) running task "
                f"{pathspec} could not be read: {exc}. A value sent back other than as an "
                "artifact (a foreach item, an exception) must unpickle in the coordinating "
                "process; a step must not write on the worker's file descriptors.",
            ) from None
        assert isinstance(reply, Reply)
        if reply.ready:
            self.runs.add(pack.key)
        reply.attach(buffers)
        return reply

    def _lost(self, pathspec: str) -> WorkerLostError:
        try:
            code: int | None = self.popen.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        self.sock.close()
        if code is None:
            how = "stopped answering"
        elif code < 0:
            how = f"was killed by signal {_signal_name(-code)}"
            if -code == signal.SIGKILL:
                how += " (the kernel's out-of-memory killer sends it when memory runs out)"
            elif -code == signal.SIGSEGV:
                how += " (a crash in native code)"
        else:
            how = f"exited with code {code}"
            if code in (0, 1):
                how += " (os._exit() in the step?)"
        return WorkerLostError(
            f"the worker process (pid {self.popen.pid}) running task {pathspec} {how} before "
            "the task finished; the task failed, the run and the store are unharmed. Retry "
            "the step with @retry, or resume the run once the cause is fixed.",
            code,
        )

    def kill(self) -> None:
        """Kill the worker at once (never blocks); its thread sees the socket close."""
        with contextlib.suppress(OSError):
            self.popen.kill()

    def ask_stop(self) -> None:
        """Ask the worker to end after its current job (if it is still there). Blocking."""
        if self.popen.poll() is None:
            with contextlib.suppress(ChannelClosed, OSError):
                send(self.sock, ("stop",))

    def reap(self, deadline: float) -> None:
        """Wait for the worker to end until ``deadline`` (``time.monotonic()``), then kill
        it; close the socket. Blocking."""
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.sock.close()


def _worker_env() -> dict[str, str]:
    # The worker imports this very asyncflow, even when it is not installed (a checkout on
    # sys.path): its folder goes first on PYTHONPATH. The rest of sys.path comes with the pack.
    env = dict(os.environ)  # __file__ is asyncflow/_runtime/_executors/_process.py
    home = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    )
    rest = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = home + (os.pathsep + rest if rest else "")
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class ProcessExecutor:
    """A pool of at most ``size`` worker processes (see the module doc)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: anyio.Semaphore | None = None
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []

    async def run(self, pack: RunPack, job: Job, pathspec: str) -> Reply:
        """Run ``job`` on an idle worker, or a new one (see :class:`Executor`)."""
        if self._slots is None:
            self._slots = anyio.Semaphore(self.size)
        async with self._slots:
            while True:
                worker, fresh = await self._take()
                done = False
                try:
                    reply = await anyio.to_thread.run_sync(
                        worker.call, pack, job, pathspec, abandon_on_cancel=True
                    )
                    done = True
                except _Undelivered:
                    if fresh:  # a worker that dies before its first job: do not loop
                        raise worker._lost(pathspec) from None
                    continue  # an idle worker died (killed from outside): take another
                finally:
                    if done:
                        self._idle.append(worker)
                    else:  # cancelled, timed out or lost: this worker serves no other task
                        worker.kill()
                return reply

    async def _take(self) -> tuple[_Worker, bool]:
        # An idle worker that is still alive, else a new one (and whether it is new). An
        # idle worker may have died since its last task (killed from outside, the
        # out-of-memory killer); it is dropped, never handed a task it would fail.
        while self._idle:
            worker = self._idle.pop()
            if worker.popen.poll() is None:
                return worker, False
            worker.sock.close()
        worker = await anyio.to_thread.run_sync(_Worker.start)
        self._all.append(worker)
        return worker, True

    async def aclose(self) -> None:
        """Stop every worker, in a thread: idle ones end cleanly, busy ones (a task the run
        no longer waits for) are killed."""
        workers, idle = self._all, self._idle
        self._all, self._idle = [], []
        if workers:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_stop_all, workers, idle)


def _stop_all(workers: list[_Worker], idle: list[_Worker]) -> None:
    for worker in workers:
        if any(worker is w for w in idle):
            worker.ask_stop()
        else:
            worker.kill()
    deadline = time.monotonic() + _STOP_SECONDS  # one wait for all, not one each
    for worker in workers:
        worker.reap(deadline)
