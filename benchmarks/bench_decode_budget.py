"""What the msgpack decode budget costs: decoding large legitimate values with and without it.

    python benchmarks/bench_decode_budget.py [--n 1000000] [--repeat 5]

Each value is encoded once; then decoded ``--repeat`` times, in turn, with no budget (how the
runs you trust are read) and with a budget that is never reached (how a run you do not trust
is read: a hook call per list and, only then, per map). Printed: the best time of each and the
ratio; also, for each value, the bytes of containers the budget charged per stored byte.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asyncflow._codecs import decode, encode
from asyncflow._codecs._msgpack import _Unpacking


def values(n: int) -> dict[str, Any]:
    return {
        "floats": [i * 0.5 for i in range(n)],
        "ints": list(range(n)),
        "pairs [[i, 2]]": [[i % 100, 2] for i in range(n)],
        "dicts {x: float, y: int}": [{"x": i * 0.5, "y": i % 7} for i in range(n)],
        "short strings": [f"s{i % 10}" for i in range(n)],
        "tuples (i, 'a')": [(i, "a") for i in range(n)],
    }


def best(payload: bytes, repeat: int) -> tuple[float, float]:
    """The best of ``repeat`` decodes without and with a budget, taken in turn."""
    plain, budgeted = [], []
    for _ in range(repeat):
        for budget, times in ((None, plain), (1 << 62, budgeted)):
            gc.collect()
            t0 = time.perf_counter()
            decode("msgpack", None, payload, budget)
            times.append(time.perf_counter() - t0)
    return min(plain), min(budgeted)


def charged(payload: bytes) -> float:
    import msgpack

    hooks = _Unpacking(1 << 62)
    msgpack.unpackb(
        payload,
        ext_hook=hooks.ext,
        list_hook=hooks.array,
        object_hook=hooks.mapping,
        strict_map_key=False,
    )
    assert hooks.left is not None
    return ((1 << 62) - hooks.left) / len(payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"| value ({args.n:,} items) | stored | no budget | budget | ratio | charged/byte |")
    print("|---|---|---|---|---|---|")
    for name, value in values(args.n).items():
        payload = bytes(encode(value).payload)
        plain, budgeted = best(payload, args.repeat)
        print(
            f"| {name} | {len(payload) / 1e6:.1f} MB | {plain * 1e3:.0f} ms | "
            f"{budgeted * 1e3:.0f} ms | {budgeted / plain:.2f} | {charged(payload):.1f} |"
        )


if __name__ == "__main__":
    main()
