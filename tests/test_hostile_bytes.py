"""Decoding bytes crafted by someone else: msgpack and numpy payloads from an archive or a
colleague's store load without any trust, so their decoders must be safe on any input.

Whatever the bytes, decoding ends in a value of the types the codecs write (never an object
of another class, never an object dtype) or in a CodecError: no other exception, no hang,
and no allocation out of proportion to the bytes given (a declared size is checked against
the data before anything is built). Pickles are a different matter: they never load
without trust (tests/test_trust.py). The basic cases are in tests/test_codecs.py; these add
lying sizes measured with tracemalloc, sets crafted to hash alike, and larger mutations.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncflow._codecs import CodecError, decode, encode
from asyncflow._codecs._msgpack import _pack
from tests.test_codecs import arrays, msgpack_values, typed

SLOW = 2.0  # seconds: far above any honest decode below, far below a quadratic one


def examples(count: int) -> settings:
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def plain(value: Any) -> None:
    """Assert ``value`` is made of the codecs' own types only (iteratively: no depth limit)."""
    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind in (type(None), bool, int, float, complex, str, bytes):
            continue
        if kind in (list, tuple, set, frozenset):
            todo.extend(item)
        elif kind is dict:
            todo.extend(item.keys())
            todo.extend(item.values())
        elif kind is np.ndarray or isinstance(item, np.generic):
            assert type(item) is np.ndarray or type(item) is item.dtype.type
            assert not item.dtype.hasobject and item.dtype.metadata is None
        else:
            raise AssertionError(f"decoding built a {kind!r}")


def decodes_safely(encoding: str, meta: bytes | None, payload: bytes) -> None:
    started = time.perf_counter()
    try:
        value = decode(encoding, meta, payload)
    except CodecError:
        pass
    else:
        plain(value)
    assert time.perf_counter() - started < SLOW


@contextmanager
def peak_allocation() -> Iterator[Callable[[], int]]:
    """Measures the most memory Python and numpy held at once inside the block."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def numpy_meta(**fields: Any) -> bytes:
    meta = {"descr": "<f8", "shape": [2], "order": "C", "scalar": False}
    meta.update(fields)
    return bytes(encode(meta).payload)


# --- lying sizes -----------------------------------------------------------------------------

LIARS: dict[str, tuple[str, bytes | None, bytes]] = {
    "array32_of_4g_items": ("msgpack", None, b"\xdd\xff\xff\xff\xff" + b"\xc0" * 8),
    "map32_of_4g_pairs": ("msgpack", None, b"\xdf\xff\xff\xff\xff" + b"\xc0" * 8),
    "bin32_of_4gb": ("msgpack", None, b"\xc6\xff\xff\xff\xff" + b"x" * 8),
    "str32_of_4gb": ("msgpack", None, b"\xdb\xff\xff\xff\xff" + b"x" * 8),
    "ext32_bigint_of_4gb": ("msgpack", None, b"\xc9\xff\xff\xff\xff\x04" + b"x" * 8),
    "nested_arrays_of_4g_items": ("msgpack", None, b"\xdd\xff\xff\xff\xff" * 64),
    "doubles_for_a_huge_shape": ("numpy", numpy_meta(shape=[2**40]), bytes(16)),
    "zero_dims_and_a_huge_one": ("numpy", numpy_meta(shape=[0, 2**62]), b""),
    "empty_bytes_as_8g_chars": ("numpy", numpy_meta(descr="|S0", shape=[2**33]), b""),
    "empty_bytes_as_2g_unicode": ("numpy", numpy_meta(descr="<U0", shape=[2**31]), b""),
    "huge_itemsize": ("numpy", numpy_meta(descr="|S1000000000000", shape=[1]), bytes(8)),
    "huge_padding": (
        "numpy",
        numpy_meta(descr=[("a", "<f8"), ("", "|V1000000000000")], shape=[1]),
        bytes(8),
    ),
}


@pytest.mark.parametrize(("encoding", "meta", "payload"), LIARS.values(), ids=LIARS.keys())
def test_a_lying_size_is_refused_before_anything_is_built(
    encoding: str, meta: bytes | None, payload: bytes
) -> None:
    with peak_allocation() as peak, pytest.raises(CodecError):
        decode(encoding, meta, payload)
    assert peak() < 1 << 20, f"{peak()} bytes allocated for {len(payload)} bytes of payload"


def test_a_zero_width_void_array_of_a_huge_shape_is_refused() -> None:
    # numpy allocates nothing for it, but every use of its 2**40 elements would (issue 9:
    # 7.9 GB from a 70 KB archive): elements must be backed by bytes, bar a few.
    with pytest.raises(CodecError, match="zero-width dtype"):
        decode("numpy", numpy_meta(descr="|V0", shape=[2**40]), b"")
    with peak_allocation() as peak:
        back = decode("numpy", numpy_meta(descr="|V0", shape=[1000]), b"")
    assert back.shape == (1000,) and back.nbytes == 0
    assert peak() < 1 << 20


# --- sets crafted to hash alike -----------------------------------------------------------------

_MODULUS = (1 << 61) - 1  # CPython hashes an int n as n mod this: every multiple hashes to 0


def crafted_set(count: int, tag: int = 2) -> bytes:
    """A msgpack set (or frozenset, tag 3) of ``count`` distinct ints that all hash to 0."""
    members = [k * _MODULUS for k in range(1, count + 1)]
    return _pack([msgpack.ExtType(tag, b""), *members])


@pytest.mark.parametrize("tag", [2, 3], ids=["set", "frozenset"])
def test_a_set_crafted_to_make_hashing_quadratic_is_refused_quickly(tag: int) -> None:
    payload = crafted_set(20_000, tag)  # ~240 KB: about 10 s to build as a set
    started = time.perf_counter()
    with pytest.raises(CodecError, match="sharing a hash"):
        decode("msgpack", None, payload)
    assert time.perf_counter() - started < SLOW


def test_a_few_colliding_members_and_large_honest_sets_still_decode() -> None:
    few = {k * _MODULUS for k in range(1, 200)} | {-1, -2}  # -1 and -2 share a hash in CPython
    assert decode("msgpack", None, encode(few).payload) == few
    many = set(range(-50_000, 50_000)) | {str(i) for i in range(10_000)}
    enc = encode(frozenset(many))
    assert decode(enc.encoding, enc.meta, enc.payload) == frozenset(many)


# --- mutations of real encodings ------------------------------------------------------------------


def mutate(payload: bytes, data: st.DataObject) -> bytes:
    """One to four random edits: overwrite, insert, delete, truncate or repeat a slice."""
    out = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["set", "insert", "delete", "truncate", "repeat"]))
        at = data.draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "set" and out:
            out[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete":
            del out[at : at + data.draw(st.integers(1, 8))]
        elif kind == "truncate":
            del out[at:]
        else:
            out[at:at] = out[at : at + data.draw(st.integers(1, 16))] * data.draw(
                st.integers(1, 64)
            )
    return bytes(out)


@given(st.lists(msgpack_values, min_size=1, max_size=6), st.data())
@examples(200)
def test_mutated_msgpack_values_decode_safely(values: list[Any], data: st.DataObject) -> None:
    enc = encode(values)
    assert typed(decode(enc.encoding, enc.meta, enc.payload)) == typed(values)
    decodes_safely("msgpack", None, mutate(bytes(enc.payload), data))


@given(arrays, st.data())
@examples(150)
def test_mutated_numpy_meta_and_payload_decode_safely(
    array: np.ndarray[Any, Any], data: st.DataObject
) -> None:
    enc = encode(array)
    assert enc.meta is not None
    meta, payload = bytes(enc.meta), bytes(enc.payload)
    if data.draw(st.booleans()):
        meta = mutate(meta, data)
    if data.draw(st.booleans()):
        payload = mutate(payload, data)
    decodes_safely("numpy", meta, payload)


descrs = st.recursive(
    st.sampled_from(["<f8", "|O", "O", "|S0", "<U0", "|V0", "<M8[s]", "|b1", "T", "<f8x"])
    | st.text(max_size=6),
    lambda inner: (
        st.lists(st.tuples(st.text(max_size=3), inner), max_size=3)
        | st.tuples(inner, st.lists(st.integers(-2, 3), max_size=2).map(tuple))
    ),
    max_leaves=6,
)
shapes = st.lists(st.integers(-1, 4) | st.sampled_from([2**31, 2**40, 2**63]), max_size=4)


@given(descrs, shapes, st.sampled_from(["C", "F", "K"]), st.booleans(), st.binary(max_size=48))
@examples(300)
def test_any_numpy_meta_decodes_safely(
    descr: Any, shape: list[int], order: str, scalar: bool, payload: bytes
) -> None:
    meta = numpy_meta(descr=descr, shape=shape, order=order, scalar=scalar)
    with peak_allocation() as peak:
        decodes_safely("numpy", meta, payload)
    assert peak() < 1 << 20


# --- nothing runs ---------------------------------------------------------------------------------


class Alarm:
    """Unpickling one writes a file: it stands for any code a crafted pickle would run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (Path(self.path),))


def test_pickle_bytes_labelled_msgpack_or_numpy_run_nothing(tmp_path: Path) -> None:
    alarm = tmp_path / "rang"
    pickled = bytes(encode(Alarm(str(alarm))).payload)
    assert encode(Alarm(str(alarm))).encoding == "pickle"
    decodes_safely("msgpack", None, pickled)
    decodes_safely("msgpack", None, _pack([pickled]))
    decodes_safely("numpy", numpy_meta(descr="|O", shape=[1]), pickled[:8])
    decodes_safely("numpy", pickled, pickled)
    assert not alarm.exists()
