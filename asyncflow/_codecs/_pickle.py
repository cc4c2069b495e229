"""The ``pickle`` codec: anything else, through ``cloudpickle`` (protocol 5).

Encoding refuses OS handles (open files, sockets) anywhere in the value, saying what to store
instead. Only decoding this codec runs ``pickle.loads`` (see :func:`~asyncflow._codecs.decode`).
cloudpickle is imported on first use.
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
from typing import Any

from ._bulk import SLICE, PartsWriter, SliceReader
from ._stored import CodecError


def _pickle(value: Any) -> bytes | memoryview:
    # Into parts joined at the end, not a BytesIO: a large bytes or array in the value is
    # then never copied in one call holding the GIL (see _bulk); the bytes are the same.
    out = PartsWriter()
    _pickler_class()(out, protocol=5).dump(value)
    return out.getvalue()


def _unpickle(payload: Any) -> Any:
    # A large payload is read through a file that fills large bytes by slices (see _bulk).
    if memoryview(payload).nbytes <= SLICE:
        return pickle.loads(payload)
    return pickle.Unpickler(SliceReader(payload)).load()


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
