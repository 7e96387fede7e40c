"""Content-addressed store of trained models, on a local path or any fsspec URL.

Each entry is one safetensors file (no pickle anywhere: loading never runs code) holding a model's
logits on the audit queries and its weights, with a SHA-256 of every tensor in the header. Entries
are published atomically, so a reader never sees half of one: on a local file system written to a
temporary file and ``os.replace``d, on an object store sent as one PUT of the finished object. A
truncated or garbled entry fails its checksum on read, is deleted with a warning, and is retrained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["ModelStore", "StoreWarning", "digest"]

_FORMAT = "pytest-privacy/1"


class StoreWarning(UserWarning):
    """A store entry was unreadable or corrupt and is being retrained."""


def digest(*parts: Any) -> str:
    """SHA-256 over parts: bytes, numpy arrays (with dtype and shape), or anything with a stable repr."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _checksum(tensors: Mapping[str, np.ndarray]) -> str:
    return digest(*[x for name in sorted(tensors) for x in (name, np.asarray(tensors[name]))])


class ModelStore:
    """Entries keyed by hex digests under ``root`` (a path or an fsspec URL such as ``memory://x``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.root = str(root)
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.fs.makedirs(self.path, exist_ok=True)

    def _entry(self, key: str) -> str:
        return f"{self.path.rstrip('/')}/{key[:2]}/{key}.safetensors"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's tensors, or None when absent or corrupt (a corrupt entry is deleted)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        path = self._entry(key)
        try:
            blob = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            tensors = load(blob)
            meta = _metadata(blob)
            ok = meta.get("format") == _FORMAT and meta.get("sha256") == _checksum(tensors)
        except (SafetensorError, ValueError, KeyError, json.JSONDecodeError):
            ok = False
        if not ok:
            warnings.warn(f"pytest-privacy: cache entry {path} is corrupt; retraining it.", StoreWarning, stacklevel=2)
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)
            return None
        return tensors

    def put(self, key: str, tensors: Mapping[str, np.ndarray]) -> None:
        """Publish an entry atomically (last writer wins; equal keys hold equal content)."""
        from safetensors.numpy import save

        arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        blob = save(arrays, metadata={"format": _FORMAT, "sha256": _checksum(arrays)})
        path = self._entry(key)
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        else:
            self.fs.makedirs(self.path.rstrip("/") + "/" + key[:2], exist_ok=True)
            self.fs.pipe_file(path, blob)

    def reachable_from_workers(self, *, local_cluster: bool) -> bool:
        """Whether worker processes can publish here: any shared fsspec store, a local path only when
        the workers run on this machine, an in-memory store never (each process has its own)."""
        from fsspec.implementations.memory import MemoryFileSystem

        if isinstance(self.fs, MemoryFileSystem):
            return False
        return local_cluster or not self.local

    def __contains__(self, key: str) -> bool:
        return bool(self.fs.exists(self._entry(key)))

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise work on ``name`` across processes (xdist workers) sharing a local store.

        Object stores get no lock: two runners may then train the same models, and since entries
        are content-addressed and published whole, either copy is valid.
        """
        if not self.local:
            yield
            return
        from filelock import FileLock

        os.makedirs(os.path.join(self.path, "locks"), exist_ok=True)
        with FileLock(os.path.join(self.path, "locks", f"{name}.lock")):
            yield

    def clear(self) -> None:
        """Delete every entry."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        self.fs.makedirs(self.path, exist_ok=True)


def _metadata(blob: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header.
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    return dict(header.get("__metadata__", {}))
