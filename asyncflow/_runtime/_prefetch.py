"""What a coroutine step will read, read, checked and decoded in a worker thread first.

A coroutine step reads artifacts synchronously (``self.x``, ``inp.x``) on the event loop,
where reading a large blob from SQLite, hashing a pickle and decoding would stall every
other coroutine. So before the step starts, the artifacts its source names
(:func:`~._context.attribute_reads`, a superset of what it reads) are read, checked and
decoded in one worker thread, and handed over on first access: ``self.x`` gets the value
decoded for it (:attr:`TaskState.decoded`), ``inputs[i].x`` the one decoded for that input
(:attr:`TaskState.input_values`). Each name of each input gets its own decode, so no two
reads share an object (CONTRACT, Artifacts 5).

A value that fails to decode here is not reported here (the step may never read it): its
stored form is kept (:attr:`TaskState.prefetched`), and it is decoded again when the step
reads it, raising then. What the source does not name (``getattr(self, name)``) is read on
the loop when the step reads it (README, "What can still hold up the loop").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._codecs import fresh_bytes, owns_buffer
from .._store._blobs import RawBlob
from .._store._signing import PICKLE
from ._untrusted import decode_loadable

if TYPE_CHECKING:
    from ._context import RunContext
from ._task import TaskState

__all__ = ["prefetch"]

# A blob at most this large, in memory and needing no hash, is decoded on the loop: a thread
# hop costs more than decoding it.
_CHEAP_BYTES = 1 << 16


async def prefetch(state: TaskState) -> None:
    """Read, check and decode what ``state``'s coroutine step names, in a worker thread
    (unless every value is small and in memory already)."""
    ctx, spec = state.ctx, state.spec
    names = ctx.step_reads(spec.step)
    own = {n: spec.base[n] for n in names if n in spec.base}
    if spec.inputs and "merge_artifacts" in names:  # a join's merged values, read as self.x
        for name in names - own.keys():
            sha = spec.inputs[0].refs.get(name)
            if sha is not None and all(o.refs.get(name) == sha for o in spec.inputs):
                own[name] = sha
    joined = {
        (i, n): outcome.refs[n]
        for i, outcome in enumerate(spec.inputs or ())
        for n in names
        if n in outcome.refs
    }
    shas = [*own.values(), *joined.values()]
    if all(_cheap(ctx, sha) for sha in shas):
        return
    await anyio.to_thread.run_sync(_fetch, state, own, joined)


def _fetch(state: TaskState, own: dict[str, bytes], joined: dict[tuple[int, str], bytes]) -> None:
    # Blocking: the worker thread's part. check=True hashes pickles here, not on the loop.
    ctx, spec = state.ctx, state.spec
    wanted = list(dict.fromkeys([*own.values(), *joined.values()]))
    raws = ctx.store.read_raw_many(wanted, check=True)
    used: set[bytes] = set()
    failed: dict[bytes, RawBlob] = {}

    def decoded(sha: bytes, what: str, name: str, pathspec: str) -> tuple[bool, Any]:
        raw = raws[sha]
        payload = raw.payload
        if sha in used and owns_buffer(payload):
            with memoryview(payload) as view:
                payload = fresh_bytes(view)  # the first decode may have taken the buffer
        used.add(sha)
        try:
            return True, decode_loadable(ctx, raw, spec.step, what, name, pathspec, payload)
        except Exception:  # raised again when (if) the step reads it
            failed[sha] = raw
            return False, None

    mine = ctx.pathspec(spec)
    for name, sha in own.items():
        kind = "parameter" if name in ctx.params else "artifact"
        pathspec = mine if raws[sha].encoding == PICKLE else ""
        ok, value = decoded(sha, f"{kind} {name!r}", name, pathspec)
        if ok:
            state.decoded[name] = (sha, value)
    for (index, name), sha in joined.items():
        parent = spec.inputs[index].spec if spec.inputs is not None else spec
        source = ctx.pathspec(parent) if raws[sha].encoding == PICKLE else ""
        ok, value = decoded(sha, f"artifact {name!r} of its input task {source}", name, source)
        if ok:
            state.input_values[index, name] = value
    state.prefetched = failed


def _cheap(ctx: RunContext, sha: bytes) -> bool:
    # Small, in memory, and needing no hash before it is decoded: fine on the loop.
    store = ctx.store
    enc = store.pending.get(sha)
    if enc is not None:
        return enc.size <= _CHEAP_BYTES
    raw = store.cache.peek(sha)
    return raw is not None and raw.encoding != PICKLE and raw.size <= _CHEAP_BYTES
