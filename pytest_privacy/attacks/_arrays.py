"""Shape and value checks shared by the score attacks."""

from __future__ import annotations

import numpy as np

__all__ = ["as_keep", "as_labels", "as_nac", "as_reference_logits"]


def as_nac(x: object, lead: int, name: str) -> np.ndarray:
    """Finite float64 logits with an explicit query axis: ``lead`` leading axes, then points, A, C.

    A ``lead + 2``-axis input means one query per point (A = 1).
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == lead + 2:
        arr = arr[..., None, :]
    if arr.ndim != lead + 3:
        axes = "M, " * lead
        raise ValueError(
            f"{name} must have {lead + 3} axes ({axes}points, A, C) or {lead + 2} ({axes}points, C); "
            f"got shape {arr.shape}."
        )
    if arr.shape[-1] < 2:
        raise ValueError(f"{name} needs a class axis of >= 2 classes, got shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/inf values; attacks need finite logits (or "
            "log-probabilities): fix the model outputs, or clip log(0) to a large negative number."
        )
    return arr


def as_reference_logits(reference_logits: object, target: np.ndarray) -> np.ndarray:
    """Reference logits ``[M, *target.shape]`` (checked like :func:`as_nac`) for ``target [N, A, C]``."""
    refs = as_nac(reference_logits, 1, "reference_logits")
    if refs.shape[1:] != target.shape:
        raise ValueError(
            f"reference_logits {refs.shape} must be [M, *target_logits.shape] = "
            f"[M, {', '.join(map(str, target.shape))}]: same points, queries and classes."
        )
    return refs


def as_labels(labels: object, n_points: int, n_classes: int | None, name: str = "labels") -> np.ndarray:
    """Labels ``[n_points]`` as integer class indices in ``[0, n_classes)`` (any non-negative
    integers when ``n_classes`` is None)."""
    y = np.asarray(labels)
    if y.shape != (n_points,):
        raise ValueError(f"{name} must have shape ({n_points},), one label per point; got {y.shape}.")
    limit = "" if n_classes is None else f", {n_classes}"
    if y.size and (
        not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or (n_classes is not None and y.max() >= n_classes)
    ):
        raise ValueError(f"{name} must be integer class indices in [0{limit or ', C'}).")
    return y.astype(np.intp, copy=False)


def as_keep(keep: object, n_refs: int, n_points: int) -> np.ndarray:
    """``keep bool [M, N]`` (reference m trained on point n); None means no reference trained on any."""
    if keep is None:
        return np.zeros((n_refs, n_points), dtype=bool)
    k = np.asarray(keep)
    if k.dtype != np.bool_ or k.shape != (n_refs, n_points):
        raise ValueError(
            f"keep must be a bool array of shape ({n_refs}, {n_points}) (reference m trained on point n), "
            f"got {k.dtype} {k.shape}."
        )
    return k
