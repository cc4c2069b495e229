"""The mutations of the archive fuzz test: random damage, and edits by an "attacker".

Each mutation is a function ``(path, rng, facts) -> description`` that changes the archive
file at ``path`` in place, drawing every choice from ``rng`` (so a case replays from its seed)
and returning a one-line description of what it did. ``facts`` are what a worker learnt once
from the pristine archive (:class:`Facts`): page size, where blob payloads and the manifest
lie in the file, which blobs, artifacts and runs exist.

*Damage* kinds change bytes with no regard for the format, as a bad disk, a broken copy or a
truncated download would. *Attacker* kinds (``sql_*``) edit the archive through SQLite and
then *reseal* it: recompute the digest in the manifest with asyncflow's own
:func:`~asyncflow._store._manifest.content_digest`, so the records look valid. What each kind
may lead to is defined in ``tests/_fuzzarchive.py`` (the ``ACCEPTED`` rules).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from asyncflow._codecs import content_hasher
from asyncflow._store._manifest import content_digest

__all__ = ["DAMAGE", "MUTATIONS", "Change", "Facts", "artifact_key", "learn", "reseal"]

ARCHIVE_KEY = "archive"
FLOW = "FuzzFlow"


@dataclass(frozen=True)
class Change:
    """What a mutation did, and (for an attacker's self-consistent edit) the readings it may
    change: ``fnmatch`` patterns of reading keys (see ``tests/_fuzzarchive.py``)."""

    what: str
    scope: tuple[str, ...] = ()


def artifact_key(run_id: int, task_id: int, name: str) -> tuple[str, ...]:
    """The reading keys of one artifact: its value and its encoding/size/sha."""
    key = f"{FLOW}/{run_id}/{task_id}/{name}"
    return (key, key + ":meta")


@dataclass
class Facts:
    """What a worker learns once from the pristine archive, for the mutations to aim at."""

    size: int = 0
    page_size: int = 4096
    # (offset, length, encoding) of 16-byte windows of blob payloads, found in the file.
    payload_windows: list[tuple[int, int, str]] = field(default_factory=list)
    # (offset, length) of the manifest's JSON text in the file.
    manifest_at: tuple[int, int] | None = None
    # sha -> (encoding, nchunks) of every blob.
    blobs: dict[bytes, tuple[str, int]] = field(default_factory=dict)
    # (run_id, task_id, name, sha) of every artifact.
    artifacts: list[tuple[int, int, str, bytes]] = field(default_factory=list)
    canary_sha: bytes = b""
    run_ids: list[int] = field(default_factory=list)


def learn(path: str, canary_name: str = "canary") -> Facts:
    """Read the pristine archive at ``path`` once: where things are, what exists."""
    with open(path, "rb") as fh:
        data = fh.read()
    facts = Facts(size=len(data))
    page = int.from_bytes(data[16:18], "big")
    facts.page_size = 65536 if page == 1 else page
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for sha, encoding, nchunks in conn.execute("SELECT sha, encoding, nchunks FROM blobs"):
            facts.blobs[bytes(sha)] = (encoding, int(nchunks))
        facts.artifacts = [
            (int(r), int(t), n, bytes(s))
            for r, t, n, s in conn.execute(
                "SELECT run_id, task_id, name, sha FROM artifacts ORDER BY 1, 2, 3"
            )
        ]
        facts.canary_sha = next(s for _, _, n, s in facts.artifacts if n == canary_name)
        facts.run_ids = [int(r) for (r,) in conn.execute("SELECT id FROM runs ORDER BY id")]
        payloads = [
            (bytes(d), e)
            for d, e in conn.execute("SELECT data, encoding FROM blobs WHERE data IS NOT NULL")
        ]
        payloads += [
            (bytes(d), e)
            for d, e in conn.execute(
                "SELECT c.data, b.encoding FROM blob_chunks AS c JOIN blobs AS b USING (sha)"
            )
        ]
        found = conn.execute(
            "SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,)
        ).fetchone()
    finally:
        conn.close()
    if found is not None:  # a store has no manifest
        text = found[0].encode()
        at = data.find(text)
        if at >= 0:
            facts.manifest_at = (at, len(text))
    windows: set[tuple[int, int, str]] = set()
    for payload, encoding in payloads:
        if len(payload) < 16:
            continue
        for start in sorted({0, len(payload) // 2, len(payload) - 16, *range(0, 4096, 512)}):
            piece = payload[start : start + 16]
            if len(piece) < 16:
                continue
            at = data.find(piece)
            if at >= 0 and data.find(piece, at + 1) < 0:
                windows.add((at, 16, encoding))
    facts.payload_windows = sorted(windows)
    return facts


# --- damage ---------------------------------------------------------------------------------

Mutation = Callable[[str, random.Random, Facts], Change]


def _read(path: str) -> bytearray:
    with open(path, "rb") as fh:
        return bytearray(fh.read())


def _write(path: str, data: bytes | bytearray) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def bitflip(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    flips = [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 8))]
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    _write(path, data)
    return "flipped bits " + ", ".join(f"{b // 8}:{b % 8}" for b in flips)


def overwrite(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    length = rng.choice([1, 2, 4, 16, 100, 1000, 4096, 20000])
    start = rng.randrange(max(1, len(data) - length))
    data[start : start + length] = rng.randbytes(length)
    _write(path, data[: len(data)])
    return f"overwrote {length} bytes at {start} with random bytes"


def zero_page(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    pages = len(data) // facts.page_size
    page = rng.randrange(pages)
    start = page * facts.page_size
    data[start : start + facts.page_size] = bytes(facts.page_size)
    _write(path, data)
    return f"zeroed page {page + 1} of {pages}"


def copy_page(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    pages = len(data) // facts.page_size
    src, dst = rng.randrange(pages), rng.randrange(pages)
    size = facts.page_size
    data[dst * size : (dst + 1) * size] = data[src * size : (src + 1) * size]
    _write(path, data)
    return f"copied page {src + 1} over page {dst + 1} (a misdirected write)"


def swap_pages(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    pages = len(data) // facts.page_size
    first, second = rng.sample(range(pages), 2)
    size = facts.page_size
    a = bytes(data[first * size : (first + 1) * size])
    data[first * size : (first + 1) * size] = data[second * size : (second + 1) * size]
    data[second * size : (second + 1) * size] = a
    _write(path, data)
    return f"swapped pages {first + 1} and {second + 1} (writes that landed crosswise)"


def truncate(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    # Page boundaries are the likely cut of an interrupted copy; any byte is possible too.
    if rng.random() < 0.5:
        cut = rng.randrange(len(data) // facts.page_size) * facts.page_size
    else:
        cut = rng.randrange(len(data))
    _write(path, data[:cut])
    return f"truncated to {cut} of {len(data)} bytes"


def append(path: str, rng: random.Random, facts: Facts) -> str:
    length = rng.choice([1, 100, facts.page_size, 3 * facts.page_size + 5, 70000])
    with open(path, "ab") as fh:
        fh.write(rng.randbytes(length))
    return f"appended {length} random bytes"


def payload_flip(path: str, rng: random.Random, facts: Facts) -> str:
    data = _read(path)
    at, length, encoding = rng.choice(facts.payload_windows)
    flips = [rng.randrange(length * 8) for _ in range(rng.randint(1, 3))]
    for bit in flips:
        data[at + bit // 8] ^= 1 << (bit % 8)
    _write(path, data)
    return f"flipped {len(flips)} bit(s) in a {encoding} payload at {at}"


def manifest_flip(path: str, rng: random.Random, facts: Facts) -> str:
    assert facts.manifest_at is not None, "the manifest was not found in the file"
    data = _read(path)
    at, length = facts.manifest_at
    byte = at + rng.randrange(length)
    old = data[byte]
    # Mostly printable changes (a digit or a letter for another), which keep the JSON valid.
    if rng.random() < 0.7 and chr(old).isalnum():
        pool = "0123456789" if chr(old).isdigit() else "abcdefghijklmnopqrstuvwxyz"
        data[byte] = ord(rng.choice([c for c in pool if c != chr(old)]))
    else:
        data[byte] ^= 1 << rng.randrange(8)
    _write(path, data)
    return f"changed manifest byte {byte - at} ({chr(old)!r} -> {chr(data[byte])!r})"


def _damage(fn: Callable[[str, random.Random, Facts], str]) -> Mutation:
    def mutation(path: str, rng: random.Random, facts: Facts) -> Change:
        return Change(fn(path, rng, facts))

    return mutation


DAMAGE: dict[str, Mutation] = {
    fn.__name__: _damage(fn)
    for fn in (
        bitflip, overwrite, zero_page, copy_page, swap_pages, truncate, append, payload_flip,
        manifest_flip,
    )
}  # fmt: skip


# --- the attacker ---------------------------------------------------------------------------


def reseal(conn: sqlite3.Connection) -> None:
    """Recompute the manifest's digest over the (edited) records, as export would."""
    (text,) = conn.execute("SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,)).fetchone()
    manifest = json.loads(text)
    manifest["digest"] = content_digest(conn)
    conn.execute(
        "UPDATE store_info SET value = ? WHERE key = ?",
        (json.dumps(manifest, sort_keys=True), ARCHIVE_KEY),
    )


def _attack(
    edit: Callable[[sqlite3.Connection, random.Random, Facts], str | Change], *, seal: bool = True
) -> Mutation:
    """An attacker's edit, then (with ``seal``) the digest recomputed. An edit that may
    change what is read names its scope; with a new digest, the manifest read back differs
    as well."""

    def mutation(path: str, rng: random.Random, facts: Facts) -> Change:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = edit(conn, rng, facts)
            if seal:
                reseal(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        change = done if isinstance(done, Change) else Change(done)
        if not seal:
            return change
        scope = (*change.scope, "manifest") if change.scope else ()
        return Change(change.what + ", digest recomputed", scope)

    mutation.__name__ = edit.__name__
    return mutation


def _pick_blob(rng: random.Random, facts: Facts, *, chunked: bool | None = None) -> bytes:
    shas = sorted(
        sha
        for sha, (_, nchunks) in facts.blobs.items()
        if chunked is None or (nchunks > 0) == chunked
    )
    return rng.choice(shas)


def _pick_artifact(rng: random.Random, facts: Facts) -> tuple[int, int, str, bytes]:
    return rng.choice(facts.artifacts)


def _hx(sha: bytes) -> str:
    return sha.hex()[:12]


def sql_encoding(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    sha = _pick_blob(rng, facts)
    old = facts.blobs[sha][0]
    new = rng.choice([e for e in ("pickle", "msgpack", "numpy", "zstd", "") if e != old])
    conn.execute("UPDATE blobs SET encoding = ? WHERE sha = ?", (new, sha))
    return f"blob {_hx(sha)}: encoding {old} -> {new!r}"


def sql_meta(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    shas = sorted(s for s, (e, _) in facts.blobs.items() if e == "numpy")
    sha = rng.choice(shas)
    (meta,) = conn.execute("SELECT meta FROM blobs WHERE sha = ?", (sha,)).fetchone()
    info = msgpack.unpackb(meta)
    choice = rng.randrange(5)
    if choice == 0:
        info["shape"] = [10**12, *info["shape"][1:]]
        new: bytes | None = msgpack.packb(info)
    elif choice == 1:
        info["descr"] = "|O"
        new = msgpack.packb(info)
    elif choice == 2:
        info["order"] = "F" if info["order"] == "C" else "C"
        new = msgpack.packb(info)
    elif choice == 3:
        new = rng.randbytes(len(meta))
    else:
        new = None
    conn.execute("UPDATE blobs SET meta = ? WHERE sha = ?", (new, sha))
    return f"numpy blob {_hx(sha)}: meta changed (variant {choice})"


def sql_size(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    sha = _pick_blob(rng, facts)
    (size,) = conn.execute("SELECT size FROM blobs WHERE sha = ?", (sha,)).fetchone()
    new = rng.choice([2**60, 2**62, 2**31, size + 1, size - 1, 0, -1, size * 2 + 1])
    conn.execute("UPDATE blobs SET size = ? WHERE sha = ?", (new, sha))
    return f"blob {_hx(sha)}: size {size} -> {new}"


def sql_nchunks(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    # The one chunked blob half of the time: most blobs are inline.
    sha = _pick_blob(rng, facts, chunked=rng.random() < 0.5)
    size, nchunks = conn.execute("SELECT size, nchunks FROM blobs WHERE sha = ?", (sha,)).fetchone()
    variant = rng.randrange(4)
    if variant == 0:  # a consistent lie: the size and the chunk count of a huge value
        new_size, new_chunks = 2**60, 2**40
    elif variant == 1:
        new_size, new_chunks = size, nchunks + 1
    elif variant == 2:
        new_size, new_chunks = size, nchunks - 1
    else:
        new_size, new_chunks = size, 2**40
    conn.execute(
        "UPDATE blobs SET size = ?, nchunks = ? WHERE sha = ?", (new_size, new_chunks, sha)
    )
    return f"blob {_hx(sha)}: size/nchunks {size}/{nchunks} -> {new_size}/{new_chunks}"


def sql_chunk(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    sha = _pick_blob(rng, facts, chunked=True)
    (nchunks,) = conn.execute("SELECT nchunks FROM blobs WHERE sha = ?", (sha,)).fetchone()
    idx = rng.randrange(nchunks)
    variant = rng.randrange(5)
    if variant == 0:
        conn.execute("DELETE FROM blob_chunks WHERE sha = ? AND idx = ?", (sha, idx))
        return f"blob {_hx(sha)}: chunk {idx} deleted"
    if variant == 1 and nchunks > 1:
        conn.execute("UPDATE blob_chunks SET idx = -1 WHERE sha = ? AND idx = 0", (sha,))
        conn.execute("UPDATE blob_chunks SET idx = 0 WHERE sha = ? AND idx = 1", (sha,))
        conn.execute("UPDATE blob_chunks SET idx = 1 WHERE sha = ? AND idx = -1", (sha,))
        return f"blob {_hx(sha)}: chunks 0 and 1 swapped"
    if variant == 2:
        conn.execute(
            "INSERT INTO blob_chunks (sha, idx, data) VALUES (?, ?, ?)",
            (sha, nchunks, rng.randbytes(1000)),
        )
        return f"blob {_hx(sha)}: an extra chunk {nchunks} added"
    if variant == 3:
        (data,) = conn.execute(
            "SELECT data FROM blob_chunks WHERE sha = ? AND idx = ?", (sha, idx)
        ).fetchone()
        conn.execute(
            "UPDATE blob_chunks SET data = ? WHERE sha = ? AND idx = ?",
            (data[:-1], sha, idx),
        )
        return f"blob {_hx(sha)}: chunk {idx} one byte short"
    conn.execute(
        "UPDATE blob_chunks SET data = zeroblob(length(data)) WHERE sha = ? AND idx = ?",
        (sha, idx),
    )
    return f"blob {_hx(sha)}: chunk {idx} zeroed (same length)"


def sql_repoint(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> Change:
    run_id, task_id, name, old = _pick_artifact(rng, facts)
    new = rng.choice(sorted(s for s in facts.blobs if s != old))
    conn.execute(
        "UPDATE artifacts SET sha = ? WHERE run_id = ? AND task_id = ? AND name = ?",
        (new, run_id, task_id, name),
    )
    what = f"artifact {run_id}/{task_id}/{name} pointed at blob {_hx(new)} ({facts.blobs[new][0]})"
    return Change(what, artifact_key(run_id, task_id, name))


def sql_rewrite(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    sha = _pick_blob(rng, facts, chunked=False)
    (data,) = conn.execute("SELECT data FROM blobs WHERE sha = ?", (sha,)).fetchone()
    variant = rng.randrange(4)
    if variant == 0:
        (new,) = conn.execute(
            "SELECT data FROM blobs WHERE sha = ?", (facts.canary_sha,)
        ).fetchone()
        what = "the canary's pickle"
    elif variant == 1:
        other = _pick_blob(rng, facts, chunked=False)
        (new,) = conn.execute("SELECT data FROM blobs WHERE sha = ?", (other,)).fetchone()
        what = f"the bytes of blob {_hx(other)}"
    elif variant == 2:
        new = msgpack.packb({"an": "other value"})
        what = "another msgpack value"
    else:
        new = bytearray(data or b"\x00")
        new[rng.randrange(len(new))] ^= 0xFF
        new = bytes(new)
        what = "one byte changed"
    conn.execute("UPDATE blobs SET data = ?, size = ? WHERE sha = ?", (new, len(new), sha))
    return f"blob {_hx(sha)}: bytes replaced by {what}, sha kept"


def sql_mac(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    conn.execute("UPDATE blobs SET mac = randomblob(32)")
    return "every blob given a (forged) mac"


def sql_trusted(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    conn.execute("UPDATE runs SET trusted = 1")
    return "every run marked trusted"


def sql_canary(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> Change:
    run_id, task_id, name, _ = _pick_artifact(rng, facts)
    conn.execute(
        "UPDATE artifacts SET sha = ? WHERE run_id = ? AND task_id = ? AND name = ?",
        (facts.canary_sha, run_id, task_id, name),
    )
    conn.execute("UPDATE runs SET trusted = 1")
    conn.execute("UPDATE blobs SET mac = randomblob(32) WHERE sha = ?", (facts.canary_sha,))
    what = f"artifact {run_id}/{task_id}/{name} pointed at the canary, runs trusted, mac forged"
    return Change(what, artifact_key(run_id, task_id, name))


# Records of the wrong type or shape: SQLite keeps whatever it is given.
_BAD_RECORDS = (
    ("runs", "graph", "'not json'"),
    ("runs", "graph", "'[1, 2]'"),
    ("runs", "created_at", "'yesterday'"),
    ("runs", "created_at", "1e300"),
    ("runs", "finished_at", "x'00'"),
    ("runs", "origin_run_id", "'one'"),
    ("runs", "imported", "'{not json'"),
    ("runs", "imported", "'{\"run_id\": [1]}'"),
    ("runs", "source_sha", "'text, not a sha'"),
    ("runs", "flow", "12"),
    ("tasks", "path", "5"),
    ("tasks", "attempt", "'x'"),
    ("tasks", "started_at", "'noon'"),
    ("tasks", "stdout", "x'ff00'"),
    ("attempts", "attempt", "'first' || attempt"),
    # Each row keeps a key of its own: the edit must not break a primary key.
    ("run_tags", "tag", "CAST(tag AS BLOB)"),
    ("run_tags", "tag", "length(tag) + 1000 * unicode(tag)"),
    ("run_params", "name", "CAST(name AS BLOB)"),
    ("artifacts", "name", "CAST(name AS BLOB)"),
    ("artifacts", "task_id", "'t' || task_id"),
)


def sql_record(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> Change:
    run_id = rng.choice(facts.run_ids)
    key = f"{FLOW}/{run_id}"
    variant = rng.randrange(5)
    if variant == 0:
        conn.execute("UPDATE tasks SET stdout = 'edited output' WHERE run_id = ?", (run_id,))
        scope = (f"{key}/*:stdout", f"{key}/*:attempts")
        return Change(f"run {run_id}: every task's stdout edited", scope)
    if variant == 1:
        new = rng.choice(["succeeded", "failed", "cancelled"])
        conn.execute("UPDATE runs SET status = ? WHERE id = ?", (new, run_id))
        return Change(f"run {run_id}: status set to {new}", (f"{key}:record",))
    if variant == 2:
        conn.execute("INSERT OR IGNORE INTO run_tags VALUES (?, 'planted')", (run_id,))
        return Change(f"run {run_id}: tag 'planted' added", (f"{key}:record",))
    if variant == 3:
        conn.execute("UPDATE runs SET error = 'edited error' WHERE id = ?", (run_id,))
        return Change(f"run {run_id}: error text edited", (f"{key}:record",))
    table, column, value = rng.choice(_BAD_RECORDS)
    where = "id" if table == "runs" else "run_id"
    conn.execute(f"UPDATE {table} SET {column} = {value} WHERE {where} = ?", (run_id,))
    # Most of these must be refused; a few are converted by the column's type affinity (5
    # stored into a TEXT column is '5'), and are then records like any other, of this run.
    scope = (f"{key}:*", f"{key}/*", "runs", "flows")
    return Change(f"run {run_id}: {table}.{column} set to {value}", scope)


def _forged(rng: random.Random) -> tuple[str, bytes | None, bytes, str]:
    variant = rng.randrange(9)
    if variant == 0:
        return "msgpack", None, b"\x91" * 100_000 + b"\xc0", "a list nested 100000 deep"
    if variant == 1:
        return "msgpack", None, b"\xdd\xff\xff\xff\xff" + b"\xc0" * 10, "an array claiming 2**32-1"
    if variant == 2:
        return "msgpack", None, b"\xc7\x00\x02", "a set tag alone (not in an array)"
    if variant == 3:
        return "msgpack", None, b"\x92\x01\xd4\x01\x00", "a tuple tag in second place"
    if variant == 4:
        meta = msgpack.packb({"descr": "|O", "shape": [1], "order": "C", "scalar": False})
        return "numpy", meta, bytes(8), "an object-dtype array"
    if variant == 5:
        meta = msgpack.packb(
            {"descr": "<f8", "shape": [2**40, 2**40], "order": "C", "scalar": False}
        )
        return "numpy", meta, bytes(8), "a huge shape over 8 bytes"
    if variant == 6:
        meta = msgpack.packb({"descr": "<f8", "shape": [2**62, 0], "order": "C", "scalar": False})
        return "numpy", meta, b"", "an empty array of a huge first dimension"
    if variant == 7:
        meta = msgpack.packb(
            {"descr": [["a", [["b", "<i4", [2**31]]]]], "shape": [1], "order": "C", "scalar": False}
        )
        return "numpy", meta, bytes(4), "a nested dtype of a huge subarray"
    return "msgpack", None, msgpack.packb([[1, 2], {"k": 3}]), "a valid, different value"


def sql_forge(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> Change:
    encoding, meta, payload, what = _forged(rng)
    digest = content_hasher(encoding, meta, len(payload))
    digest.update(payload)
    sha = digest.digest()
    conn.execute(
        "INSERT OR IGNORE INTO blobs (sha, encoding, meta, size, data, nchunks) "
        "VALUES (?, ?, ?, ?, ?, 0)",
        (sha, encoding, meta, len(payload), payload),
    )
    run_id, task_id, name, _ = _pick_artifact(rng, facts)
    conn.execute(
        "UPDATE artifacts SET sha = ? WHERE run_id = ? AND task_id = ? AND name = ?",
        (sha, run_id, task_id, name),
    )
    what = f"artifact {run_id}/{task_id}/{name} pointed at a forged blob: {what}"
    return Change(what, artifact_key(run_id, task_id, name))


def sql_manifest(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> Change:
    (text,) = conn.execute("SELECT value FROM store_info WHERE key = ?", (ARCHIVE_KEY,)).fetchone()
    manifest: dict[str, Any] = json.loads(text)
    edits: list[tuple[str, Any]] = [
        ("schema_version", 99),
        ("schema_version", "3"),
        ("schema_version", None),
        ("format", "asyncflow-archive/2"),
        ("asyncflow_version", 5),
        ("exported_at", "yesterday"),
        ("exported_at", 1e300),
        ("exported_at", -1e20),
        ("exported_by", "someone"),
        ("exported_by", {"host": 1, "user": [], "store": None}),
        ("blobs", -1),
        ("blobs", "many"),
        ("blobs", 10**30),
        ("payload_bytes", 1.5),
        ("runs", []),
        ("runs", "all"),
        ("runs", manifest["runs"][:-1]),
        ("runs", [*manifest["runs"], manifest["runs"][0]]),
        ("runs", [dict(manifest["runs"][0], id=999), *manifest["runs"][1:]]),
        ("runs", [7, *manifest["runs"]]),
        ("exported_at", 0.0),
        ("extra", {"unknown": "field"}),
    ]
    key, value = rng.choice(edits)
    manifest[key] = value
    conn.execute(
        "UPDATE store_info SET value = ? WHERE key = ?",
        (json.dumps(manifest, sort_keys=True), ARCHIVE_KEY),
    )
    what = f"manifest field {key} set to {json.dumps(value)[:60]}"
    if rng.random() < 0.5:
        return Change(what)  # the digest, which covers the manifest, now disagrees
    # Resealed, a manifest of valid fields (another export time, a field of a newer
    # asyncflow) is what the archive says; every other edit must still be refused.
    reseal(conn)
    return Change(what + ", digest recomputed", ("manifest",))


def sql_no_manifest(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    conn.execute("DELETE FROM store_info WHERE key = ?", (ARCHIVE_KEY,))
    return "manifest deleted (the file now looks like a store)"


# A view that scans 10**12 rows to return none: it never ends, in constant memory.
ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) "
    "SELECT x'00' AS sha, x AS idx, x'00' AS data FROM c WHERE x < 0"
)


def sql_schema(conn: sqlite3.Connection, rng: random.Random, facts: Facts) -> str:
    variant = rng.randrange(5)
    if variant == 0:
        conn.execute("DROP TABLE blob_chunks")
        conn.execute(f"CREATE VIEW blob_chunks AS {ENDLESS}")
        return "blob_chunks replaced by a view that never ends"
    if variant == 1:
        conn.execute("CREATE TRIGGER planted AFTER INSERT ON runs BEGIN DELETE FROM blobs; END")
        return "a trigger added"
    if variant == 2:
        conn.execute("CREATE TABLE planted (x)")
        conn.execute("INSERT INTO planted VALUES (randomblob(1000))")
        return "an extra table added"
    if variant == 3:
        conn.execute("DROP INDEX runs_by_flow")
        return "index runs_by_flow dropped"
    conn.execute("CREATE INDEX planted ON tasks (stdout)")
    return "an extra index added"


ATTACKS: dict[str, Mutation] = {
    "sql_encoding": _attack(sql_encoding),
    "sql_meta": _attack(sql_meta),
    "sql_size": _attack(sql_size),
    "sql_nchunks": _attack(sql_nchunks),
    "sql_chunk": _attack(sql_chunk),
    "sql_repoint": _attack(sql_repoint),
    "sql_rewrite": _attack(sql_rewrite),
    "sql_mac": _attack(sql_mac),
    "sql_trusted": _attack(sql_trusted),
    "sql_canary": _attack(sql_canary),
    "sql_record": _attack(sql_record),
    "sql_forge": _attack(sql_forge),
    "sql_manifest": _attack(sql_manifest, seal=False),
    "sql_no_manifest": _attack(sql_no_manifest, seal=False),
    "sql_schema": _attack(sql_schema),
}

MUTATIONS: dict[str, Mutation] = {**DAMAGE, **ATTACKS}
