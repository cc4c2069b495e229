"""Who may unpickle what: the per-user signing key and the signatures of pickle blobs.

Unpickling runs code, so a ``pickle`` blob is decoded only when this user wrote it (or
chose to trust it). The model is Jupyter's notebook trust: a secret key that never enters a
store (by default ``~/.local/share/asyncflow/key``; ``$ASYNCFLOW_KEY_FILE`` overrides) signs
the content address of every pickle blob this user's runs write, in ``blobs.mac``. A pickle
blob loads only if its mac verifies under this user's key *and* its bytes hash to its sha,
so neither a copied signature nor edited bytes get past the check. A store file carried to
another user or machine, an archive (export never copies macs) and an imported run are
therefore untrusted until trusted explicitly, which re-signs after checking every hash.
Runs carry ``runs.trusted`` as well, so an imported run stays untrusted as a whole even
where its blobs deduplicate against ones this user signed.
"""

from __future__ import annotations

import hmac
import os
import shlex
import stat
import threading

from .._codecs import OwnedBuffer, content_hasher
from .._errors import StoreError

__all__ = ["KEY_ENV", "TrustKey", "blob_sha", "default_key_path"]

KEY_ENV = "ASYNCFLOW_KEY_FILE"
_KEY_BYTES = 32
_DOMAIN = b"asyncflow pickle blob v1\x00"


def default_key_path() -> str:
    """``$ASYNCFLOW_KEY_FILE``, else ``$XDG_DATA_HOME/asyncflow/key``, else
    ``~/.local/share/asyncflow/key``. Read at the edges (store open, client, CLI).

    A relative ``$XDG_DATA_HOME`` is ignored, as the XDG Base Directory spec requires (it
    would name another key in every working directory)."""
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    data_home = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data_home):
        data_home = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "asyncflow", "key")


class TrustKey:
    """This user's signing key at ``path``, read (or created) on first use.

    :param path: the key file; None means :func:`default_key_path`.
    """

    __slots__ = ("_key", "_lock", "path")

    def __init__(self, path: str | None = None) -> None:
        self.path = default_key_path() if path is None else path
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[TrustKey], tuple[str]]:
        return (TrustKey, (self.path,))

    def key(self, *, create: bool) -> bytes | None:
        """The key's bytes; None if there is no key file and ``create`` is False. Blocking.

        :raises StoreError: the key file cannot be read or created (the message says where).
        """
        with self._lock:
            if self._key is None:
                self._key = _read_key(self.path) or (_create_key(self.path) if create else None)
            return self._key

    def sign(self, sha: bytes) -> bytes:
        """The mac that marks blob ``sha`` as written or trusted by this user. Blocking."""
        key = self.key(create=True)
        assert key is not None
        return hmac.digest(key, _DOMAIN + sha, "sha256")

    def verify(self, sha: bytes, mac: bytes | None) -> bool:
        """Whether ``mac`` is this user's signature of blob ``sha``. Blocking."""
        if not mac:
            return False
        key = self.key(create=False)
        if key is None:
            return False
        return hmac.compare_digest(hmac.digest(key, _DOMAIN + sha, "sha256"), mac)


def _key_error(path: str, what: str, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot {what} the signing key file {path!r} ({exc.strerror or exc}); asyncflow "
        f"signs the pickled artifacts you write with it. Make its folder writable, or set "
        f"{KEY_ENV} to a file in a folder you may write.",
        path,
    )


def _read_key(path: str) -> bytes | None:
    try:
        # O_NONBLOCK: a FIFO planted at the key's path must not make the open wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _key_error(path, "read", exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(
                f"the signing key file {path!r} is not a regular file; move it away so that "
                "a new key is made, or point $ASYNCFLOW_KEY_FILE at your key file.",
                path,
            )
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(_KEY_BYTES + 1)
    except OSError as exc:
        raise _key_error(path, "read", exc) from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) != _KEY_BYTES:
        raise StoreError(
            f"the signing key file {path!r} is damaged ({len(data)} bytes, expected "
            f"{_KEY_BYTES}); delete it to make a new key (runs signed with the old key will "
            "then need `asyncflow trust`).",
            path,
        )
    _refuse_exposed(path, st)
    return data


# Group and others may do nothing with the key (as ssh requires of a private key).
_PRIVATE = 0o077


def _refuse_exposed(path: str, st: os.stat_result) -> None:
    """Refuse a key file another user may read or write, or that another user owns.

    Whoever can read the key can sign a pickle that this user's asyncflow then unpickles
    (runs); whoever can write it can swap in a key of theirs. Keys asyncflow creates are
    the user's own, mode 0600. (No check where the platform has no uids.)
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return
    me = getuid()
    mode = st.st_mode & 0o777
    if st.st_uid == me and not mode & _PRIVATE:
        return
    if st.st_uid != me:
        why = f"it belongs to uid {st.st_uid}, not to you (uid {me})"
        fix = f"set {KEY_ENV} to a key file of your own, or move this one away"
    else:
        why = f"its mode is {mode:04o}, so other users may read or change it"
        fix = (
            f"make it private with `chmod 600 {shlex.quote(path)}`; if others may have read "
            "it, move it away instead"
        )
    raise StoreError(
        f"the signing key file {path!r} is not private: {why}. Whoever can read it can sign "
        f"pickles that asyncflow would load (running their code as you), so it is not used; "
        f"{fix} (a new key is then made at the next run, and runs signed with the old key "
        "need `asyncflow trust`).",
        path,
    )


def _create_key(path: str) -> bytes:
    """Create the key file atomically (mode 0600); if another process won, use its key."""
    import secrets  # once per key file: a run on a store with its key never imports it

    key = secrets.token_bytes(_KEY_BYTES)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise _key_error(path, "create", exc) from exc
    existing = _read_key(path)
    assert existing is not None
    return existing


def blob_sha(encoding: str, meta: bytes | None, payload: bytes | memoryview | OwnedBuffer) -> bytes:
    """The content address of a stored blob, recomputed from its parts (as the codec does)."""
    digest = content_hasher(encoding, meta, memoryview(payload).nbytes)
    digest.update(payload)
    return digest.digest()
