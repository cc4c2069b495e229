"""The runtime's side of safe loading: no task unpickles a value nobody vouches for.

A task decodes a pickle blob only if the store's check passes (this user's signature, and
bytes that hash to their sha; see ``_store._signing``), made at every decode: only a value
still pending in this process's memory passes untouched. A pickle that cannot be rebuilt
because its module is not importable here is an ArtifactLoadError naming that module. A
resume checks what it would reuse of its origin before anything runs (``_resume``); the
check here is what remains for values damaged or edited under a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._codecs import (
    BUDGET_PER_BYTE,
    BUDGET_SLACK,
    CodecError,
    DecodeBudgetError,
    decode,
    untrusted_budget,
)
from .._errors import ArtifactLoadError, UntrustedArtifactError, store_option
from .._store._blobs import RawBlob
from .._store._signing import PICKLE, Problem

if TYPE_CHECKING:
    from ._context import RunContext

__all__ = ["check_loadable", "decode_loadable"]


def check_loadable(
    ctx: RunContext, raw: RawBlob, step: str, what: str, name: str, pathspec: str
) -> None:
    """Raise unless a task of ``step`` may decode ``raw`` (always true of msgpack and numpy).

    :param what: the value, for the message: ``"artifact 'x'"``, ``"parameter 'p'"``, ...
    :param name: the artifact's or parameter's name.
    :param pathspec: the task the value is read through (the error's ``pathspec``).
    :raises UntrustedArtifactError: a pickle blob not signed by this user, or whose bytes
        do not match their hash.
    """
    problem = ctx.store.check(raw)
    if problem is None:
        return
    flow, run_id = ctx.flow_name, ctx.run_id
    if problem is Problem.ALTERED:
        fix = "Restore the store file from a copy, or run the flow again."
    elif ctx.spin:
        fix = (
            f"If you trust the author of run {flow}/{run_id}, spin the task again with --trust "
            "(flow.spin(..., trust=True)): pickled values then load whoever signed them, if "
            "their bytes are intact."
        )
    else:
        # Only a resumed run reads values it did not write (its origin's); in a fresh run,
        # a value of its own whose signature was changed under it.
        source = f"{flow}/{ctx.origin_run_id if ctx.origin_run_id is not None else run_id}"
        fix = (
            f"If you trust the author of run {source}, where it comes from, trust that run "
            f"with `asyncflow trust {source}{store_option(ctx.store_file)}` (or run.trust()), "
            "then resume."
        )
    raise UntrustedArtifactError(
        f"step {step!r} of run {flow}/{run_id} cannot load the pickled {what}: unpickling "
        f"runs code, and {problem.value}. {fix}",
        name,
        pathspec,
    )


def decode_loadable(
    ctx: RunContext,
    raw: RawBlob,
    step: str,
    what: str,
    name: str,
    pathspec: str,
    payload: Any = None,
) -> Any:
    """Decode ``raw`` for a task of ``step`` after :func:`check_loadable` (pickles only).

    :param payload: decode these bytes instead of ``raw.payload`` (a private copy).
    :raises UntrustedArtifactError: as :func:`check_loadable`.
    :raises ArtifactLoadError: a pickle whose class's module cannot be imported here.
    :raises CodecError: bytes that are not a valid encoding.
    """
    if raw.encoding != PICKLE:
        return _decode_budgeted(ctx, raw, what, name, pathspec, payload)
    check_loadable(ctx, raw, step, what, name, pathspec)
    try:
        return decode(raw.encoding, raw.meta, raw.payload if payload is None else payload)
    except CodecError as exc:
        where = f"{what} in step {step!r} of run {ctx.flow_name}/{ctx.run_id}"
        missing = ArtifactLoadError.from_decoding(exc, f"the pickled {where}", name, pathspec)
        if missing is not None:
            raise missing from exc
        raise


def _decode_budgeted(
    ctx: RunContext, raw: RawBlob, what: str, name: str, pathspec: str, payload: Any
) -> Any:
    # A run resumed from a run that is not trusted decodes msgpack under the client's budget
    # for such runs, so crafted bytes cannot build gigabytes here either (README, "What trust
    # does not cover").
    budget = untrusted_budget(raw.size) if ctx.budgeted and raw.encoding == "msgpack" else None
    try:
        return decode(raw.encoding, raw.meta, raw.payload if payload is None else payload, budget)
    except DecodeBudgetError as exc:
        if ctx.spin:
            run = f"{ctx.flow_name}/{ctx.run_id}"
            raise UntrustedArtifactError(
                f"the {what} was not loaded: {exc}, the limit for a value of run {run}, which "
                f"is not trusted ({BUDGET_PER_BYTE} bytes per stored byte + "
                f"{BUDGET_SLACK >> 20} MiB): crafted to exhaust memory, or a value you trust. "
                f"If you trust the run's author, spin the task again with --trust "
                "(flow.spin(..., trust=True)).",
                name,
                pathspec,
            ) from exc
        origin = f"{ctx.flow_name}/{ctx.origin_run_id}"
        raise UntrustedArtifactError(
            f"the {what} was not loaded: {exc}, the limit for a value of a run resumed from "
            f"{origin}, which is not trusted ({BUDGET_PER_BYTE} bytes per stored byte + "
            f"{BUDGET_SLACK >> 20} MiB): crafted to exhaust memory, or a value you trust. If "
            f"you trust the run's author, trust it with `asyncflow trust {origin}"
            f"{store_option(ctx.store_file)}`, then "
            "resume it again.",
            name,
            pathspec,
        ) from exc
