"""Summarise a ``py-spy record --threads -f raw`` profile: busy samples per thread, top frames.

    py-spy record -r 500 --threads -f raw -o /tmp/fe.raw -- python benchmarks/bench_foreach.py
    python benchmarks/pyspy_top.py /tmp/fe.raw [--top 30] [--thread "AnyIO worker"]

py-spy also samples threads that are waiting; stacks whose innermost frame is a known wait
(a condition, the selector, a queue get, the scheduler's lock) are counted as idle and left
out, so the percentages are of busy samples. "own" is time in the frame itself (including C
functions it calls, e.g. SQLite), "incl." includes its callees.
"""

from __future__ import annotations

import argparse
import collections
import re

WAITS = (
    "Condition.wait",
    "EpollSelector.select",
    "SimpleQueue",
    "Event.wait",
    "Writer._loop (asyncflow/_store/_writer.py",  # the writer's queue get
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", help="py-spy raw output (-f raw)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--thread", help="only threads whose name contains this")
    parser.add_argument("--skip-imports", action="store_true", help="drop import-time stacks")
    args = parser.parse_args()

    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    with open(args.raw, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            thread = re.sub(r"\(\d+\)|thread", "", frames[0]).strip(" :")
            if args.thread and args.thread not in thread:
                continue
            if args.skip_imports and any("importlib._bootstrap" in fr for fr in frames):
                continue
            if len(frames) == 1 or any(w in frames[-1] for w in WAITS):
                idle += n
                continue
            busy += n
            threads[thread[:30]] += n
            seen = set()
            for fr in frames[1:]:
                key = re.sub(r":\d+\)", ")", fr)
                if key not in seen:
                    incl[key] += n
                    seen.add(key)
            own[re.sub(r":\d+\)", ")", frames[-1])] += n
    if not busy:
        print("no busy samples")
        return
    print(f"busy samples {busy}, idle {idle}")
    for name, n in threads.most_common():
        print(f"{n:7d} {100 * n / busy:5.1f}%  thread {name}")
    print("--- own")
    for name, n in own.most_common(args.top):
        print(f"{n:7d} {100 * n / busy:5.1f}%  {name}")
    print("--- incl.")
    for name, n in incl.most_common(args.top):
        print(f"{n:7d} {100 * n / busy:5.1f}%  {name}")


if __name__ == "__main__":
    main()
