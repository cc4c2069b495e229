"""A run's parameters before it is recorded: resolved, IncludeFiles read (regular files of at
most ``max_bytes`` only) and encoded (:func:`resolve`); a resume's taken from its origin by
sha, with defaults for those declared since (:func:`resume_parameters`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import anyio.to_thread

from .._codecs import CodecError, Encoded, encode
from .._errors import ParameterError
from .._spec._flowbase import FlowBase
from .._spec._params import IncludeFile
from .._spec._resolve import parameters_of, resolve_parameters

if TYPE_CHECKING:  # a resume's reads: not imported by a run
    from ._resume import Origin

__all__ = ["resolve", "resume_parameters"]


async def _read_file(param: IncludeFile, path: str, flow: str) -> Any:
    data = await anyio.to_thread.run_sync(_read_bytes, param, path, flow)
    return param.decode_content(data, path=path, flow=flow)


# What a path that is not a regular file leads to, for the message.
_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_bytes(param: IncludeFile, path: str, flow: str) -> bytes:
    """The content of an IncludeFile, refused unless it is a regular file of at most
    ``param.max_bytes`` bytes. Blocking: call it in a worker thread.

    The path is checked before it is opened, and the opened file again (the path may have
    changed in between); opening does not wait (a FIFO with no writer would block forever),
    and reading stops one byte past the limit (a file may grow, /proc files say they are
    empty).
    """
    where = f"{flow}: cannot read the file {path!r} for IncludeFile {param.name!r}"
    limit = param.max_bytes
    fd = -1
    try:
        _check_regular(os.stat(path).st_mode, where, param)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        info = os.fstat(fd)
        _check_regular(info.st_mode, where, param)
        if info.st_size > limit:
            _too_big(where, param)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            _too_big(where, param)
        return b"".join(chunks)
    except OSError as exc:
        raise ParameterError(
            f"{where} ({exc.strerror or exc}); pass an existing, readable file with "
            f"--{param.name} or {param.name}=...",
            param.name,
        ) from exc
    finally:
        if fd >= 0:
            os.close(fd)


def _check_regular(mode: int, where: str, param: IncludeFile) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    raise ParameterError(
        f"{where}: it is {kind}, not a regular file; pass the path of a regular file with "
        f"--{param.name} or {param.name}=...",
        param.name,
    )


def _too_big(where: str, param: IncludeFile) -> NoReturn:
    raise ParameterError(
        f"{where}: it holds more than {param.max_bytes} bytes, the IncludeFile's max_bytes; "
        f"pass a smaller file, or declare IncludeFile({param.name!r}, ..., max_bytes=...) "
        "large enough for it.",
        param.name,
    )


async def resolve(
    flow_cls: type[FlowBase], flow_name: str, given: Mapping[str, Any]
) -> dict[str, tuple[str, Encoded]]:
    """Resolve, read and encode the parameters: attribute -> (parameter name, encoded)."""
    declared = parameters_of(flow_cls)
    resolved = resolve_parameters(flow_cls, flow_name, given)
    values: dict[str, Any] = dict(resolved.values)
    for attr, path in resolved.files.items():
        param = declared[attr]
        assert isinstance(param, IncludeFile)
        values[attr] = await _read_file(param, path, flow_name)
    out: dict[str, tuple[str, Encoded]] = {}
    for attr, value in values.items():
        try:
            out[attr] = (declared[attr].name, encode(value))
        except CodecError as exc:
            raise ParameterError(
                f"{flow_name}: the value of parameter {declared[attr].name!r} cannot be "
                f"stored ({exc}); pass a plain value (number, string, JSON-like data).",
                declared[attr].name,
            ) from exc
    return out


async def resume_parameters(
    flow_cls: type[FlowBase], flow_name: str, origin: Origin
) -> tuple[dict[str, tuple[str, Encoded]], dict[str, tuple[str, bytes]]]:
    """The origin's parameters, reused by sha: (new ones encoded, reused ones) by attribute.

    A parameter the origin lacks (declared since) takes its default.
    """
    values = origin.params
    encoded: dict[str, tuple[str, Encoded]] = {}
    reused: dict[str, tuple[str, bytes]] = {}
    for attr, param in parameters_of(flow_cls).items():
        sha = values.get(param.name)
        if sha is not None:
            reused[attr] = (param.name, sha)
            continue
        value = param.convert(param.default, flow=flow_name)
        if value is None and param.required:
            raise ParameterError(
                f"{flow_name}: run {origin.run.id} has no value for parameter {param.name!r}, "
                "which the flow now requires, and a resume cannot take parameters; give it a "
                "default, or start a new run with flow.run().",
                param.name,
            )
        if param.is_file and value is not None:
            assert isinstance(param, IncludeFile)
            value = await _read_file(param, value, flow_name)
        try:
            encoded[attr] = (param.name, encode(value))
        except CodecError as exc:
            raise ParameterError(
                f"{flow_name}: the default of parameter {param.name!r} cannot be stored "
                f"({exc}); make it a plain value.",
                param.name,
            ) from exc
    return encoded, reused
