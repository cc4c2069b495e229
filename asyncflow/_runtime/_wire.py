"""Messages between the coordinator and a worker process, over a private socket.

A message is a header object, pickled with cloudpickle (so a flow class defined in
``__main__`` or a notebook travels by value), followed by raw buffers sent as they are:
artifact payloads (a numpy array's memory, say) are never pickled or copied to be sent, and
are received straight into buffers that decoding may adopt (``payload_buffer``).

Frame: ``<Q header length><I buffer count>``, the header, then per buffer ``<Q length>`` and
its bytes. Every call blocks; the coordinator calls them in worker threads, never on the loop.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import Any, Final

from .._codecs import OwnedBuffer, payload_buffer

__all__ = ["ChannelClosed", "receive", "send"]

_HEAD: Final = struct.Struct("<QI")
_LEN: Final = struct.Struct("<Q")
_SMALL: Final = 1 << 16


class ChannelClosed(Exception):
    """The other end of the socket is gone (its process ended, or closed it)."""


def send(sock: socket.socket, header: Any, buffers: Sequence[bytes | memoryview] = ()) -> None:
    """Send one message. Blocking.

    :raises ChannelClosed: the other end is gone.
    """
    import cloudpickle

    head = cloudpickle.dumps(header, protocol=5)
    try:
        sock.sendall(_HEAD.pack(len(head), len(buffers)) + head)
        for buf in buffers:
            view = memoryview(buf).cast("B")
            sock.sendall(_LEN.pack(view.nbytes))
            sock.sendall(view)
    except OSError as exc:
        raise ChannelClosed(str(exc)) from exc


def receive(sock: socket.socket) -> tuple[Any, list[bytes | OwnedBuffer]]:
    """Receive one message: its header and its buffers (large ones as ``payload_buffer``).
    Blocking.

    :raises ChannelClosed: the other end is gone (at a message boundary or within one).
    """
    import pickle

    size, count = _HEAD.unpack(_exactly(sock, _HEAD.size))
    header = pickle.loads(_exactly(sock, size))
    buffers: list[bytes | OwnedBuffer] = []
    for _ in range(count):
        (length,) = _LEN.unpack(_exactly(sock, _LEN.size))
        if length <= _SMALL:
            buffers.append(_exactly(sock, length))
        else:
            buf = payload_buffer(length)
            _fill(sock, memoryview(buf))
            buffers.append(buf)
    return header, buffers


def _exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    _fill(sock, memoryview(buf))
    return bytes(buf)


def _fill(sock: socket.socket, view: memoryview) -> None:
    got, size = 0, view.nbytes
    try:
        while got < size:
            n = sock.recv_into(view[got:], min(size - got, 1 << 24))
            if n == 0:
                raise ChannelClosed("the other end closed the connection")
            got += n
    except OSError as exc:
        raise ChannelClosed(str(exc)) from exc
