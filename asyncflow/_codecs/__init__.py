"""Values to bytes and back: the codecs behind every stored artifact.

Three codecs, tried in this order; a codec claims a value only if decoding gives back an
equal value of exactly the same type, all the way down:

``msgpack`` (``_msgpack``)
    Exact builtin scalars, and lists, dicts, tuples, sets and frozensets of exactly them.
``numpy`` (``_numpy``)
    An exact ``np.ndarray`` or numpy scalar with a plain dtype (no objects, no metadata).
``pickle`` (``_pickle``)
    Anything else, through ``cloudpickle`` (protocol 5).

Each codec's module says what its stored form is (persisted forever). ``_stored`` holds
:class:`Encoded`, the content address and the errors; ``_buffers`` the buffers that
:func:`decode` may adopt. This module tries the codecs in order; everything outside the
package imports from here.

Decoding msgpack and numpy payloads is safe on hostile bytes: it builds only the types
above and checks every declared size. Valid msgpack may still build far more than it stores
(one byte per empty list), so a caller may give :func:`decode` a budget of container bytes.
Only the ``pickle`` encoding runs ``pickle.loads``.
numpy and cloudpickle are imported on first use, keeping ``import asyncflow`` light.
"""

from __future__ import annotations

import sys
from typing import Any

import msgpack

from ._buffers import OwnedBuffer, owns_buffer, payload_buffer
from ._bulk import SLICE, copy_into, fresh_bytes
from ._msgpack import (
    _CONTAINERS,
    _INT_MAX,
    _INT_MIN,
    _PLAIN,
    _SCALARS,
    _pack,
    _pack_bytes,
    _packable,
    _unpack,
    is_immutable,
)
from ._numpy import _decode_numpy, _encode_numpy, numpy_meta_problem
from ._pickle import _pickle, _unpickle
from ._stored import (
    _MSGPACK,
    _NUMPY,
    _PICKLE,
    CodecError,
    DecodeBudgetError,
    Encoded,
    _encoded,
    content_hasher,
)

__all__ = [
    "BUDGET_PER_BYTE",
    "BUDGET_SLACK",
    "CodecError",
    "DecodeBudgetError",
    "Encoded",
    "OwnedBuffer",
    "content_hasher",
    "copy_into",
    "decode",
    "encode",
    "fresh_bytes",
    "is_immutable",
    "numpy_meta_problem",
    "owns_buffer",
    "payload_buffer",
    "untrusted_budget",
]

#: Decoding a msgpack value of a run that is not trusted may build at most this many bytes
#: of Python containers per payload byte, plus :data:`BUDGET_SLACK`. Our own values mostly
#: build under 30 (a list of pairs ~27, of short strings ~20); empty lists build 64.
BUDGET_PER_BYTE = 32
BUDGET_SLACK = 64 << 20


def untrusted_budget(size: int) -> int:
    """The decode budget (see :func:`decode`) of a msgpack payload of ``size`` bytes from a
    run that is not trusted: what the client and the runtime both allow such a value."""
    return BUDGET_PER_BYTE * size + BUDGET_SLACK


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
            if kind is bytes and len(value) > SLICE:
                payload = _pack_bytes(value)
            elif kind in _PLAIN or (kind is int and _INT_MIN <= value <= _INT_MAX):
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
        tuples; see ``_msgpack._unpack``) decoding may build; None for no limit.
    :raises DecodeBudgetError: a msgpack value that would pass ``budget``.
    :raises CodecError: unknown encoding, or bytes that are not a valid encoding.
    """
    try:
        if encoding == _MSGPACK and meta is None:
            return _unpack(payload, budget)
        if encoding == _NUMPY and meta is not None:
            return _decode_numpy(meta, payload)
        if encoding == _PICKLE and meta is None:
            return _unpickle(payload)
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
