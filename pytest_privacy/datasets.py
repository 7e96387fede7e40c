"""Example data sets, all generated or shipped locally (never downloaded)."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "load_example_dataset"]

EXAMPLE_DATASETS = ("digits", "mnist1d", "synthetic")


class Dataset(NamedTuple):
    """Inputs and integer labels; unpacks as ``x, y``."""

    x: np.ndarray
    y: np.ndarray


def load_example_dataset(name: str, *, n: int | None = None, seed: int = 0) -> Dataset:
    """Load an example classification data set.

    - ``"digits"``: scikit-learn's 1,797 handwritten 8x8 digits, ``x [N, 8, 8]`` in [0, 1]
      (``n`` takes a seeded random subset).
    - ``"mnist1d"``: the MNIST-1D generator (Greydanus 2020) run locally, ``x [N, 40]``, standardised,
      default ``n=4000``; needs the ``mnist1d`` package (extra ``examples``).
    - ``"synthetic"``: ``n`` (default 1000) points of a 4-class Gaussian mixture in 20 dimensions.
    """
    if name == "digits":
        x, y = _digits()
    elif name == "mnist1d":
        x, y = _mnist1d(4000 if n is None else int(n), seed)
        n = None
    elif name == "synthetic":
        x, y = _synthetic(1000 if n is None else int(n), seed)
        n = None
    else:
        raise ValueError(f"unknown example data set {name!r}; choose from {EXAMPLE_DATASETS}.")
    if n is not None:
        if not 2 <= n <= len(x):
            raise ValueError(f"n must be between 2 and {len(x)} for {name!r}, got {n}.")
        idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
        x, y = x[idx], y[idx]
    return Dataset(x.copy(), y.copy())


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the 'digits' data set ships with scikit-learn: pip install scikit-learn") from exc
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=4)
def _mnist1d(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError("the 'mnist1d' data set needs its generator: pip install mnist1d") from exc
    args = get_dataset_args()
    args.num_samples = n
    args.seed = seed
    args.train_split = 1.0  # the audit population is all of it; the plugin splits
    state = np.random.get_state()  # the generator reseeds numpy's global RNG; leave it as found
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_classes, dim = 4, 20
    centers = rng.normal(0, 1.0, size=(n_classes, dim))
    y = rng.integers(0, n_classes, size=n)
    x = centers[y] + rng.normal(0, 1.5, size=(n, dim))
    return x.astype(np.float32), y.astype(np.int64)
