"""A cheap fingerprint of arrays, to notice that data already checked (and hashed) has changed.

:func:`fingerprint` reads a fixed sample of each array, never all of it: its shape and dtype, its
first and last rows, and 4,096 elements at fixed (seeded) positions spread over the whole buffer,
one in each of 4,096 equal stretches. Arrays of at most 1 MiB (labels, small data sets) are hashed in
full. For 50,000 x 3,072 float32 (600 MB) it takes well under a millisecond, where a full SHA-256
takes about a second.

**Limit.** An in-place edit of a large array that changes neither its first or last row nor one of
the sampled elements goes unnoticed (a single changed element of a 50,000 x 3,072 array is caught
only where it is one of the 4,096 sampled out of 153.6 million). Code that edits its data in place
between audits should pass a new array (``x = x.copy(); x[...] = ...``); see
:mod:`pytest_privacy.audit.dataset` for what the fingerprint decides there.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["FULL_HASH_BYTES", "SAMPLE", "fingerprint"]

SAMPLE = 4096  # elements read from each array larger than FULL_HASH_BYTES, besides its first and last rows
FULL_HASH_BYTES = 1 << 20  # arrays up to this size are hashed in full
_SEED = 20240917


@lru_cache(maxsize=32)
def _positions(size: int) -> np.ndarray:
    """``SAMPLE`` flat positions in ``[0, size)``: one at a seeded place in each of ``SAMPLE`` equal
    stretches, so that the sample covers the whole buffer and is the same in every process."""
    bounds = np.linspace(0, size, SAMPLE + 1).astype(np.int64)
    offsets = np.random.default_rng(_SEED).random(SAMPLE)
    positions = bounds[:-1] + (offsets * (bounds[1:] - bounds[:-1])).astype(np.int64)
    positions.setflags(write=False)
    return positions


def fingerprint(*arrays: Any) -> str:
    """A short hex string that changes with the arrays' shape, dtype, first and last rows and a fixed
    sample of their elements (small arrays: all their bytes). Never copies a whole array: works on
    strided views and memory-mapped arrays, reading only the sampled elements."""
    h = hashlib.blake2b(digest_size=16)
    for part in arrays:
        arr = np.asarray(part)
        h.update(f"{arr.dtype.str}{arr.shape}|".encode())
        if arr.size == 0:
            pass
        elif arr.nbytes <= FULL_HASH_BYTES:
            h.update(np.ascontiguousarray(arr).tobytes())
        else:
            if arr.ndim >= 1:
                h.update(np.ascontiguousarray(arr[0]).tobytes())
                h.update(np.ascontiguousarray(arr[-1]).tobytes())
            index = np.unravel_index(_positions(arr.size), arr.shape)
            h.update(np.ascontiguousarray(arr[index]).tobytes())
        h.update(b"\x00")
    return h.hexdigest()
