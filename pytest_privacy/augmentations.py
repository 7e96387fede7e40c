"""The query set: each audit point as the original input plus its augmentations.

LiRA queries the target and every reference on the *same* augmented copies, and the recipe trains
on them too, so one function builds them for everyone. Numpy only.

Input layout decides the spatial axes: ``[N, L]`` is a 1-D signal, ``[N, H, W]`` a grayscale image
and ``[N, C, H, W]`` a channels-first image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["AUGMENTATIONS", "check_augmentations", "make_queries", "shift", "spatial_axes"]

AUGMENTATIONS = ("shift", "flip")


def spatial_axes(ndim: int) -> tuple[int, ...]:
    """Axes of one example of ``ndim`` dimensions (no batch axis) that shifts move along."""
    return {1: (0,), 2: (0, 1), 3: (1, 2)}.get(ndim, ())


def check_augmentations(augmentations: Sequence[str]) -> None:
    """Raise a ValueError naming the choices if an augmentation is unknown."""
    unknown = [a for a in augmentations if a not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; choose from {AUGMENTATIONS}.")


def _check(shape: tuple[int, ...], augmentations: Sequence[str]) -> None:
    check_augmentations(augmentations)
    if augmentations and not spatial_axes(len(shape)):
        raise ValueError(
            f"augmentations need [N, L], [N, H, W] or [N, C, H, W] inputs, got example shape {shape}."
        )
    if "flip" in augmentations and len(shape) < 2:
        raise ValueError("'flip' is a horizontal image flip; 1-D signals only support 'shift'.")


def shift(x: np.ndarray, axis: int, step: int) -> np.ndarray:
    """Translate by ``step`` along ``axis`` (a batch axis comes first), filling with zeros."""
    out = np.roll(x, step, axis=axis)
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, step) if step > 0 else slice(step, None)
    out[tuple(index)] = 0
    return out


def make_queries(x: np.ndarray, augmentations: Sequence[str] = ()) -> np.ndarray:
    """Return ``[N, A, *example_shape]``: the original first, then one-pixel shifts along each
    spatial axis (``shift``), the whole set repeated horizontally flipped (``flip``)."""
    x = np.asarray(x)
    _check(x.shape[1:], augmentations)
    views = [x]
    if "shift" in augmentations:
        for axis in spatial_axes(x.ndim - 1):
            views += [shift(x, axis + 1, +1), shift(x, axis + 1, -1)]
    if "flip" in augmentations:
        views += [np.flip(v, axis=-1) for v in views]
    return np.stack(views, axis=1)
