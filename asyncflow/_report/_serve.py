"""``asyncflow serve``: a local web UI of a store's runs (the application is
:mod:`._serve_app`; this module checks the ``ui`` extra, binds the socket and runs uvicorn).

The server listens on 127.0.0.1 unless asked otherwise, and warns on stderr when it listens
beyond the loopback interface: whoever can reach it can read every run of the store. It
prints its URL once the socket listens, and stops on SIGINT (Ctrl-C) or SIGTERM: one line,
exit code 0.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

from .._client import list_flows
from .._errors import UsageError
from .._store._paths import resolve_store_path

__all__ = ["DEFAULT_HOST", "serve"]

DEFAULT_HOST = "127.0.0.1"


def _require_ui() -> None:
    """Import Starlette and uvicorn (the ``ui`` extra).

    :raises UsageError: one of them is missing (C361).
    """
    for module in ("starlette", "uvicorn"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(
                f"asyncflow serve needs Starlette and uvicorn, and {module} cannot be imported "
                f"here ({exc}); install them with pip install 'asyncflow[ui]'",
                "serve",
            ) from None


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (port 0: a free one).

    :raises UsageError: the name does not resolve, or the address cannot be listened on
        (C362).
    """

    def refused(reason: str) -> UsageError:
        return UsageError(
            f"asyncflow serve cannot listen on {host}:{port}: {reason}; choose another --port "
            "(--port 0 picks a free one) or --host (the default, 127.0.0.1, is this machine "
            "only)",
            "port",
        )

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise refused(f"the name does not resolve ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections wait from now on, until the server accepts them
    except OSError as exc:
        sock.close()
        raise refused(exc.strerror or str(exc)) from None
    return sock


def _is_loopback(sock: socket.socket) -> bool:
    address = str(sock.getsockname()[0]).split("%", 1)[0]
    return ipaddress.ip_address(address).is_loopback


def _url(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if sock.family == socket.AF_INET6 else address
    return f"http://{shown}:{port}/"


def serve(
    store: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    allow_hosts: Sequence[str] = (),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Serve the runs of ``store`` on ``host``:``port`` until SIGINT or SIGTERM; return 0.

    :param store: the store file (None: ``$ASYNCFLOW_STORE``, else the nearest
        ``asyncflow.db`` upward).
    :param port: the port; 0 picks a free one (the printed URL says which).
    :param allow_hosts: host names to answer requests to, besides localhost and any IP
        address; when it listens beyond loopback, this machine's own names are added.
    :param out: where the URL and the closing line go (default stdout).
    :param err: where the warning about a host beyond loopback goes (default stderr).
    :raises UsageError: Starlette or uvicorn is missing (C361); the address cannot be
        listened on (C362).
    :raises StoreError: there is no store there, or it cannot be read.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    _require_ui()
    path = resolve_store_path(store)
    list_flows(path)  # refuse a missing or foreign store before listening
    from ._serve_app import make_app
    from ._serve_server import run_server

    sock = _bind(host, port)
    with contextlib.closing(sock):
        loopback = _is_loopback(sock)
        url = _url(sock)
        if not loopback:
            print(
                f"asyncflow serve: warning: listening on {url}, beyond this machine: anyone "
                f"who can reach it can read every run of {path} (artifacts, logs, "
                "parameters); leave --host out to serve 127.0.0.1 only",
                file=err,
                flush=True,
            )
        names = {name.strip().lower() for name in allow_hosts if name.strip()}
        if not loopback:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        app = make_app(path, hosts=frozenset(names))
        signals = run_server(
            app, sock, lambda: print(f"serving {url} (Ctrl-C to stop)", file=out, flush=True)
        )
    why = f" ({signal.Signals(signals[0]).name})" if signals else ""
    print(f"stopped serving {url}{why}", file=out, flush=True)
    return 0
