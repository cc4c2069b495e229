"""Values to bytes and back: the codecs behind every stored artifact.

Three codecs, tried in this order; a codec claims a value only if decoding gives back an
equal value of exactly the same type, all the way down:

``msgpack``
    ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``,
    ``dict`` (any msgpack-able keys), ``tuple``, ``set`` and ``frozenset`` of exactly those
    types (subclasses are left to pickle). Extension types, persisted forever:
    1/2/3 tag a msgpack array as a tuple/set/frozenset (the tag is its first item), 4 is an
    int beyond 64 bits (big-endian two's complement), 5 a complex (two little-endian
    float64). Set members are written sorted by their encoding, so equal sets hash equal.
``numpy``
    An exact ``np.ndarray`` or numpy scalar with a plain dtype (no objects, no metadata).
    The payload is the raw buffer, a zero-copy view when the array is C- or F-contiguous;
    ``meta`` holds the ``.npy`` dtype descriptor, the shape, the order and a scalar flag.
``pickle``
    Anything else, through ``cloudpickle`` (protocol 5).

Decoding msgpack and numpy payloads is safe on hostile bytes: it builds only the types
above and checks every declared size. Valid msgpack may still build far more than it stores
(one byte per empty list), so a caller may give :func:`decode` a budget of container bytes.
Only the ``pickle`` encoding runs ``pickle.loads``.
numpy and cloudpickle are imported on first use, keeping ``import asyncflow`` light.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import mmap
import pickle
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import msgpack

if TYPE_CHECKING:
    import numpy as np

#: A payload buffer that :func:`decode` may take over (see :func:`payload_buffer`).
OwnedBuffer = bytearray | mmap.mmap

__all__ = [
    "CodecError",
    "DecodeBudgetError",
    "Encoded",
    "content_hasher",
    "decode",
    "encode",
    "is_immutable",
    "numpy_meta_problem",
    "owns_buffer",
    "payload_buffer",
]

_MSGPACK: Final = "msgpack"
_NUMPY: Final = "numpy"
_PICKLE: Final = "pickle"

_EXT_TUPLE: Final = 1
_EXT_SET: Final = 2
_EXT_FROZENSET: Final = 3
_EXT_BIGINT: Final = 4
_EXT_COMPLEX: Final = 5
_TUPLE_TAG: Final = msgpack.ExtType(_EXT_TUPLE, b"")
_SET_TAG: Final = msgpack.ExtType(_EXT_SET, b"")
_FROZENSET_TAG: Final = msgpack.ExtType(_EXT_FROZENSET, b"")

_SCALARS: Final = frozenset({type(None), bool, int, float, complex, str, bytes})
_PLAIN: Final = frozenset({type(None), bool, float, str, bytes})
_TOTALLY_ORDERED: Final = frozenset({int, str, bytes})
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1
_CONTAINERS: Final = frozenset({list, tuple, set, frozenset, dict})
_PACKABLE: Final = _SCALARS | _CONTAINERS
_IMMUTABLE: Final = _SCALARS | {tuple, frozenset}
_MAX_DEPTH: Final = 200  # below msgpack's own nesting limit (511)
_IMMUTABLE_DEPTH: Final = 16
_COMPLEX: Final = struct.Struct("<dd")
_FRAME: Final = struct.Struct("<BqQ")  # len(encoding), len(meta) or -1 for None, len(payload)
_DTYPE_KINDS: Final = frozenset("biufcmMSUV")
_NUMPY_META_KEYS: Final = frozenset({"descr", "shape", "order", "scalar"})
_BIG_BUFFER: Final = 1 << 20
_ZERO_WIDTH_ELEMENTS: Final = 1 << 16  # elements of a 0-byte dtype an array may hold
_FLOOD_ALLOWANCE: Final = 1024  # set members sharing a hash, beyond which decoding refuses
_LIST_BYTES: Final = sys.getsizeof([])
_SLOT_BYTES: Final = struct.calcsize("P")
_GC_HEAD: Final = sys.getsizeof([]) - [].__sizeof__()
# Private anonymous memory (where the platform has it), which Linux backs with huge pages.
_MAP_FLAGS: Final = (
    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS if hasattr(mmap, "MAP_ANONYMOUS") else None
)
_MADV_HUGEPAGE: Final = getattr(mmap, "MADV_HUGEPAGE", None)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One value in stored form.

    :param encoding: the codec id: ``"msgpack"``, ``"numpy"`` or ``"pickle"``.
    :param meta: codec metadata (numpy: dtype, shape, order), else None.
    :param payload: the encoded bytes; for numpy a zero-copy view of the array's buffer.
    :param sha: sha256 over the length-framed (encoding, meta, payload): the content address.
    :param size: the payload length in bytes.
    """

    encoding: str
    meta: bytes | None
    payload: bytes | memoryview
    sha: bytes
    size: int


class CodecError(Exception):
    """A value cannot be encoded, or stored bytes cannot be decoded (the message says why).

    :param message: what is wrong.
    :param fix: what to store instead, when the value holds something no codec may store.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


class DecodeBudgetError(CodecError):
    """Decoding msgpack would build more containers than the caller's budget allows.

    :param budget: the budget, in bytes of Python containers.
    """

    def __init__(self, budget: int) -> None:
        super().__init__(
            f"decoding it builds more than {budget} bytes of Python lists, maps and sets"
        )
        self.budget = budget


def encode(value: Any) -> Encoded:
    """Encode ``value`` with the first codec that gives it back exactly.

    :param value: any Python value.
    :returns: the encoded form; a numpy payload may share memory with ``value``.
    :raises CodecError: the value cannot be serialised (e.g. a lock or a generator).
    """
    kind = type(value)
    if kind in _SCALARS or (kind in _CONTAINERS and _packable((value,), 0, {})):
        try:
            # The hot path: exact scalars msgpack takes without our extension types.
            if kind in _PLAIN or (kind is int and _INT_MIN <= value <= _INT_MAX):
                payload = msgpack.packb(value)
            else:
                payload = _pack(value)
        except Exception:  # only what no type check sees, a lone surrogate: pickle keeps it
            pass
        else:
            return _encoded(_MSGPACK, None, payload)
    if "numpy" in sys.modules:  # without numpy imported, no value can be a numpy one
        encoded = _encode_numpy(value)
        if encoded is not None:
            return encoded
    try:
        payload = _pickle(value)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(
            f"cannot serialise a value of type {kind.__qualname__}: "
            f"cloudpickle failed: {type(exc).__name__}: {exc}"
        ) from exc
    return _encoded(_PICKLE, None, payload)


def _pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _pickler_class()(buffer, protocol=5).dump(value)
    return buffer.getvalue()


@functools.cache
def _pickler_class() -> type:
    """cloudpickle's pickler, refusing OS handles anywhere in the value (made on first use)."""
    import cloudpickle

    class HandleRefusingPickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            _refuse_handles(obj)
            return super().reducer_override(obj)

    return HandleRefusingPickler


def _refuse_handles(obj: Any) -> None:
    # cloudpickle would store an open text file as a StringIO of its content, silently, and
    # a handle (a file, a socket) means nothing to another step or process anyway.
    if isinstance(obj, io.IOBase) and not isinstance(obj, io.BytesIO | io.StringIO):
        name = getattr(obj, "name", None)
        shown = f"{type(obj).__name__} of {name!r}" if name is not None else type(obj).__name__
        raise CodecError(
            f"it holds an open file ({shown}), whose handle means nothing to a later step",
            "store its contents (f.read()) or its path (f.name) instead",
        )
    sockets = sys.modules.get("socket")
    if sockets is not None and isinstance(obj, sockets.socket):
        raise CodecError(
            f"it holds a socket ({type(obj).__name__}), whose connection means nothing to a "
            "later step",
            "store the data it received, or the address to connect to, instead",
        )


def decode(
    encoding: str,
    meta: bytes | None,
    payload: bytes | memoryview | OwnedBuffer,
    budget: int | None = None,
) -> Any:
    """Rebuild a value from its stored form; the result is independent and writable.

    A numpy array decoded from a buffer made by :func:`payload_buffer` (a ``bytearray`` or,
    when large, a private memory map) wraps that buffer (no copy), so the caller must hand
    over a buffer nobody else uses.

    :param encoding: the codec id stored with the value.
    :param meta: the codec metadata stored with the value.
    :param payload: the encoded bytes.
    :param budget: for msgpack, the most bytes of Python containers (lists, maps, sets,
        tuples; see :func:`_unpack`) decoding may build; None for no limit.
    :raises DecodeBudgetError: a msgpack value that would pass ``budget``.
    :raises CodecError: unknown encoding, or bytes that are not a valid encoding.
    """
    try:
        if encoding == _MSGPACK and meta is None:
            return _unpack(payload, budget)
        if encoding == _NUMPY and meta is not None:
            return _decode_numpy(meta, payload)
        if encoding == _PICKLE and meta is None:
            return pickle.loads(payload)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(
            f"invalid {encoding} payload: {type(exc).__name__}: {exc}; the store may be damaged"
        ) from exc
    raise CodecError(
        f"cannot decode encoding {encoding!r} with meta {'absent' if meta is None else 'present'}"
        ": an unknown encoding (from a newer asyncflow?) or a damaged store"
    )


def payload_buffer(size: int) -> OwnedBuffer:
    """A writable buffer of ``size`` bytes to read a payload into, for :func:`decode` to adopt.

    Large ones are private anonymous memory maps advised to use huge pages rather than
    bytearrays: filling 100 MB then takes ~20 ms instead of ~150-400 ms of 4 KiB page faults
    (benchmarks/RESULTS.md); freeing one returns its memory at once.
    """
    if size < _BIG_BUFFER or _MAP_FLAGS is None:
        return bytearray(size)
    buf = mmap.mmap(-1, size, flags=_MAP_FLAGS)
    if _MADV_HUGEPAGE is not None:
        with contextlib.suppress(OSError):
            buf.madvise(_MADV_HUGEPAGE)
    return buf


def owns_buffer(payload: object) -> bool:
    """Whether :func:`decode` takes over ``payload``'s memory (a :func:`payload_buffer`)."""
    return isinstance(payload, bytearray | mmap.mmap)


def is_immutable(value: Any) -> bool:
    """Tell whether ``value`` can never change: a builtin scalar, or a tuple or frozenset of them.

    :param value: any Python value.
    :returns: True only when sure (exact builtin types, bounded nesting), else False.
    """
    kind = type(value)
    if kind in _SCALARS:
        return True
    return (kind is tuple or kind is frozenset) and _immutable_items(value, 1)


def _immutable_items(items: tuple[Any, ...] | frozenset[Any], depth: int) -> bool:
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    if depth >= _IMMUTABLE_DEPTH or not kinds <= _IMMUTABLE:
        return False
    return all(type(item) in _SCALARS or _immutable_items(item, depth + 1) for item in items)


def content_hasher(encoding: str, meta: bytes | None, size: int) -> hashlib._Hash:
    """A sha256 fed with the frame of a blob of ``size`` payload bytes; feed it the payload
    (at once or in pieces) to get the blob's content address. Shared by :func:`encode` and
    every check of stored bytes (import, trust, archives)."""
    name = encoding.encode()
    head = _FRAME.pack(len(name), -1 if meta is None else len(meta), size) + name
    return hashlib.sha256(head if meta is None else head + meta)


def _encoded(encoding: str, meta: bytes | None, payload: bytes | memoryview) -> Encoded:
    size = len(payload)  # numpy payloads are flat views of bytes: len is nbytes
    digest = content_hasher(encoding, meta, size)
    digest.update(payload)
    return Encoded(encoding, meta, payload, digest.digest(), size)


def _packable(items: Iterable[Any], depth: int, seen: dict[int, bool]) -> bool:
    # msgpack itself would silently write bytearray, memoryview and ExtType as other types,
    # so the whole tree is checked first. ``seen`` maps the id of each container met to
    # whether it is a tuple or frozenset of scalars: those may recur (shared constants, ()).
    # Any other container met twice (aliasing, a cycle) is left to pickle, which keeps the
    # sharing and cannot blow up exponentially.
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    if depth >= _MAX_DEPTH or not kinds <= _PACKABLE:
        return False
    for item in items:
        kind = type(item)
        if kind in _SCALARS:
            continue
        flat = seen.get(id(item))
        if flat is None:
            flat = (kind is tuple or kind is frozenset) and set(map(type, item)) <= _SCALARS
            seen[id(item)] = flat
            if not flat and not (
                _packable(item, depth + 1, seen)
                and (kind is not dict or _packable(item.values(), depth + 1, seen))
            ):
                return False
        elif not flat:
            return False
    return True


def _pack(value: Any) -> bytes:
    # A small first buffer: the default 256 KiB one is mmapped anew by every packb nested in
    # _pack_default (set members), which costs ~30 us a call; growth keeps large values fast.
    return msgpack.packb(  # type: ignore[no-any-return]
        value, default=_pack_default, strict_types=True, buf_size=256
    )


def _pack_default(obj: Any) -> Any:
    kind = type(obj)
    if kind is tuple:
        return [_TUPLE_TAG, *obj]
    if kind is set:
        return [_SET_TAG, *_sorted_members(obj)]
    if kind is frozenset:
        return [_FROZENSET_TAG, *_sorted_members(obj)]
    if kind is int:  # outside msgpack's 64-bit range
        return msgpack.ExtType(
            _EXT_BIGINT, obj.to_bytes(obj.bit_length() // 8 + 1, "big", signed=True)
        )
    if kind is complex:
        return msgpack.ExtType(_EXT_COMPLEX, _COMPLEX.pack(obj.real, obj.imag))
    raise TypeError(f"msgpack codec does not take {kind.__qualname__}")


def _sorted_members(members: set[Any] | frozenset[Any]) -> list[Any]:
    # Equal sets must give equal bytes (and sha) whatever their iteration order, which for
    # str depends on the hash seed. Sort by value where that is a total order, else by
    # encoding.
    kinds = set(map(type, members))
    if len(kinds) == 1 and kinds <= _TOTALLY_ORDERED:
        return sorted(members)
    return sorted(members, key=_pack)


class _Unpacking:
    """Hooks for one msgpack decode; counts container tags not yet consumed by a list and,
    under a budget, the bytes of the containers built so far."""

    __slots__ = ("budget", "left", "pending")

    def __init__(self, budget: int | None = None) -> None:
        self.pending = 0
        self.budget = budget
        self.left = budget  # container bytes still allowed; None: no limit

    def ext(self, code: int, data: bytes) -> Any:
        if code == _EXT_BIGINT and data:
            return int.from_bytes(data, "big", signed=True)
        if code == _EXT_COMPLEX and len(data) == _COMPLEX.size:
            return complex(*_COMPLEX.unpack(data))
        if not data and code in (_EXT_TUPLE, _EXT_SET, _EXT_FROZENSET):
            self.pending += 1
            # The tag decodes to the builtin type it names: no decoded value is ever a type.
            return (tuple, set, frozenset)[code - _EXT_TUPLE]
        raise CodecError(f"unknown or malformed msgpack extension type {code}")

    def array(self, items: list[Any]) -> Any:
        if items:
            first = items[0]
            if first is tuple or first is set or first is frozenset:
                self.pending -= 1
                del items[0]
                if first is not tuple and len(items) > _FLOOD_ALLOWANCE:
                    _refuse_hash_flooding(items)
                built = first(items)
                if self.left is not None:
                    self.mapping(built)
                return built
        left = self.left
        if left is not None:  # what msgpack allocated: a list of exactly len(items)
            left -= _LIST_BYTES + _SLOT_BYTES * len(items)
            if left < 0:
                raise DecodeBudgetError(self.budget or 0)
            self.left = left
        return items

    def mapping(self, built: Any) -> Any:
        # A map's (or a set's, or a tuple's) cost is what sys.getsizeof says, computed as
        # __sizeof__ plus the GC header (a third of the time, per map). Checked as
        # each container is finished: what is built before a refusal is the budget plus the
        # containers still open (each at most 8 bytes per payload byte, as msgpack bounds a
        # declared length by the payload's).
        left = self.left - built.__sizeof__() - _GC_HEAD
        if left < 0:
            raise DecodeBudgetError(self.budget or 0)
        self.left = left
        return built


def _refuse_hash_flooding(members: list[Any]) -> None:
    # Members with equal hashes but unequal values make building a set quadratic: 20,000
    # crafted ints (180 KB) take seconds, 100,000 minutes. Distinct values of ours share a
    # hash only by rare accident, so many of them sharing hashes means crafted bytes.
    # (Maps are built inside msgpack, beyond our reach: see the README, "Safe loading".)
    shared = len(members) - len(set(map(hash, members)))
    if shared > _FLOOD_ALLOWANCE:
        raise CodecError(
            f"msgpack set of {len(members)} members has {shared} sharing a hash with another"
            ": crafted to make decoding slow"
        )


def _unpack(payload: bytes | memoryview | OwnedBuffer, budget: int | None = None) -> Any:
    # Under a budget, every container is charged as it is finished: a list its exact size,
    # a map or set what sys.getsizeof says (a hook call per map, only then). Scalars are not
    # counted: none costs more than 28 bytes of Python per payload byte (an int from -32 to
    # -6, one byte). Without a budget, maps take no hook at all.
    hooks = _Unpacking(budget)
    value = msgpack.unpackb(
        payload,
        ext_hook=hooks.ext,
        list_hook=hooks.array,
        object_hook=None if budget is None else hooks.mapping,
        strict_map_key=False,
        # The reserved timestamp extension (-1) has no hook; we never write it, and as an int
        # it can build nothing but an int.
        timestamp=2,
    )
    if hooks.pending:
        raise CodecError("msgpack container tag outside the first item of an array")
    return value


def _plain_dtype(dtype: np.dtype[Any]) -> bool:
    if dtype.metadata is not None or dtype.kind not in _DTYPE_KINDS or dtype.hasobject:
        return False
    if dtype.subdtype is not None:
        return _plain_dtype(dtype.subdtype[0])
    return not dtype.fields or all(_plain_dtype(field[0]) for field in dtype.fields.values())


def _encode_numpy(value: Any) -> Encoded | None:
    import numpy as np
    from numpy.lib.format import descr_to_dtype, dtype_to_descr

    if type(value) is np.ndarray:
        array, scalar = value, False
    elif isinstance(value, np.generic) and type(value) is value.dtype.type:
        array, scalar = np.asarray(value), True
    else:
        return None
    dtype = array.dtype
    if not _plain_dtype(dtype):
        return None
    try:
        descr = dtype_to_descr(dtype)
        back = descr_to_dtype(descr)
    except ValueError:  # e.g. overlapping or out-of-order fields: no .npy descriptor
        return None
    if back != dtype or back.type is not dtype.type:
        return None
    if dtype.itemsize == 0 and array.size > _ZERO_WIDTH_ELEMENTS:
        return None  # decoding refuses it (see _numpy_size_problem): pickle keeps it
    order: Literal["C", "F"]
    if array.flags.c_contiguous:
        order = "C"
    elif array.flags.f_contiguous:
        order = "F"
    else:  # neither layout: one contiguous copy
        array, order = array.copy(order="C"), "C"
    payload: bytes | memoryview = b""
    if array.nbytes:
        payload = array.reshape(-1, order=order).view(np.uint8).data
    meta = _pack({"descr": descr, "shape": list(array.shape), "order": order, "scalar": scalar})
    return _encoded(_NUMPY, meta, payload)


def _numpy_size_problem(itemsize: int, shape: list[int], nbytes: int) -> str | None:
    # Every element must be backed by payload bytes: shape x itemsize is the payload, and a
    # zero-width dtype (V0, a structured dtype of no fields) may not declare more elements
    # than a small allowance, or a 70 KB file could make a reader hold 10**9 of them.
    count = math.prod(shape)
    if count * itemsize != nbytes:
        return f"numpy payload has {nbytes} bytes; shape and dtype declare otherwise"
    if itemsize == 0 and count > _ZERO_WIDTH_ELEMENTS:
        return (
            f"numpy meta declares {count} elements of a zero-width dtype (at most "
            f"{_ZERO_WIDTH_ELEMENTS}): crafted to make readers allocate what is not stored"
        )
    return None


def _numpy_layout(meta: bytes, nbytes: int) -> tuple[np.dtype[Any], list[int], str, bool]:
    # The (dtype, shape, order, scalar) that ``meta`` declares, checked against a payload of
    # ``nbytes`` bytes before anything is allocated; raises CodecError.
    import numpy as np
    from numpy.lib.format import descr_to_dtype

    info = _unpack(meta)
    if type(info) is not dict or info.keys() != _NUMPY_META_KEYS:
        raise CodecError("numpy meta is not a map of descr, shape, order and scalar")
    dtype = descr_to_dtype(info["descr"])
    shape, order, scalar = info["shape"], info["order"], info["scalar"]
    if dtype.subdtype is not None or not _plain_dtype(dtype):
        raise CodecError(f"numpy meta declares a refused dtype {dtype!r}")
    if (
        type(shape) is not list
        or len(shape) > 64
        or not all(type(dim) is int and dim >= 0 for dim in shape)
        or order not in ("C", "F")
        or type(scalar) is not bool
        or (scalar and shape)
    ):
        raise CodecError("numpy meta has an invalid shape, order or scalar flag")
    problem = _numpy_size_problem(dtype.itemsize, shape, nbytes)
    if problem is not None:
        raise CodecError(problem)
    # numpy makes a 0-byte text dtype ("S0", "U0") one character wide when it builds an
    # array: a huge shape would then allocate gigabytes from an empty payload.
    if nbytes == 0 and np.empty(0, dtype=dtype).dtype != dtype:
        raise CodecError(f"numpy meta declares {dtype!r}, which no array has")
    return dtype, shape, order, scalar


def numpy_meta_problem(meta: bytes | None, nbytes: int) -> str | None:
    """Why a ``numpy`` blob's ``meta`` cannot describe a payload of ``nbytes`` bytes (a bad
    dtype, a shape whose size disagrees, elements backed by no bytes), or None. Reads the
    meta only, so a check of a whole store or archive can afford it for every blob."""
    if meta is None:
        return "numpy meta is missing"
    try:
        _numpy_layout(meta, nbytes)
    except CodecError as exc:
        return str(exc)
    except Exception as exc:
        return f"invalid numpy meta: {type(exc).__name__}: {exc}"
    return None


def _decode_numpy(meta: bytes, payload: bytes | memoryview | OwnedBuffer) -> Any:
    import numpy as np

    nbytes = memoryview(payload).nbytes
    dtype, shape, order, scalar = _numpy_layout(meta, nbytes)
    if nbytes == 0:
        array = np.empty(shape, dtype=dtype, order=order)  # type: ignore[call-overload]
    else:
        array = np.frombuffer(payload, dtype=dtype).reshape(shape, order=order)  # type: ignore[call-overload]
        if not owns_buffer(payload):  # bytes are read-only; a memoryview isn't ours
            array = array.copy(order="K")
    return array[()] if scalar else array
