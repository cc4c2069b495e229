"""What echoing task output costs a run of ``python flow.py run``, per progress display.

    python benchmarks/bench_echo.py [--lines N] [--repeat N] [--modes rich,plain,...]

A plain step prints ``--lines`` lines (20,000 by default); the command runs on a
pseudo-terminal (120 x 40) under each ``ASYNCFLOW_PROGRESS`` display, and with stdout a pipe
(``piped``: the ``lines`` display). The figure is the run's own duration, as its final line
says (``Run EchoBench/N succeeded in 1.23 s``), median of the repeats; the ratio is to the
``plain`` display's. Every echoed line is counted, so a display that drops lines shows.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

FLOW = """
from asyncflow import FlowSpec, Parameter, step

class EchoBench(FlowSpec):
    lines = Parameter("lines", default=20000)

    @step
    def start(self):
        for i in range(self.lines):
            print(f"line {i}")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    EchoBench.main()
"""


def on_pty(args: list[str], cwd: str, env: dict[str, str]) -> bytes:
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        if not data:
            break
        out += data
    proc.wait()
    os.close(master)
    return bytes(out)


def once(mode: str, flow: str, lines: int) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNCFLOW_PROGRESS"}
    env["TERM"] = "xterm"
    args = [sys.executable, flow, "run", "--store", "s.db", "--lines", str(lines)]
    cwd = os.path.dirname(flow)
    if mode == "piped":
        out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, check=True).stdout
    else:
        env["ASYNCFLOW_PROGRESS"] = mode
        out = on_pty(args, cwd, env)
    m = re.search(rb"succeeded in ([0-9.]+) s", out)
    if m is None:
        raise SystemExit(f"{mode}: no final line in {out[-300:]!r}")
    return float(m.group(1)), len(re.findall(rb"\] line \d+\r?\n", out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="rich,plain,lines,off,piped")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-echo-")
    flow = os.path.join(folder, "echo_bench.py")
    with open(flow, "w") as f:
        f.write(textwrap.dedent(FLOW))
    results: dict[str, float] = {}
    for mode in args.modes.split(","):
        samples = []
        for _ in range(args.repeat):
            took, echoed = once(mode, flow, args.lines)
            samples.append(took)
            if echoed != args.lines:
                print(f"  {mode}: {echoed} of {args.lines} lines echoed", file=sys.stderr)
        results[mode] = statistics.median(samples)
        shown = ", ".join(f"{s:.2f}" for s in samples)
        print(f"{mode:6} run {results[mode]:6.2f} s  (samples {shown})")
    if "plain" in results:
        for mode, took in results.items():
            print(f"{mode:6} / plain = {took / results['plain']:.2f}")
    load = os.getloadavg()[0]
    print(f"{args.lines} lines, load {load:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
