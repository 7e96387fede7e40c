"""The audit's data set, checked before anything trains."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..data import check_inputs, check_labels, row_ids

__all__ = ["PrivacyDataWarning", "as_dataset", "checked_dataset"]


class PrivacyDataWarning(UserWarning):
    """The data set was changed before the audit (duplicate rows were dropped)."""


def as_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accept ``(x, y)`` (a tuple, ``Dataset``, or anything with ``.x``/``.y``) and check it before
    anything trains: at least two classes; rows with identical inputs are dropped but the first,
    with a warning, since the split would otherwise put copies of a member among the non-members."""
    x, y, _ = checked_dataset(dataset)
    return x, y


def checked_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`as_dataset`, with the mask of the rows it kept (to align per-row data with them)."""
    if isinstance(dataset, dict):
        raise TypeError(
            f"privacy_dataset must return (x, y) arrays, got a dict with keys {sorted(dataset)[:5]}; "
            "return (data['x'], data['y']) or the like."
        )
    if hasattr(dataset, "x") and hasattr(dataset, "y"):
        x, y = dataset.x, dataset.y
    else:
        try:
            x, y = dataset
        except (TypeError, ValueError):
            raise TypeError(
                f"privacy_dataset must return (x, y) arrays, got {type(dataset).__name__}."
            ) from None
    x = check_inputs(x)
    y = check_labels(y, len(x))
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(
            f"privacy_dataset has one class only (label {int(classes[0])}); a classifier audit needs at least 2 classes."
        )
    ids = row_ids(x)
    first = np.zeros(len(x), dtype=bool)
    first[np.unique(ids, return_index=True)[1]] = True
    if not first.all():
        warnings.warn(
            f"privacy_dataset has {int((~first).sum())} rows whose inputs duplicate an earlier row; the audit "
            f"keeps the first of each ({int(first.sum())} of {len(x)} rows), so that no copy of a member is "
            "counted as a non-member.",
            PrivacyDataWarning, stacklevel=4,
        )
        x, y = x[first], y[first]
    return x, y, first
