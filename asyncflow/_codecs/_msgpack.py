"""The ``msgpack`` codec: exact builtin values, and which values can never change.

It takes ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``,
``dict`` (any msgpack-able keys), ``tuple``, ``set`` and ``frozenset`` of exactly those types
(subclasses are left to pickle). Extension types, persisted forever: 1/2/3 tag a msgpack array
as a tuple/set/frozenset (the tag is its first item), 4 is an int beyond 64 bits (big-endian
two's complement), 5 a complex (two little-endian float64). Set members are written sorted by
their encoding, so equal sets hash equal.

Decoding is safe on hostile bytes: it builds only those types, refuses sets crafted to share
hashes, and under a budget charges every container it builds (see :class:`_Unpacking`).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import msgpack

from ._bulk import SLICE, fresh_bytes, joined
from ._stored import CodecError, DecodeBudgetError

if TYPE_CHECKING:
    from ._buffers import OwnedBuffer

__all__ = ["is_immutable"]

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
_FLOOD_ALLOWANCE: Final = 1024  # set members sharing a hash, beyond which decoding refuses
_LIST_BYTES: Final = sys.getsizeof([])
_SLOT_BYTES: Final = struct.calcsize("P")
_GC_HEAD: Final = sys.getsizeof([]) - [].__sizeof__()
_BIN32: Final = struct.Struct(">BI")  # msgpack's bin 32 header: 0xc6, then the length
_BIN32_TAG: Final = 0xC6


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


def _pack_bytes(value: bytes) -> bytes | memoryview:
    """``msgpack.packb(value)`` for a ``bytes`` over 1 MiB: the same bin 32 bytes, copied
    by slices (see _bulk); packb holds the GIL while it copies, 1.7 s for 500 MB."""
    if len(value) >> 32:
        return msgpack.packb(value)  # type: ignore[no-any-return]  # raises: too long
    return joined([_BIN32.pack(_BIN32_TAG, len(value)), value])


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
    with memoryview(payload) as view:
        size = view.nbytes
        if size > SLICE and view[0] == _BIN32_TAG and _BIN32.unpack(view[:5])[1] == size - 5:
            return fresh_bytes(view.cast("B")[5:])  # one large bytes value: copied by slices
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
