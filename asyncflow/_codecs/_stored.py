"""A value's stored form (:class:`Encoded`), its content address, and the codec errors.

The content address is a sha256 over the length-framed (encoding, meta, payload), so no two
different stored forms hash the same bytes; :func:`content_hasher` computes it, for encoding
and for every check of stored bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["CodecError", "DecodeBudgetError", "Encoded", "content_hasher"]

# The codec ids, persisted forever with every blob.
_MSGPACK: Final = "msgpack"
_NUMPY: Final = "numpy"
_PICKLE: Final = "pickle"

_FRAME: Final = struct.Struct("<BqQ")  # len(encoding), len(meta) or -1 for None, len(payload)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One value in stored form.

    :param encoding: the codec id: ``"msgpack"``, ``"numpy"`` or ``"pickle"``.
    :param meta: codec metadata (numpy: dtype, shape, order), else None.
    :param payload: the encoded bytes; for numpy a zero-copy view of the array's buffer, for a
        large msgpack or pickle payload a read-only view of a private memory map (``_bulk``).
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
