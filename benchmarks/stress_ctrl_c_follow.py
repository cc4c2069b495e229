"""Ctrl-C at any moment of ``asyncflow events --follow`` and ``asyncflow logs --follow``.

Starts a slow run, then, again and again, a follower that gets SIGINT after a random delay:
from the first statement of ``asyncflow/__main__.py`` (the follower prints "ready" once
Python has started and imported asyncflow, then runs that file) to deep inside the follow.
Every follower must exit with 130 and print nothing on stderr (the run goes on).

With ``--from-start`` the follower is a plain ``python -m asyncflow`` and the delay counts
from its start: a SIGINT while Python starts and imports the package (0.1-0.8 s on a loaded
machine) ends as Python ends any program then (a KeyboardInterrupt traceback, killed by
SIGINT), before asyncflow's code runs at all; those are counted apart, not as failures.

    PYTHONPATH=$PWD python benchmarks/stress_ctrl_c_follow.py [--rounds 200] [--from-start]

Prints a table of exit codes and each bad case; exits 1 if any follower did anything but
exit 130 quietly.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

FLOW = """
import time
from asyncflow import FlowSpec, step

class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        for i in range(600):
            print(f"tick {self.input} {i}", flush=True)
            time.sleep(0.1)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SlowFlow.main()
"""


READY_DRIVER = (
    "import sys, asyncflow.__main__ as m; "
    "code = compile(open(m.__file__).read(), m.__file__, 'exec'); "
    "sys.argv = ['asyncflow', *sys.argv[1:]]; print('ready', flush=True); "
    "exec(code, {'__name__': '__main__', '__package__': 'asyncflow'})"
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--max-delay", type=float, default=1.0)
    parser.add_argument("--from-start", action="store_true")
    parser.add_argument("--seed", type=int, default=12)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    folder = tempfile.mkdtemp(prefix="asyncflow-ctrlc-")
    with open(os.path.join(folder, "slow.py"), "w") as f:
        f.write(textwrap.dedent(FLOW))
    run = subprocess.Popen(
        [sys.executable, "slow.py", "run", "--store", "s.db"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert run.stdout is not None
    run.stdout.readline()
    time.sleep(1.0)  # some events and log lines are stored
    codes: collections.Counter[tuple[str, int]] = collections.Counter()
    bad: list[str] = []
    try:
        for i in range(opts.rounds):
            command = ["events", "SlowFlow/1", "--follow"]
            if i % 2:
                command = ["logs", "SlowFlow/1/work", "--follow"]
            start = ["-m", "asyncflow"] if opts.from_start else ["-c", READY_DRIVER]
            follower = subprocess.Popen(
                [sys.executable, *start, *command, "--store", "s.db"],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert follower.stdout is not None
            if not opts.from_start:
                assert follower.stdout.readline() == "ready\n"
            delay = rng.uniform(0, opts.max_delay)
            time.sleep(delay)
            follower.send_signal(signal.SIGINT)
            _, err = follower.communicate(timeout=60)
            codes[(command[0], follower.returncode)] += 1
            if follower.returncode != 130 or err:
                last = err.strip().splitlines()[-1:] or [""]
                bad.append(f"{command[0]} after {delay:.3f}s: exit {follower.returncode} {last[0]}")
        if run.poll() is not None:
            bad.append(f"the run ended with {run.returncode} while followed")
    finally:
        run.kill()
        run.wait()
    for (command, code), n in sorted(codes.items()):
        print(f"{command:<7} exit {code:>4}: {n}")
    if bad:
        print(f"{len(bad)} bad:", *sorted(bad, key=lambda b: float(b.split()[2][:-2])), sep="\n")
        return 1
    print("every follower exited 130 quietly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
