"""The codecs: exact round trips, content hashes, zero-copy numpy, and safety on hostile bytes."""

from __future__ import annotations

import collections
import enum
import math
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncflow._codecs import CodecError, Encoded, decode, encode, is_immutable
from asyncflow._codecs._stored import _encoded

# --- helpers ---------------------------------------------------------------------------------

_BUILTINS = (type(None), bool, int, float, complex, str, bytes)


def typed(value: Any) -> Any:
    """A hashable image of ``value`` that differs whenever type, order or bits differ."""
    kind = type(value)
    if kind is float:
        return ("float", struct.pack("<d", value))
    if kind is complex:
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if kind in _BUILTINS:
        return (kind.__name__, value)
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(typed(item) for item in value))
    if kind is set or kind is frozenset:
        return (kind.__name__, frozenset(typed(item) for item in value))
    if kind is dict:
        return ("dict", tuple((typed(k), typed(v)) for k, v in value.items()))
    raise AssertionError(f"unexpected type {kind!r} in a msgpack value")


def roundtrip(value: Any, container: type = bytes) -> tuple[Encoded, Any]:
    enc = encode(value)
    assert len(enc.sha) == 32
    assert enc.size == len(enc.payload) == memoryview(enc.payload).nbytes
    return enc, decode(enc.encoding, enc.meta, container(enc.payload))


def assert_same_array(got: Any, want: np.ndarray[Any, Any]) -> None:
    assert type(got) is np.ndarray
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    assert got.flags.writeable


def examples(count: int) -> settings:
    """Hypothesis settings for this file: no deadline, as CI machines are often loaded."""
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies ------------------------------------------------------------------------------

hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
scalars = hashable_scalars | st.floats() | st.complex_numbers()
msgpack_values = st.recursive(
    scalars | hashables,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=12,
)

plain_dtypes: st.SearchStrategy[np.dtype[Any]] = (
    hnp.scalar_dtypes()
    | hnp.unicode_string_dtypes()
    | hnp.byte_string_dtypes()
    | hnp.array_dtypes(allow_subarrays=True)
    | st.sampled_from([np.dtype("g"), np.dtype("G"), np.dtype("e")])
)
arrays: st.SearchStrategy[np.ndarray[Any, Any]] = hnp.arrays(
    plain_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
)


def layout(array: np.ndarray[Any, Any], how: str) -> np.ndarray[Any, Any]:
    if how == "F":
        return np.asfortranarray(array)
    if how == "strided" and array.ndim:
        return array[::2]
    if how == "transposed":
        return array.T
    return array


# --- msgpack ---------------------------------------------------------------------------------


@given(msgpack_values)
@examples(150)
def test_msgpack_round_trip_is_exact(value: Any) -> None:
    for container in (bytes, bytearray, memoryview):
        enc, back = roundtrip(value, container)
        assert enc.encoding == "msgpack"
        assert enc.meta is None
        assert typed(back) == typed(value)
    # Re-encoding the decoded value gives the same content hash (sets are written sorted).
    assert encode(back).sha == enc.sha


@pytest.mark.parametrize(
    "value",
    [
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        -(2**1000),
        {1: "a", None: 2, 2.5: b"", (1, (2,)): 3, frozenset({4}): 5, b"k": 6, False: 7},
        {"b": 1, "a": 2},  # insertion order kept
        [(), (), frozenset(), frozenset()],  # CPython shares these singletons
        [(1, 2)] * 3,  # a shared tuple of scalars
        {(): {frozenset({(1, 2), "x"}): [set(), {-0.0, 1.5}]}},
        (math.inf, -math.inf, -0.0, complex(math.nan, -0.0)),
        "é😀\x00",
    ],
    ids=repr,
)
def test_msgpack_edge_values(value: Any) -> None:
    enc, back = roundtrip(value)
    assert enc.encoding == "msgpack"
    assert typed(back) == typed(value)


def test_sets_hash_equal_whatever_their_insertion_order() -> None:
    words = [f"w{i}" for i in range(200)]
    mixed = [1, "a", (2, "b"), frozenset({3}), 2.5, None, b"c", 2**70]
    assert encode(set(words)).sha == encode(set(reversed(words))).sha
    assert encode(frozenset(mixed)).sha == encode(frozenset(reversed(mixed))).sha
    assert encode({"s": set(mixed)}).sha == encode({"s": set(reversed(mixed))}).sha


class Color(enum.IntEnum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: int


class Name(str):
    pass


class Tagged(np.ndarray):
    pass


class Box:
    def __init__(self, content: Any) -> None:
        self.content = content

    def __eq__(self, other: object) -> bool:
        return type(other) is Box and other.content == self.content

    __hash__ = None  # type: ignore[assignment]


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("refuses to be pickled")


@pytest.mark.parametrize(
    "value",
    [
        collections.OrderedDict(a=1, b=2),
        collections.defaultdict(list, a=[1]),
        Color.RED,
        [Color.RED, 1],
        Point(1, 2),
        Name("x"),
        {"k": Name("x")},
        bytearray(b"ab"),
        [bytearray(b"ab")],
        ("\ud800",),
        msgpack.ExtType(1, b""),  # msgpack would write it natively as our tuple tag
        [msgpack.Timestamp(1, 0)],
        Box([1, (2, 3)]),
        np.array([1, "a", None], dtype=object),
        np.zeros(3, dtype=[("a", "i4"), ("o", "O")]),
        np.zeros(3, dtype=np.dtype("f8", metadata={"unit": "m"})),
        np.zeros(2, dtype={"names": ["a", "b"], "formats": ["i4", "i4"], "offsets": [4, 0]}),
        np.zeros(2, dtype=np.dtype((np.record, [("a", "i4")]))),
        np.zeros((2, 2)).view(Tagged),
        np.ma.masked_array([1, 2], mask=[False, True]),
        [np.float64(1.5)],
        np.array(["a", "bc"], dtype=np.dtypes.StringDType()),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_msgpack_or_numpy_cannot_keep_go_to_pickle(value: Any) -> None:
    enc, back = roundtrip(value)
    assert enc.encoding == "pickle"
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype
        assert back.dtype.metadata == value.dtype.metadata
        assert np.array_equal(np.asarray(back), np.asarray(value))
    else:
        assert back == value
        if isinstance(value, list):
            assert [type(item) for item in back] == [type(item) for item in value]


@given(msgpack_values)
@examples(50)
def test_pickle_round_trip_of_wrapped_values(value: Any) -> None:
    enc, back = roundtrip(collections.OrderedDict(v=value))
    assert enc.encoding == "pickle"
    assert type(back) is collections.OrderedDict
    assert typed(back["v"]) == typed(value)


def test_shared_and_cyclic_containers_go_to_pickle_and_keep_their_shape() -> None:
    inner = [1]
    enc, back = roundtrip([inner, inner])
    assert enc.encoding == "pickle"
    assert back[0] is back[1]
    cycle: list[Any] = [1]
    cycle.append(cycle)
    enc, back = roundtrip(cycle)
    assert enc.encoding == "pickle"
    assert back[1] is back
    dag: tuple[Any, ...] = ((),)
    for _ in range(64):  # 2**64 leaves if expanded: must not be walked or packed naively
        dag = (dag, dag)
    enc, back = roundtrip(dag)
    assert enc.encoding == "pickle"
    for _ in range(64):  # compare by sharing: == would walk all 2**64 paths
        assert back[0] is back[1]
        back = back[0]
    assert back == ((),)


def test_deep_nesting_falls_back_to_pickle() -> None:
    value: list[Any] = []
    for _ in range(300):  # deeper than the msgpack codec goes, shallower than pickle's limit
        value = [value]
    enc, back = roundtrip(value)
    assert enc.encoding == "pickle"
    assert back == value


def test_functions_and_classes_round_trip_through_cloudpickle() -> None:
    offset = 10
    enc, back = roundtrip(lambda x: x + offset)
    assert enc.encoding == "pickle"
    assert back(1) == 11
    enc, back = roundtrip(Box)
    assert enc.encoding == "pickle"
    assert back is Box


def _generator() -> Any:
    yield 1


@pytest.mark.parametrize(
    "value",
    [threading.Lock(), _generator(), Unpicklable(), [1, threading.Lock()]],
    ids=["lock", "generator", "reduce_raises", "lock_in_list"],
)
def test_unserialisable_values_raise_codec_error(value: Any) -> None:
    with pytest.raises(CodecError, match="cloudpickle failed") as info:
        encode(value)
    assert info.value.__cause__ is not None


# --- numpy -----------------------------------------------------------------------------------


@given(arrays, st.sampled_from(["C", "F", "strided", "transposed"]))
@examples(100)
def test_numpy_round_trip_is_exact(array: np.ndarray[Any, Any], how: str) -> None:
    array = layout(array, how)
    for container in (bytes, bytearray, memoryview):
        enc, back = roundtrip(array, container)
        assert enc.encoding == "numpy"
        assert enc.size == array.nbytes
        assert_same_array(back, array)
        if container is not bytearray:
            assert not np.shares_memory(back, array)
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        assert back.flags.f_contiguous
    assert encode(back).sha == enc.sha


@given(arrays.filter(lambda a: a.nbytes > 0), st.sampled_from(["C", "F", "transposed"]))
@examples(50)
def test_numpy_payload_is_zero_copy_for_contiguous_arrays(
    array: np.ndarray[Any, Any], how: str
) -> None:
    array = layout(array, how)
    enc = encode(array)
    assert isinstance(enc.payload, memoryview)
    assert np.shares_memory(np.frombuffer(enc.payload, dtype=np.uint8), array)
    buffer = bytearray(enc.payload)
    back = decode(enc.encoding, enc.meta, buffer)
    assert np.shares_memory(back, np.frombuffer(buffer, dtype=np.uint8))
    assert_same_array(back, array)


@pytest.mark.parametrize(
    "array",
    [
        np.frombuffer(bytes(range(12)), dtype="V3").copy(),
        np.zeros((2, 3), dtype=[]),
        np.zeros((0, 5), dtype="U3"),
        np.array(7, dtype=">i4"),
        np.zeros((3, 0, 2), order="F"),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}",
)
def test_arrays_hypothesis_cannot_draw(array: np.ndarray[Any, Any]) -> None:
    enc, back = roundtrip(array)
    assert enc.encoding == "numpy"
    assert_same_array(back, array)


def test_non_contiguous_array_is_copied_once_into_c_order() -> None:
    array = np.arange(24.0).reshape(4, 6)[::2, 1::2]
    enc, back = roundtrip(array)
    assert not np.shares_memory(np.frombuffer(enc.payload, dtype=np.uint8), array)
    assert_same_array(back, array)
    assert back.flags.c_contiguous


def test_decoded_array_is_independent_and_writable() -> None:
    array = np.arange(6).reshape(2, 3)
    enc = encode(array)
    back = decode(enc.encoding, enc.meta, enc.payload)  # the payload views ``array``
    back[0, 0] = 99
    assert array[0, 0] == 0
    read_only = np.arange(3)
    read_only.flags.writeable = False
    _, back = roundtrip(read_only)
    assert back.flags.writeable


@given(hnp.arrays(plain_dtypes, shape=()).map(lambda a: a[()]))
@examples(50)
def test_numpy_scalars_round_trip_exactly(value: Any) -> None:
    enc, back = roundtrip(value)
    assert enc.encoding == "numpy"
    assert type(back) is type(value)
    assert back.dtype == value.dtype
    if value.dtype.kind in "fc":  # long doubles carry padding that a scalar does not keep
        assert np.array_equal(back, value, equal_nan=True)
    else:
        assert np.asarray(back).tobytes() == np.asarray(value).tobytes()


@pytest.mark.parametrize(
    "value",
    [
        np.float32(1.5),
        np.int64(-3),
        np.bool_(True),
        np.uint8(255),
        np.complex64(1 - 2j),
        np.datetime64("2024-01-02T03:04", "ns"),
        np.str_("héllo"),
        np.bytes_(b"ab"),
        np.zeros(1, dtype=[("a", "i4"), ("b", "U2")])[0],
    ],
    ids=lambda v: type(v).__name__,
)
def test_listed_numpy_scalars(value: Any) -> None:
    enc, back = roundtrip(value)
    assert enc.encoding == "numpy"
    assert type(back) is type(value)
    assert back == value


# --- content hashes --------------------------------------------------------------------------


def test_sha_is_deterministic_and_tells_types_and_shapes_apart() -> None:
    assert encode([1, "a", (2,)]).sha == encode([1, "a", (2,)]).sha
    shas = {
        encode(value).sha
        for value in (1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({1}), np.int64(1))
    }
    assert len(shas) == 10
    flat = np.arange(6)
    assert encode(flat.reshape(2, 3)).sha != encode(flat.reshape(3, 2)).sha
    assert encode(flat).sha != encode(flat.view(np.uint64)).sha


def test_sha_frames_encoding_meta_and_payload() -> None:
    digests = {
        _encoded("msgpack", None, b"abc").sha,
        _encoded("pickle", None, b"abc").sha,
        _encoded("numpy", b"", b"abc").sha,
        _encoded("numpy", b"a", b"bc").sha,
        _encoded("numpy", b"ab", b"c").sha,
        _encoded("numpy", b"abc", b"").sha,
    }
    assert len(digests) == 6


# --- hostile input ---------------------------------------------------------------------------


def assert_safe_value(value: Any) -> None:
    typed(value)  # raises AssertionError on any type the msgpack codec never writes


def assert_decodes_safely(encoding: str, meta: bytes | None, payload: bytes) -> None:
    try:
        value = decode(encoding, meta, payload)
    except CodecError:
        return
    if encoding == "msgpack":
        assert_safe_value(value)
    else:
        assert type(value) is np.ndarray or isinstance(value, np.generic)
        assert not value.dtype.hasobject


@given(st.binary(max_size=64))
@examples(300)
def test_random_msgpack_bytes_decode_safely(payload: bytes) -> None:
    assert_decodes_safely("msgpack", None, payload)


@given(msgpack_values, st.data())
@examples(75)
def test_damaged_msgpack_decodes_safely(value: Any, data: st.DataObject) -> None:
    payload = bytearray(encode(value).payload)
    for _ in range(data.draw(st.integers(1, 3))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    assert_decodes_safely("msgpack", None, bytes(payload))


@given(st.binary(max_size=64), st.binary(max_size=64))
@examples(200)
def test_random_numpy_bytes_decode_safely(meta: bytes, payload: bytes) -> None:
    assert_decodes_safely("numpy", meta, payload)


@given(arrays, st.data())
@examples(75)
def test_damaged_numpy_meta_decodes_safely(
    array: np.ndarray[Any, Any], data: st.DataObject
) -> None:
    enc = encode(array)
    assert enc.meta is not None
    meta = bytearray(enc.meta)
    meta[data.draw(st.integers(0, len(meta) - 1))] = data.draw(st.integers(0, 255))
    assert_decodes_safely("numpy", bytes(meta), bytes(enc.payload))


def numpy_meta(**fields: Any) -> bytes:
    meta = {"descr": "<f8", "shape": [2], "order": "C", "scalar": False}
    meta.update(fields)
    return bytes(encode(meta).payload)


TWO_DOUBLES = bytes(16)
INVALID: dict[str, tuple[str, bytes | None, bytes]] = {
    "unknown_encoding": ("zstd", None, b"\x01"),
    "msgpack_with_meta": ("msgpack", b"", b"\x01"),
    "pickle_with_meta": ("pickle", b"", b"N."),
    "numpy_without_meta": ("numpy", None, TWO_DOUBLES),
    "empty": ("msgpack", None, b""),
    "trailing_data": ("msgpack", None, b"\x01\x02"),
    "invalid_utf8": ("msgpack", None, b"\xa1\xff"),
    "unknown_ext_99": ("msgpack", None, b"\xd4\x63\x00"),
    "unknown_ext_minus_128": ("msgpack", None, b"\xd4\x80\x00"),
    "bare_tuple_tag": ("msgpack", None, b"\xc7\x00\x01"),
    "tag_not_first": ("msgpack", None, b"\x92\x01\xc7\x00\x01"),
    "tag_as_map_key": ("msgpack", None, b"\x81\xc7\x00\x01\x01"),
    "tag_with_data": ("msgpack", None, b"\xd4\x01\x00"),
    "empty_bigint": ("msgpack", None, b"\xc7\x00\x04"),
    "short_complex": ("msgpack", None, b"\xc7\x03\x05abc"),
    "set_of_lists": ("msgpack", None, b"\x92\xc7\x00\x02\x90"),
    "list_as_map_key": ("msgpack", None, b"\x81\x90\x01"),
    "nesting_too_deep": ("msgpack", None, b"\x91" * 100_000 + b"\xc0"),
    "huge_declared_array": ("msgpack", None, b"\xdd\xff\xff\xff\xff"),
    "meta_not_msgpack": ("numpy", b"\x01", TWO_DOUBLES),
    "meta_a_list": ("numpy", bytes(encode(["<f8", [2], "C", False]).payload), TWO_DOUBLES),
    "meta_extra_key": ("numpy", numpy_meta(extra=1), TWO_DOUBLES),
    "object_dtype": ("numpy", numpy_meta(descr="|O"), TWO_DOUBLES),
    "object_field": ("numpy", numpy_meta(descr=[("a", "<f8"), ("b", "|O")]), bytes(32)),
    "string_dtype": ("numpy", numpy_meta(descr="T"), TWO_DOUBLES),
    "garbage_dtype": ("numpy", numpy_meta(descr="not a dtype"), TWO_DOUBLES),
    "subarray_dtype": ("numpy", numpy_meta(descr=("<f8", (2,)), shape=[1]), TWO_DOUBLES),
    "huge_subarray": ("numpy", numpy_meta(descr="(100000000000,)<f8"), TWO_DOUBLES),
    "size_mismatch": ("numpy", numpy_meta(shape=[3]), TWO_DOUBLES),
    "negative_dims": ("numpy", numpy_meta(shape=[-2, -1]), TWO_DOUBLES),
    "bool_dim": ("numpy", numpy_meta(shape=[True, 2]), TWO_DOUBLES),
    "tuple_shape": ("numpy", numpy_meta(shape=(2,)), TWO_DOUBLES),
    "too_many_dims": ("numpy", numpy_meta(shape=[1] * 65), bytes(8)),
    "overflowing_shape": ("numpy", numpy_meta(shape=[2**62, 2**62]), TWO_DOUBLES),
    "bad_order": ("numpy", numpy_meta(order="K"), TWO_DOUBLES),
    "int_scalar_flag": ("numpy", numpy_meta(scalar=1), TWO_DOUBLES),
    "scalar_with_shape": ("numpy", numpy_meta(scalar=True), TWO_DOUBLES),
}


@pytest.mark.parametrize(("encoding", "meta", "payload"), INVALID.values(), ids=INVALID.keys())
def test_invalid_stored_bytes_raise_codec_error(
    encoding: str, meta: bytes | None, payload: bytes
) -> None:
    with pytest.raises(CodecError):
        decode(encoding, meta, payload)


def test_valid_hand_written_numpy_meta_decodes() -> None:
    back = decode("numpy", numpy_meta(), struct.pack("<2d", 1.0, 2.0))
    assert_same_array(back, np.array([1.0, 2.0]))


def test_msgpack_timestamp_extension_decodes_to_an_int() -> None:
    # msgpack offers no hook for its reserved timestamp type; we never write it.
    assert decode("msgpack", None, b"\xd6\xff\x00\x00\x00\x01") == 1_000_000_000


# --- is_immutable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2**100, 1.5, 1j, "s", b"b", (), (1, ("a", (b"",))), frozenset({(1, 2), 3})],
    ids=repr,
)
def test_immutable_values(value: Any) -> None:
    assert is_immutable(value)


def _deep_tuple(depth: int) -> tuple[Any, ...]:
    value: tuple[Any, ...] = ()
    for _ in range(depth):
        value = (value,)
    return value


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        set(),
        bytearray(),
        (1, []),
        frozenset({Point(1, 2)}),
        Name("x"),
        Point(1, 2),
        Color.RED,
        np.int64(1),
        np.zeros(2),
        _deep_tuple(100),
        Box(1),
    ],
    ids=lambda v: type(v).__name__,
)
def test_mutable_or_unsure_values(value: Any) -> None:
    assert not is_immutable(value)


# --- module hygiene --------------------------------------------------------------------------


def test_importing_the_codecs_loads_neither_numpy_nor_cloudpickle() -> None:
    package = Path(__file__).parents[1] / "asyncflow" / "_codecs"
    path, where = package / "__init__.py", [str(package)]
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location(\n"
        f"    'codecs_alone', {str(path)!r}, submodule_search_locations={where!r})\n"
        "module = sys.modules['codecs_alone'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'numpy' not in sys.modules and 'cloudpickle' not in sys.modules\n"
        "enc = module.encode([1, (2, 3)])\n"
        "assert enc.encoding == 'msgpack' and 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
