"""The augmentation attack (Choquette-Choo et al. 2021): members stay correctly classified under
more translations and rotations than non-members. The score is the fraction of augmented copies the
target still classifies correctly; :mod:`.augmentation_trained` learns a weighting of the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from ...data import check_inputs
from ...data.augmentations import shift, spatial_axes
from ..queries import LabelQuery, Predict, QueryCounter, as_counter
from ..registry import Attack, register_attack
from .oracle import check_nonnegative_int, check_xy

__all__ = ["augmentation_bits", "augmentation_scores", "augmented_views", "n_augmentations"]


def _check_augmentations(example_shape: tuple[int, ...], d: int, r: int) -> tuple[int, int, tuple[int, ...]]:
    """Validated ``(d, r, spatial axes)`` for examples of ``example_shape``."""
    d = check_nonnegative_int("d", d)
    r = check_nonnegative_int("r", r)
    axes = spatial_axes(len(example_shape))
    if not axes:
        raise ValueError(
            f"augmentations need [N, L], [N, H, W] or [N, C, H, W] inputs, got example shape {example_shape}."
        )
    if r and len(axes) < 2:
        raise ValueError(
            "rotations need images [N, H, W] or [N, C, H, W]; 1-D signals [N, L] support "
            "translations only: pass r=0."
        )
    return d, r, axes


def n_augmentations(example_shape: tuple[int, ...], *, d: int = 1, r: int = 0) -> int:
    """Queries per point Q of :func:`augmentation_bits`: ``1 + 2 * d * n_spatial_axes + 2 * r``
    (``4d + 1 + 2r`` for images, ``2d + 1`` for 1-D signals)."""
    d, r, axes = _check_augmentations(tuple(example_shape), d, r)
    return 1 + 2 * d * len(axes) + 2 * r


def _augmented_views(x: np.ndarray, d: int, r: int, axes: tuple[int, ...]) -> Iterator[np.ndarray]:
    """The original, then for each spatial axis shifts by +1, -1, ..., +d, -d (zero fill), then
    rotations by the nonzero angles of ``linspace(-r, r, 2r + 1)`` degrees."""
    yield x
    for axis in axes:
        for step in range(1, d + 1):
            yield shift(x, axis + 1, step)
            yield shift(x, axis + 1, -step)
    for angle in np.linspace(-r, r, 2 * r + 1):
        if angle != 0:
            yield ndimage.rotate(x, float(angle), axes=(axes[0] + 1, axes[1] + 1), reshape=False, order=1)


def augmented_views(x: np.ndarray, *, d: int = 1, r: int = 0) -> list[np.ndarray]:
    """The Q augmented copies of ``x`` that :func:`augmentation_bits` queries, in its column order."""
    xa = check_inputs(x)
    d, r, axes = _check_augmentations(xa.shape[1:], d, r)
    return list(_augmented_views(xa, d, r, axes))


def augmentation_bits(
    predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray, *, d: int = 1, r: int = 0,
    views: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Correctness of each augmented copy of each point, ``bool [N, Q]``.

    Copies, in this order (column 0 is the original): translations along one spatial axis at a time
    by ``1..d`` pixels in each direction, zero fill (``4d`` for images, ``2d`` for 1-D signals), then
    for images and ``r > 0`` rotations by ``linspace(-r, r, 2r + 1)`` degrees except 0
    (``scipy.ndimage.rotate``, bilinear, same size, zero fill). ``Q = n_augmentations(...)``; with
    ``d=1, r=0`` the copies are exactly ``make_queries(x, ["shift"])``.

    Note: Choquette-Choo et al. translate by ``(i, j)`` with ``|i| + |j| = d``; this uses axis-aligned
    shifts up to ``d`` (the same count, ``4d + 1``; identical for ``d = 1``).

    ``views``: the copies, when the caller already built them with ``augmented_views(x, d=d, r=r)``
    (building rotations is the expensive part).
    """
    xa, ya = check_xy(x, y)
    counter = as_counter(predict)
    views = augmented_views(xa, d=d, r=r) if views is None else views
    return np.stack([counter(view) == ya for view in views], axis=1)


def augmentation_scores(
    predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray, *, d: int = 1, r: int = 0
) -> np.ndarray:
    """Fraction of the augmented copies of :func:`augmentation_bits` classified correctly
    (float64 [N]): the untrained ("threshold") augmentation attack."""
    return augmentation_bits(predict, x, y, d=d, r=r).mean(axis=1, dtype=np.float64)


def _augmentation(q: LabelQuery) -> tuple[np.ndarray, str]:
    d, r = int(q.options.get("d", 1)), int(q.options.get("r", 0))
    return augmentation_scores(q.oracle, q.x, q.y, d=d, r=r), f"translations d={d}, rotations r={r}"


register_attack(
    Attack(
        "label_only_augmentation", "label_only", False,
        "fraction of translated (and rotated) copies classified correctly", score_labels=_augmentation,
    )
)
