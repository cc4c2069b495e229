"""The exception tree of asyncflow.

Every error a user can meet derives from :class:`AsyncflowError` and mixes in the
builtin a user would naturally catch::

    AsyncflowError
    ├── FlowValidationError          the flow definition (or a step's next()) is wrong
    ├── ParameterError(ValueError)   unknown, missing or invalid parameter or IncludeFile
    ├── MergeArtifactsError          merge_artifacts() found conflicting values
    ├── ArtifactSerializationError   a value set on self cannot be stored
    ├── StepFailed                   a step raised; ``.run`` is the failed run
    ├── StoreError                   the store file cannot be used
    │   └── StoreFormatError         not an asyncflow store, or from a newer asyncflow
    ├── UntrustedArtifactError       a pickled value nobody vouches for was not unpickled
    ├── ArtifactLoadError            a pickled value needs code that cannot be imported here
    ├── UsageError(ValueError)       a store-level function or command got unusable arguments
    └── NotFoundError(KeyError)      a flow, run, step or task does not exist
        ├── ArtifactNotFoundError(AttributeError)
        └── NamespaceMismatchError   it exists, outside the namespace() in force

Structured fields live in ``args`` so every exception pickles; the message is rendered
in ``__str__`` and says what went wrong and what to do.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

__all__ = [
    "ArtifactLoadError",
    "ArtifactNotFoundError",
    "ArtifactSerializationError",
    "AsyncflowError",
    "AsyncflowWarning",
    "FlowValidationError",
    "MergeArtifactsError",
    "NamespaceMismatchError",
    "NotFoundError",
    "NotSupportedError",
    "ParameterError",
    "RunsLocallyWarning",
    "StepFailed",
    "StoreError",
    "StoreFormatError",
    "UntrustedArtifactError",
    "UsageError",
]


class AsyncflowError(Exception):
    """Base class of every error raised by asyncflow."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class AsyncflowWarning(UserWarning):
    """The base of asyncflow's warnings: something works, differently than the flow asked
    (another installed version of a package, another Python, steps asked to run elsewhere
    that run here); the run goes on.
    """


class FlowValidationError(AsyncflowError):
    """The flow definition breaks a rule; the message names the step, its file:line and the fix.

    :param message: the full explanation.
    :param step: the step at fault, when there is one.
    """

    def __init__(self, message: str, step: str | None = None) -> None:
        super().__init__(message, step)

    @property
    def step(self) -> str | None:
        """The name of the step at fault, or None for flow-wide rules."""
        return self.args[1]  # type: ignore[no-any-return]


class ParameterError(AsyncflowError, ValueError):
    """A parameter or IncludeFile is unknown, missing or invalid.

    :param message: the full explanation.
    :param name: the parameter concerned, when there is one.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message, name)

    @property
    def name(self) -> str | None:
        """The parameter concerned, or None."""
        return self.args[1]  # type: ignore[no-any-return]


class MergeArtifactsError(AsyncflowError):
    """``merge_artifacts`` found artifacts whose values differ between inputs.

    :param message: the full explanation.
    :param names: the conflicting artifact names, sorted.
    """

    def __init__(self, message: str, names: tuple[str, ...] = ()) -> None:
        super().__init__(message, tuple(names))

    @property
    def names(self) -> tuple[str, ...]:
        """The conflicting artifact names."""
        return self.args[1]  # type: ignore[no-any-return]


class ArtifactSerializationError(AsyncflowError):
    """A value assigned on ``self`` cannot be serialised.

    :param message: the full explanation.
    :param artifact: the artifact name.
    :param step: the step that set it.
    """

    def __init__(self, message: str, artifact: str, step: str) -> None:
        super().__init__(message, artifact, step)

    @property
    def artifact(self) -> str:
        """The artifact that could not be stored."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def step(self) -> str:
        """The step that set the artifact."""
        return self.args[2]  # type: ignore[no-any-return]


def store_option(path: str | None) -> str:
    """`` --store PATH``: what a command printed in a message needs to find the store
    (every hint that prints a command names its store, wherever the reader's shell is),
    quoted for the shell; a path that starts with '-' as ``./-x.db``, which no command line
    takes for an option."""
    if not path:
        return ""
    if path.startswith("-"):
        path = f".{os.sep}{path}"
    return f" --store {shlex.quote(path)}"


def shown(value: object, width: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``width`` characters: a name someone
    passed (a step, a config, a run id) may be megabytes long, and the message must stay
    readable."""
    if isinstance(value, str) and len(value) > width:
        return f"{value[:width]!r}... ({len(value):,} characters)"
    try:
        text = repr(value)
    except ValueError:  # an int of more digits than Python prints
        return f"an int of {value.bit_length() if isinstance(value, int) else '?'} bits"
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"


#: How a failed run's message says to resume it; the command line puts the exact command
#: (script, store, branch) in its place.
RESUME_HINT = "flow.resume() or `python flow.py resume`"


class StepFailed(AsyncflowError):
    """A step raised. ``__cause__`` is the step's own exception.

    :param message: the full explanation (names the step and the task).
    :param run: the failed run (an :class:`asyncflow.Run`).
    :param pathspec: the failed task's pathspec ``Flow/run/step/task``.
    """

    def __init__(self, message: str, run: Any, pathspec: str) -> None:
        super().__init__(message, run, pathspec)

    @property
    def run(self) -> Any:
        """The failed :class:`asyncflow.Run`."""
        return self.args[1]

    @property
    def pathspec(self) -> str:
        """The pathspec of the failed task."""
        return self.args[2]  # type: ignore[no-any-return]


class WorkerLostError(AsyncflowError):
    """The worker process running a task ended before the task did: the step called
    ``os._exit``, crashed the interpreter, or the kernel killed the worker (out of memory).
    The task fails with this error (``@retry`` retries it on a fresh worker); the run, the
    store and the other tasks are unharmed, and the run can be resumed.

    :param message: the full explanation (names the step, the task and how the worker ended).
    :param exit_code: the worker's exit status (negative: killed by that signal), or None.
    """

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message, exit_code)

    @property
    def exit_code(self) -> int | None:
        """The worker's exit status; ``-9`` is SIGKILL, ``-11`` SIGSEGV; None if unknown."""
        return self.args[1]  # type: ignore[no-any-return]


class StoreError(AsyncflowError):
    """The store file cannot be opened, read or written.

    :param message: the full explanation.
    :param path: the store file.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message, path)

    @property
    def path(self) -> str:
        """The store file concerned."""
        return self.args[1]  # type: ignore[no-any-return]


class StoreFormatError(StoreError):
    """The file is not an asyncflow store, or was written by a newer asyncflow."""


class UntrustedArtifactError(AsyncflowError):
    """A pickled artifact or parameter was not loaded, because unpickling runs code and
    nothing vouches for these bytes: the run is not trusted (an archive, an imported run, a
    store from elsewhere), the value's signature is not this user's, or its bytes do not match
    their hash. The message names the value and says how to trust its run.

    :param message: the full explanation.
    :param name: the artifact's (or parameter's) name.
    :param pathspec: where it was read: the task ``Flow/run/step/task`` of an artifact, the
        run ``Flow/run`` of a parameter.
    """

    def __init__(self, message: str, name: str, pathspec: str) -> None:
        super().__init__(message, name, pathspec)

    @property
    def name(self) -> str:
        """The name of the artifact or parameter that was not loaded."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def pathspec(self) -> str:
        """The task (for an artifact) or run (for a parameter) it was read through."""
        return self.args[2]  # type: ignore[no-any-return]


class ArtifactLoadError(AsyncflowError):
    """A pickled artifact or parameter could not be rebuilt here because the code it needs
    cannot be imported: the module that defines its class (or function) is not importable
    where it is read. The stored bytes are fine; the message names the missing module.

    :param message: the full explanation.
    :param name: the artifact's (or parameter's) name.
    :param pathspec: where it was read (as for :class:`UntrustedArtifactError`).
    :param module: the module that could not be imported.
    """

    def __init__(self, message: str, name: str, pathspec: str, module: str) -> None:
        super().__init__(message, name, pathspec, module)

    @property
    def name(self) -> str:
        """The name of the artifact or parameter that was not loaded."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def pathspec(self) -> str:
        """The task (for an artifact) or run (for a parameter) it was read through."""
        return self.args[2]  # type: ignore[no-any-return]

    @property
    def module(self) -> str:
        """The module that could not be imported."""
        return self.args[3]  # type: ignore[no-any-return]

    @classmethod
    def from_decoding(
        cls, exc: BaseException, what: str, name: str, pathspec: str
    ) -> ArtifactLoadError | None:
        """The error to raise if decoding ``what`` failed with ``exc`` because a module could
        not be imported (``exc`` or one of its causes is an ImportError), else None.

        :param what: the value, for the message: ``"artifact 'x' of task F/1/s/2"``.
        """
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ImportError):
            cause = cause.__cause__
        if cause is None:
            return None
        module = cause.name or "?"
        return cls(
            f"cannot load {what}: unpickling it needs the module {module!r}, which cannot be "
            f"imported here ({type(cause).__name__}: {cause}). The flow's code must be "
            "importable wherever its pickled values are read: run from the folder that holds "
            "it, or add that folder to PYTHONPATH (or install the package), then read it again.",
            name,
            pathspec,
            module,
        )


class UsageError(AsyncflowError, ValueError):
    """A store-level function or command (``gc``, ``tag``, ...) was given arguments it
    cannot act on, such as ``gc()`` without any criterion or an age it cannot read.

    :param message: the full explanation.
    :param argument: the argument at fault, when there is one.
    """

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message, argument)

    @property
    def argument(self) -> str | None:
        """The argument at fault (``"keep_last"``, ``"older_than"``, ...), or None."""
        return self.args[1]  # type: ignore[no-any-return]


class NotSupportedError(AsyncflowError, ImportError):
    """A Metaflow name or command that asyncflow does not provide (``from asyncflow import
    S3``); the message says why and what to use instead. It is an ImportError, so a flow file
    that imports such a name stops at its import line with that message.

    :param message: the full explanation.
    :param feature: the name or command refused.
    """

    def __init__(self, message: str, feature: str) -> None:
        super().__init__(message, feature)
        self.name = feature  # ImportError's own field: the name that could not be imported

    @property
    def feature(self) -> str:
        """The Metaflow name or command refused (``"S3"``, ``"argo-workflows"``)."""
        return self.args[1]  # type: ignore[no-any-return]


class NotFoundError(AsyncflowError, KeyError):
    """A flow, run, step, task or artifact does not exist.

    :param message: the full explanation, naming what is missing and what exists.
    """

    def __str__(self) -> str:
        # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else self.__class__.__name__


class ArtifactNotFoundError(NotFoundError, AttributeError):
    """An artifact does not exist on a task (also an AttributeError, for ``.data.name``)."""


class RunsLocallyWarning(AsyncflowWarning):
    """Steps asked to run elsewhere (``@kubernetes``, ``@batch``) run here instead; given
    once per run, before it starts, naming the steps and where they run."""


class NamespaceMismatchError(NotFoundError):
    """The flow or run exists, but not in the namespace set with ``asyncflow.namespace()``
    (Metaflow's ``MetaflowNamespaceMismatch``); ``namespace(None)`` shows every run.

    :param message: the full explanation.
    :param namespace: the namespace in force.
    """

    def __init__(self, message: str, namespace: str = "") -> None:
        super().__init__(message, namespace)

    @property
    def namespace(self) -> str:
        """The namespace in force when the lookup failed."""
        return self.args[1]  # type: ignore[no-any-return]
