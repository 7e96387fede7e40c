"""The query set: each audit point as the original input plus its augmentations.

LiRA queries the target and every reference on the *same* augmented copies, so one function builds
them for everyone; training draws random views of the same kinds (``engine/views.py``). Numpy only.

- ``shift``: one-pixel translations along each spatial axis, zero fill;
- ``crop``: random crops of the input reflect-padded by 4 pixels (translations up to 4 pixels with
  reflected borders) in training; the query set holds the translations by 2 pixels along each axis;
- ``flip``: a horizontal flip (images only), in training with probability 1/2; the query set holds
  every other query flipped too;
- ``noise``: Gaussian noise (0.1 of the data's standard deviation) added in training, for signals
  and tabular data; it adds no query.

Input layout decides the spatial axes: ``[N, L]`` is a 1-D signal, ``[N, H, W]`` a grayscale image
and ``[N, C, H, W]`` a channels-first image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "AUGMENTATIONS", "CROP_PAD", "CROP_QUERY", "check_augmentations", "make_queries", "reflect_shift", "shift",
    "spatial_axes",
]

AUGMENTATIONS = ("shift", "crop", "flip", "noise")
CROP_PAD = 4  # training crops: reflect-pad 4, then crop back (the LiRA paper's CIFAR recipe)
CROP_QUERY = 2  # the query set's crop translations


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
    if "shift" in augmentations and "crop" in augmentations:
        raise ValueError("choose 'shift' (one-pixel moves) or 'crop' (up to 4 pixels), not both.")
    if [a for a in augmentations if a != "noise"] and not spatial_axes(len(shape)):
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


def reflect_shift(x: np.ndarray, axis: int, step: int) -> np.ndarray:
    """Translate by ``step`` along ``axis`` with reflected borders: the crop at offset ``step`` of
    the input reflect-padded by ``|step|`` (what a training crop at that offset sees)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (abs(step), abs(step))
    padded = np.pad(x, pad, mode="reflect")
    index = [slice(None)] * x.ndim
    index[axis] = slice(abs(step) - step, abs(step) - step + x.shape[axis])
    return padded[tuple(index)]


def make_queries(x: np.ndarray, augmentations: Sequence[str] = ()) -> np.ndarray:
    """Return ``[N, A, *example_shape]``: the original first, then translations along each spatial
    axis (one pixel with zero fill for ``shift``, 2 pixels with reflected borders for ``crop``), the
    whole set repeated horizontally flipped (``flip``); ``noise`` adds no query."""
    x = np.asarray(x)
    _check(x.shape[1:], augmentations)
    views = [x]
    if "shift" in augmentations:
        for axis in spatial_axes(x.ndim - 1):
            views += [shift(x, axis + 1, +1), shift(x, axis + 1, -1)]
    if "crop" in augmentations:
        for axis in spatial_axes(x.ndim - 1):
            views += [reflect_shift(x, axis + 1, +CROP_QUERY), reflect_shift(x, axis + 1, -CROP_QUERY)]
    if "flip" in augmentations:
        views += [np.flip(v, axis=-1) for v in views]
    return np.stack(views, axis=1)
