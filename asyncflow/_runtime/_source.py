"""The flow's source code, captured when its graph is built and stored with every run.

What is captured is the whole module file that defines the flow class, so a run found later
(in an archive, on another machine) can be read and resumed with the code that made it. A
class without a readable file (defined in a notebook cell or with ``python -c``) falls back to
the class's own source; if even that cannot be read, nothing is captured. Capturing never
fails a run: the source is a record for people, not something the run needs.

The stored form is one msgpack blob of ``{"path": <absolute file path, or "">, "text": ...}``,
content-addressed like every value, so runs of unchanged code share one blob.
"""

from __future__ import annotations

import inspect
import os
import tokenize

from .._codecs import CodecError, Encoded, encode

__all__ = ["MAX_SOURCE_BYTES", "capture_source", "read_source"]

# A module file larger than this is not stored (the class's own source is, as for a cell).
MAX_SOURCE_BYTES = 8 << 20


def read_source(flow_cls: type) -> tuple[str, str] | None:
    """``(path, text)`` of the code that defines ``flow_cls``, or None if none is readable.

    ``path`` is the absolute path of the module file, or ``""`` when only the class's own
    source could be read (from Python's line cache, as for a notebook cell, or for a module
    file over :data:`MAX_SOURCE_BYTES`). The file is read with the encoding its coding
    declaration names (UTF-8 by default). Blocking: call it in a worker thread from async
    code.
    """
    try:
        file = inspect.getsourcefile(flow_cls)
    except (TypeError, OSError):  # a class of __main__ under `python -c`, or built in
        file = None
    if file:
        try:
            if os.path.getsize(file) > MAX_SOURCE_BYTES:
                raise OSError("too large to store with every run")
            with tokenize.open(file) as fh:
                return os.path.abspath(file), fh.read()
        except (OSError, SyntaxError, UnicodeDecodeError):
            pass  # only in the line cache (a notebook cell, a zip), or not text
    try:
        return "", inspect.getsource(flow_cls)
    except Exception:  # OSError, TypeError, or whatever inspect meets in odd line caches
        return None


def capture_source(flow_cls: type) -> Encoded | None:
    """The stored form of ``flow_cls``'s source (see the module docstring), or None.

    Blocking (it reads the file): the runtime calls it once per class, with the graph.
    """
    found = read_source(flow_cls)
    if found is None:
        return None
    path, text = found
    try:
        enc = encode({"path": path, "text": text})
    except CodecError:
        return None
    # Readers accept the source only as msgpack (they never unpickle it); text msgpack cannot
    # hold (a lone surrogate) would fall back to pickle, so it is not stored.
    return enc if enc.encoding == "msgpack" else None
