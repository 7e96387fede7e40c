"""The shapes32 example data set: its contract, its determinism, its speed, and that the class is
in the shapes, not in the colours. No training."""

import hashlib
import subprocess
import sys
import time

import numpy as np
import pytest

from pytest_privacy import datasets, load_example_dataset
from pytest_privacy.datasets import EXAMPLE_DATASETS, SHAPES32_CLASSES


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()


def _fresh(n: int, seed: int = 0):
    datasets._shapes32.cache_clear()  # generate again, not from the cache
    return load_example_dataset("shapes32", n=n, seed=seed)


def test_contract_shape_dtype_and_standardised_values():
    assert "shapes32" in EXAMPLE_DATASETS and len(SHAPES32_CLASSES) == 10
    x, y = load_example_dataset("shapes32", n=2000)
    assert x.shape == (2000, 3, 32, 32) and x.dtype == np.float32
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.isfinite(x).all()
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    assert np.all(np.abs(mean) < 0.1), mean
    assert np.all(np.abs(std - 1) < 0.1), std
    # Images differ from each other, and inside each image pixels vary (a shape on a background).
    assert x.std(axis=(1, 2, 3)).min() > 0.3
    assert len(np.unique(x[:, 0, 16, 16])) == 2000


def test_default_size_is_10000():
    x, y = load_example_dataset("shapes32")
    assert x.shape == (10000, 3, 32, 32) and y.shape == (10000,)


@pytest.mark.parametrize("n", [10, 1000, 1005, 37])
def test_every_class_present_and_balanced(n):
    _, y = load_example_dataset("shapes32", n=n)
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and y.min() == 0
    assert counts.min() == n // 10 and counts.max() <= n // 10 + 1 and counts.sum() == n
    assert np.any(np.diff(y) < 0)  # shuffled, not in class order


def test_deterministic_and_returns_copies():
    x1, _ = _fresh(500, seed=3)
    x1[:] = 0  # the caller's copy; the cache must not see it
    x2, y2 = load_example_dataset("shapes32", n=500, seed=3)
    x3, y3 = _fresh(500, seed=3)
    assert np.array_equal(x2, x3) and np.array_equal(y2, y3)
    assert x2.std() > 0.5


def test_deterministic_across_processes_and_without_torch():
    x, y = _fresh(300, seed=7)
    code = (
        "import sys, hashlib; from pytest_privacy import load_example_dataset as L; "
        "x, y = L('shapes32', n=300, seed=7); "
        "print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [_digest(x, y), "False"]


def test_different_seeds_differ():
    x0, y0 = load_example_dataset("shapes32", n=200, seed=0)
    x1, y1 = load_example_dataset("shapes32", n=200, seed=1)
    assert not np.array_equal(y0, y1)
    assert np.abs(x0 - x1).mean() > 0.5


def test_generates_10000_images_in_under_5_seconds():
    start = time.perf_counter()
    _fresh(10000, seed=11)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("n", [0, 1, -5, 2.5, True, "100"])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="n must be an integer of at least 2 for 'shapes32'"):
        load_example_dataset("shapes32", n=n)


def test_smallest_n_and_numpy_integer_n():
    x, y = load_example_dataset("shapes32", n=np.int64(2))
    assert x.shape == (2, 3, 32, 32) and sorted(y.tolist()) == [0, 1]


def test_colour_alone_does_not_give_the_class_away():
    from sklearn.linear_model import LogisticRegression, RidgeClassifier

    x, y = load_example_dataset("shapes32", n=3000, seed=0)
    train, test = slice(0, 2000), slice(2000, None)
    colour = x.mean(axis=(2, 3))  # [N, 3] mean colour
    by_colour = LogisticRegression(max_iter=1000).fit(colour[train], y[train]).score(colour[test], y[test])
    # The same linear machinery on where the pixels depart from the image's own mean colour (the
    # shape's outline, whatever its colours) does far better: the class is in the geometry.
    where = np.abs(x - x.mean(axis=(2, 3), keepdims=True)).mean(axis=1).reshape(len(x), -1)
    by_shape = RidgeClassifier(alpha=1000.0).fit(where[train], y[train]).score(where[test], y[test])
    assert by_colour < 0.2, by_colour  # chance is 0.1
    assert by_shape > 0.3 and by_shape > by_colour + 0.15, (by_shape, by_colour)
