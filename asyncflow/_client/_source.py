"""Reading back the flow source stored with a run (``run.source``, ``run.source_path``).

The source blob is only ever decoded as msgpack: a store or an archive from someone else may
hold anything under the run's ``source_sha``, and reading a run's source must never unpickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread

from .._codecs import CodecError, decode
from .._errors import StoreError
from .._store._blobs import RawBlob

__all__ = ["SourceRecord", "adecode_source", "decode_source"]

# Source texts this large are decoded in a worker thread when read from async code.
_OFFLOAD_BYTES = 1 << 18


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The flow source stored with a run: the file's absolute path (``""`` when only the
    class's own source could be read) and its text."""

    path: str
    text: str


def _damaged(pathspec: str, path: str, reason: str) -> StoreError:
    return StoreError(
        f"cannot read the flow source stored with run {pathspec}: {reason}; the store file "
        f"{path!r} is damaged there: restore it from a copy (the run's data and artifacts "
        "are read separately and may still be fine).",
        path,
    )


def decode_source(raw: RawBlob, pathspec: str, path: str) -> SourceRecord:
    """The :class:`SourceRecord` in ``raw`` (the blob at the run's ``source_sha``).

    :param pathspec: ``Flow/run``, for error messages.
    :param path: the store file, for error messages.
    :raises StoreError: the blob is not a msgpack ``{"path": str, "text": str}`` record.
    """
    if raw.encoding != "msgpack":
        raise _damaged(pathspec, path, f"its blob is encoded as {raw.encoding!r}, not msgpack")
    try:
        value = decode(raw.encoding, raw.meta, raw.payload)
    except CodecError as exc:
        raise _damaged(pathspec, path, f"its blob cannot be decoded ({exc})") from exc
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("path"), str)
        or not isinstance(value.get("text"), str)
    ):
        raise _damaged(pathspec, path, "its blob is not a {path, text} record")
    return SourceRecord(value["path"], value["text"])


async def adecode_source(raw: RawBlob, pathspec: str, path: str) -> SourceRecord:
    """:func:`decode_source`, in a worker thread for a large text."""
    if raw.size > _OFFLOAD_BYTES:
        return await anyio.to_thread.run_sync(decode_source, raw, pathspec, path)
    return decode_source(raw, pathspec, path)
