"""Content-addressed store of trained models, on a local path or any fsspec URL.

Each entry is one safetensors file (no pickle anywhere: loading never runs code) holding a model's
logits on the audit queries and its weights. Its header carries the entry's key and a SHA-256 over
the key and every tensor, so an entry copied under another key, truncated or garbled fails its check
on read and is retrained (with a warning). Entries are published atomically, so a reader never sees
half of one: on a local file system written to a temporary file and ``os.replace``d, on an object
store sent as one PUT of the finished object.

**Trust model.** The checksum binds an entry to its key, which stops accidents (a copied or
damaged entry), not an adversary: anyone who can write to a shared store can compute a valid
checksum. Set ``PYTEST_PRIVACY_STORE_KEY`` (the same secret on every trusted writer and reader) to
sign entries with HMAC-SHA256: entries without a valid signature are then treated as corrupt, so a
writer without the secret cannot plant one.

**What the store owns.** A store's root holds a marker file (``.pytest-privacy-store``); the store
refuses a non-empty directory without it (other than one holding only its own layout, written before
the marker existed), and :meth:`ModelStore.clear` deletes only files of its own layout
(``xx/<key>.safetensors``, their temporary files, ``locks/<key>.lock``), never anything else.

**Read-only stores.** A CI runner may mount a warm store read-only: every entry present is used,
a missing one is trained in memory and not stored (one warning per store).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["MARKER", "SIGNING_KEY_ENV", "ModelStore", "NotAStoreError", "StoreWarning", "digest"]

_FORMAT = "pytest-privacy/2"  # /2: the header binds the entry to its key (and may sign it)
MARKER = ".pytest-privacy-store"
SIGNING_KEY_ENV = "PYTEST_PRIVACY_STORE_KEY"
_STALE_TMP_SECONDS = 3600  # a writer that died leaves a .tmp file; an hour on, nobody is writing it

# The store's own layout: what it may delete, and what an older (marker-less) store may contain.
_ENTRY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{64}\.safetensors(\.[0-9a-f]{32}\.tmp)?")
_LOCK = re.compile(r"locks/[0-9a-f]{64}\.lock")
_SHARD = re.compile(r"[0-9a-f]{2}|locks")
# The marker and the files written while creating or probing it (another process may be opening
# the same new store at this moment: what it writes there is ours too).
_OWN = re.compile(r"\.pytest-privacy-store(\.[0-9a-f]{32}\.tmp)?|\.probe\.[0-9a-f]{32}\.tmp")


class StoreWarning(UserWarning):
    """A store entry was unreadable or corrupt and is being retrained, or could not be written."""


class NotAStoreError(ValueError):
    """The directory given as a store holds files the store did not write, or cannot be created."""


def digest(*parts: Any) -> str:
    """SHA-256 over parts: bytes, numpy arrays (with dtype and shape), or anything with a stable repr."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(_as_bytes(arr))
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _as_bytes(arr: np.ndarray) -> Any:
    """A contiguous array's bytes, exactly ``arr.tobytes()``, without copying them (a zero-copy view
    when the dtype allows one)."""
    if arr.dtype.hasobject:
        return arr.tobytes()
    try:
        return arr.reshape(-1).view(np.uint8)
    except (TypeError, ValueError):
        return arr.tobytes()


def _local_path(root: str) -> str | None:
    """The path fsspec's local file system gives ``root`` when it is a plain POSIX path (no protocol,
    no colon at all), computed as fsspec computes it (``make_path_posix``, then ``_strip_protocol``)
    without importing fsspec; None for anything else, which fsspec resolves."""
    if os.sep != "/" or not root or ":" in root:
        return None
    if root.startswith("/"):
        path = root
    elif root.startswith("~"):
        path = os.path.expanduser(root)
    else:
        rel = root[2:] if root.startswith("./") else "" if root == "." else root
        path = f"{os.getcwd()}/{rel}"
    return path.rstrip("/") or "/"


def _checksum(key: str, tensors: Mapping[str, np.ndarray]) -> str:
    return digest(key, *[x for name in sorted(tensors) for x in (name, np.asarray(tensors[name]))])


def _signature(secret: bytes, key: str, checksum: str) -> str:
    return hmac.new(secret, f"{key}:{checksum}".encode(), hashlib.sha256).hexdigest()


class ModelStore:
    """Entries keyed by hex digests under ``root`` (a path or an fsspec URL such as ``memory://x``).

    Opening a root that does not exist creates it as a store; opening an existing directory that is
    not a store raises :class:`NotAStoreError`. ``signing_key`` (default: the
    ``PYTEST_PRIVACY_STORE_KEY`` environment variable) signs and checks every entry.
    """

    def __init__(self, root: str | os.PathLike[str], *, signing_key: str | bytes | None = None) -> None:
        self.root = str(root)
        path = _local_path(self.root)
        if path is not None:  # a plain local path: the store works with os alone (fsspec only if asked)
            self._fs: Any = None
            self.path, self.local = path, True
        else:
            import fsspec
            from fsspec.implementations.local import LocalFileSystem

            self._fs, path = fsspec.core.url_to_fs(self.root)
            self.path = path.rstrip("/") or "/"
            self.local = isinstance(self._fs, LocalFileSystem)
        secret = signing_key if signing_key is not None else os.environ.get(SIGNING_KEY_ENV) or None
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._warned_read_only = False
        self.writable = self._open()

    @property
    def fs(self) -> Any:
        """The store's fsspec file system (for a plain local path, created when first asked for)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def _exists(self, path: str) -> bool:
        return os.path.exists(path) if self.local else bool(self.fs.exists(path))

    # ------------------------------------------------------------------------------ ownership

    def _open(self) -> bool:
        """Check (or create) the store at ``path``; return whether this process can write to it."""
        marker = f"{self.path}/{MARKER}"
        if self._exists(marker):
            return self._can_write()
        exists = self._exists(self.path)
        if exists:
            if not (os.path.isdir(self.path) if self.local else self.fs.isdir(self.path)):
                raise NotAStoreError(f"{self.root} is a file, not a directory: choose a directory for the model cache.")
            foreign = [p for p in self._relative_files() if not (_ENTRY.fullmatch(p) or _LOCK.fullmatch(p) or _OWN.fullmatch(p))]
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise NotAStoreError(
                    f"{self.root} is not a pytest-privacy model store: it holds files the store did not write "
                    f"({shown}). Point --privacy-cache-dir at a new or empty directory (the store creates it)."
                )
        try:
            if self.local:
                os.makedirs(self.path, exist_ok=True)
            else:
                self.fs.makedirs(self.path, exist_ok=True)
            self._write_marker(marker)
        except OSError as exc:
            if exists:
                return False  # a store written before the marker existed, now mounted read-only
            raise NotAStoreError(
                f"cannot create the model cache at {self.root} ({exc.strerror or exc}); choose a writable "
                "--privacy-cache-dir, or run with --privacy-no-cache."
            ) from None
        return True

    def _write_marker(self, marker: str) -> None:
        content = json.dumps({"format": _FORMAT}).encode()
        if not self.local:
            self.fs.pipe_file(marker, content)
            return
        tmp = f"{marker}.{uuid.uuid4().hex}.tmp"  # whole or absent, for a process opening it too
        with open(tmp, "wb") as fh:
            fh.write(content)
        os.replace(tmp, marker)

    def _can_write(self) -> bool:
        if not self.local:
            return True  # object stores say no only when written to; put() then warns
        probe = f"{self.path}/.probe.{uuid.uuid4().hex}.tmp"
        try:
            with open(probe, "wb"):
                pass
            os.remove(probe)
            return True
        except OSError:
            return False

    def _relative_files(self) -> list[str]:
        base = self.path.rstrip("/") + "/"
        files = self.fs.find(self.path, withdirs=False)
        return sorted(str(f)[len(base):] if str(f).startswith(base) else str(f) for f in files)

    # ------------------------------------------------------------------------------ entries

    def _entry(self, key: str) -> str:
        return f"{self.path}/{key[:2]}/{key}.safetensors"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's tensors, or None when absent, of an older format, or corrupt (a corrupt entry
        is deleted when the store is writable, and warned about)."""
        path = self._entry(key)
        tensors, problem, delete = self._read(key, path)
        if problem is not None:
            self._corrupt(path, problem, delete=delete)
        return tensors

    def get_valid(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's tensors when it is present and passes every check :meth:`get` makes, else
        None, with no side effect: nothing is warned about or deleted. For a reader that does not
        hold the lock: entries are published whole, so one that checks out is the entry, and
        anything else is left to :meth:`get` under the lock."""
        return self._read(key, self._entry(key))[0]

    def _read(self, key: str, path: str) -> tuple[dict[str, np.ndarray] | None, str | None, bool]:
        """``(tensors, problem, delete)``: tensors when the entry is valid; a problem to warn about
        (and whether to delete the entry for it) when it is not; neither when absent or older."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            if self.local:
                with open(path, "rb") as fh:
                    blob = fh.read()
            else:
                blob = self.fs.cat_file(path)
        except FileNotFoundError:
            return None, None, False
        except OSError as exc:  # a folder or a symlink loop where the entry should be
            return None, f"unreadable ({exc.strerror or type(exc).__name__})", False
        try:
            meta = _metadata(blob)
            if meta.get("format") != _FORMAT:
                return None, None, False  # written by an older version: retrain and replace it, silently
            tensors = load(blob)
            checksum = _checksum(key, tensors)
            problem = None
            if meta.get("key") != key or meta.get("sha256") != checksum:
                problem = "corrupt or stored under another key"
            elif self._secret is not None and not hmac.compare_digest(
                str(meta.get("hmac", "")), _signature(self._secret, key, checksum)
            ):
                problem = f"not signed with this run's {SIGNING_KEY_ENV}"
        except (SafetensorError, ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError):
            problem = "corrupt"
        if problem is not None:
            return None, problem, True
        return tensors, None, False

    def _corrupt(self, path: str, problem: str, *, delete: bool) -> None:
        warnings.warn(f"pytest-privacy: cache entry {path} is {problem}; retraining it.", StoreWarning, stacklevel=3)
        if delete and self.writable:
            with contextlib.suppress(OSError):
                if self.local:
                    os.remove(path)
                else:
                    self.fs.rm_file(path)

    def put(self, key: str, tensors: Mapping[str, np.ndarray]) -> bool:
        """Publish an entry atomically (last writer wins; equal keys hold equal content). Returns
        whether it was stored: a read-only store, a diverged model (NaN/inf) or a failed write
        stores nothing, with a warning."""
        from safetensors.numpy import save

        arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        if any(a.dtype.kind in "fc" and not np.isfinite(a).all() for a in arrays.values()):
            warnings.warn(
                "pytest-privacy: a model with NaN/inf weights or logits (it diverged) is not cached.",
                StoreWarning, stacklevel=2,
            )
            return False
        if not self.writable:
            self._warn_read_only()
            return False
        checksum = _checksum(key, arrays)
        meta = {"format": _FORMAT, "key": key, "sha256": checksum}
        if self._secret is not None:
            meta["hmac"] = _signature(self._secret, key, checksum)
        blob = save(arrays, metadata=meta)
        path = self._entry(key)
        try:
            if self.local:
                shard = os.path.dirname(path)
                os.makedirs(shard, exist_ok=True)
                _remove_stale_tmp(shard)
                tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(blob)
                try:
                    os.replace(tmp, path)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.remove(tmp)
                    raise
            else:
                self.fs.makedirs(f"{self.path}/{key[:2]}", exist_ok=True)
                self.fs.pipe_file(path, blob)
        except OSError as exc:
            warnings.warn(
                f"pytest-privacy: could not store {path} ({exc.strerror or exc}); the model is used but not cached.",
                StoreWarning, stacklevel=2,
            )
            return False
        return True

    def _warn_read_only(self) -> None:
        if not self._warned_read_only:
            self._warned_read_only = True
            warnings.warn(
                f"pytest-privacy: the model cache {self.root} is read-only: models missing from it are "
                "trained in memory and not stored (run with --privacy-no-cache to say so explicitly).",
                StoreWarning, stacklevel=3,
            )

    def reachable_from_workers(self, *, local_cluster: bool) -> bool:
        """Whether worker processes can publish here: any shared fsspec store, a local path only when
        the workers run on this machine, an in-memory store never (each process has its own)."""
        if not self.writable:
            return False
        if self.local:
            return local_cluster
        from fsspec.implementations.memory import MemoryFileSystem

        if isinstance(self.fs, MemoryFileSystem):
            return False
        return local_cluster or not self.local

    def __contains__(self, key: str) -> bool:
        return self._exists(self._entry(key))

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise work on ``name`` across processes (xdist workers) sharing a local store.

        Object stores get no lock: two runners may then train the same models, and since entries
        are content-addressed and published whole, either copy is valid. A read-only store needs
        none: nothing is written to it.
        """
        if not self.local or not self.writable:
            yield
            return
        from filelock import FileLock

        os.makedirs(os.path.join(self.path, "locks"), exist_ok=True)
        with FileLock(os.path.join(self.path, "locks", f"{name}.lock")):
            yield

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """``name``'s lock if no other process holds it: yields True while held, or False at once
        when another holds it (a store without locks always yields True, as :meth:`lock` serialises
        nothing there)."""
        if not self.local or not self.writable:
            yield True
            return
        from filelock import FileLock, Timeout

        os.makedirs(os.path.join(self.path, "locks"), exist_ok=True)
        lock = FileLock(os.path.join(self.path, "locks", f"{name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def clear(self) -> int:
        """Delete every entry this store wrote (and its locks and temporary files), nothing else;
        return how many files were deleted."""
        if not self.writable:
            raise NotAStoreError(f"cannot clear the model cache at {self.root}: it is read-only.")
        ours = [p for p in self._relative_files() if _ENTRY.fullmatch(p) or _LOCK.fullmatch(p)]
        for rel in ours:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self.path}/{rel}")
        if self.local:  # empty shard folders of ours go too (object stores have no empty folders)
            for name in os.listdir(self.path):
                folder = os.path.join(self.path, name)
                if _SHARD.fullmatch(name) and os.path.isdir(folder) and not os.path.islink(folder):
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)  # only when empty
        return len(ours)


def _remove_stale_tmp(shard: str) -> None:
    """Delete this shard's temporary files left by writers that died over an hour ago."""
    now = time.time()
    with contextlib.suppress(OSError):
        for name in os.listdir(shard):
            if name.endswith(".tmp") and _ENTRY.fullmatch(f"{os.path.basename(shard)}/{name}"):
                path = os.path.join(shard, name)
                with contextlib.suppress(OSError):
                    if now - os.lstat(path).st_mtime > _STALE_TMP_SECONDS:
                        os.remove(path)


def _metadata(blob: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header.
    n = int.from_bytes(blob[:8], "little")
    if n <= 0 or n > len(blob) - 8:
        raise ValueError("truncated safetensors header")
    header = json.loads(blob[8 : 8 + n])
    return dict(header.get("__metadata__", {}))
