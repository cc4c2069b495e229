"""Is ``XFlow()`` the entry point of a script? Metaflow's flows end with it.

``if __name__ == "__main__": XFlow()`` at the bottom of a flow file runs the command line in
Metaflow. asyncflow does the same, and only then: when the flow is constructed with no
arguments, by a statement that throws the new object away (the bytecode after the call is
``POP_TOP``), at the top level of the script Python is running as ``__main__``, with no event
loop running. Anything else — ``flow = XFlow()``, arguments, a function, a notebook cell, an
imported module, a running loop — is an embedding: it never reads ``sys.argv``.
"""

from __future__ import annotations

import atexit
import os
import sys
from types import FrameType, TracebackType

__all__ = ["install_definition_hook", "is_script_entry", "loop_running"]


def is_script_entry(frame: FrameType | None) -> bool:
    """Whether ``frame`` (the caller of the flow's constructor) is ``XFlow()`` as a statement
    at the top level of the ``__main__`` script (see the module doc)."""
    if frame is None or frame.f_code.co_name != "<module>":
        return False
    if frame.f_globals.get("__name__") != "__main__":
        return False
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(main_file, str) or not _same_file(main_file, frame.f_code.co_filename):
        return False  # a notebook cell, python -c, an exec'd string
    if loop_running():
        return False
    return _result_discarded(frame)


def loop_running() -> bool:
    """Whether an asyncio event loop is running in this thread.

    Without asyncio imported none can be: importing it here would cost every flow file
    ~25 ms for a question whose answer is then always no."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _result_discarded(frame: FrameType) -> bool:
    # The instruction after the call that is running now: POP_TOP means `XFlow()` is a
    # statement of its own; anything else (STORE_NAME for `flow = XFlow()`, ...) uses it.
    import dis  # only when a flow is constructed at a script's top level

    instructions = list(dis.get_instructions(frame.f_code))
    for i, ins in enumerate(instructions):
        if ins.offset == frame.f_lasti:
            following = instructions[i + 1 : i + 2]
            return bool(following) and following[0].opname == "POP_TOP"
    return False


# --- a flow file whose definition is wrong -------------------------------------------------


def _definition_error(exc: BaseException, tb: TracebackType | None) -> bool:
    """Whether ``exc`` is asyncflow refusing the flow file's own definition: an
    AsyncflowError whose traceback runs only through the ``__main__`` script and asyncflow's
    code, starting at the script's top level (a decorator's or a Parameter's arguments, say).
    Any other code on the way (a library, the runtime's event loop) means it is not."""
    from .._errors import AsyncflowError

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(exc, AsyncflowError) or tb is None or not isinstance(main_file, str):
        return False
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    first = tb.tb_frame.f_code
    if first.co_name != "<module>" or not _same_file(main_file, first.co_filename):
        return False
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (os.path.abspath(name).startswith(package) or _same_file(main_file, name)):
            return False
        tb = tb.tb_next
    return True


def install_definition_hook() -> None:
    """Report a flow file's definition error (see :func:`_definition_error`) as one line
    ``error: «message»`` on stderr with exit code 2, as the flow's command line reports bad
    input; every other uncaught exception goes to the hook installed before (a traceback)."""
    previous = sys.excepthook
    if getattr(previous, "_asyncflow", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not _definition_error(exc, tb):
            previous(kind, exc, tb)
            return
        from ._format import printable

        print(printable(f"error: {exc}"), file=sys.stderr)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # the interpreter would exit with 1 after an uncaught exception

    hook._asyncflow = True  # type: ignore[attr-defined]
    sys.excepthook = hook
