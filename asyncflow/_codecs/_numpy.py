"""The ``numpy`` codec: an exact ``np.ndarray`` or numpy scalar with a plain dtype.

A plain dtype holds no objects and no metadata. The payload is the raw buffer, a zero-copy
view when the array is C- or F-contiguous; ``meta`` (msgpack) holds the ``.npy`` dtype
descriptor, the shape, the order and a scalar flag. Decoding checks every declared size
against the payload before it allocates anything. numpy is imported on first use.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, Literal

from ._buffers import OwnedBuffer, owns_buffer
from ._msgpack import _pack, _unpack
from ._stored import _NUMPY, CodecError, Encoded, _encoded

if TYPE_CHECKING:
    import numpy as np

__all__ = ["numpy_meta_problem"]

_DTYPE_KINDS: Final = frozenset("biufcmMSUV")
_NUMPY_META_KEYS: Final = frozenset({"descr", "shape", "order", "scalar"})
_ZERO_WIDTH_ELEMENTS: Final = 1 << 16  # elements of a 0-byte dtype an array may hold


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
