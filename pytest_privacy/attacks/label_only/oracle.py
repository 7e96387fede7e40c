"""The labels oracle every label-only attack queries, its per-point query ``Budget``, and the argument
checks the attacks share.

Numpy only: nothing here imports torch (a torch tensor returned by ``predict`` is converted through
its own ``.detach()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data import check_inputs, check_labels

__all__ = [
    "CHUNK_ELEMENTS",
    "Budget",
    "Predict",
    "QueryCounter",
    "as_counter",
    "check_nonnegative_int",
    "check_xy",
    "resolve_max_radius",
]

Predict = Callable[[np.ndarray], Any]
# Elements per internal chunk of noised or perturbed copies (float32: 16 MiB), bounds memory.
CHUNK_ELEMENTS = 1 << 22


class QueryCounter:
    """A labels oracle that batches, validates and counts the queries sent to ``predict``.

    ``predict`` maps a float32 batch ``[B, *example_shape]`` to integer labels ``[B]``. If it returns
    a 2-D array ``[B, C]`` (``C >= 2`` scores, logits or probabilities) the label is its argmax over
    classes, so a scoring model can be audited as if it released labels only. Torch tensors are
    converted with ``.detach().cpu().numpy()``.

    ``queries`` is the number of examples sent so far (not the number of calls). Every label-only
    attack accepts a ``QueryCounter`` in place of a raw callable and adds its queries to it.
    """

    def __init__(self, predict: Predict, *, batch_size: int = 4096) -> None:
        if isinstance(predict, QueryCounter):
            raise TypeError("predict is already a QueryCounter; pass it to the attack directly.")
        if not callable(predict):
            raise TypeError(f"predict must be a callable x -> labels, got {type(predict).__name__}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.predict = predict
        self.batch_size = int(batch_size)
        self.queries = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Labels ``int64 [B]`` for the batch ``x [B, *example_shape]``, queried in chunks of at most
        ``batch_size`` examples."""
        x = np.asarray(x)
        x = x.astype(np.int64, copy=False) if x.dtype.kind in "iu" else x.astype(np.float32, copy=False)
        if x.ndim < 2:
            raise ValueError(
                f"a query must be a batch [B, *example_shape], got shape {x.shape}; "
                "add a leading batch axis (x[None]) for a single example."
            )
        out = np.empty(x.shape[0], dtype=np.int64)
        for start in range(0, x.shape[0], self.batch_size):
            batch = np.ascontiguousarray(x[start : start + self.batch_size])
            raw = self.predict(batch)
            self.queries += batch.shape[0]
            out[start : start + batch.shape[0]] = _labels(raw, batch.shape[0])
        return out

    def __repr__(self) -> str:
        return f"QueryCounter({self.predict!r}, batch_size={self.batch_size}, queries={self.queries})"


def _labels(raw: Any, n: int) -> np.ndarray:
    """Validate one batch of oracle output and return ``int64 [n]`` labels."""
    if hasattr(raw, "detach"):  # a torch tensor, without importing torch
        raw = raw.detach().cpu().numpy()
    out = np.asarray(raw)
    if out.dtype == np.bool_:
        out = out.astype(np.int64)
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise ValueError(f"predict returned dtype {out.dtype}; it must return integer class labels.")
    if np.issubdtype(out.dtype, np.floating) and np.isnan(out).any():
        raise ValueError(
            "predict returned NaN; the model produced NaN outputs on these inputs: fix the model "
            "(or its input scaling) before auditing it."
        )
    if out.ndim == 2 and out.shape[0] == n and out.shape[1] >= 2:
        out = out.argmax(axis=1)
    if out.shape != (n,):
        raise ValueError(
            f"predict returned shape {out.shape} for a batch of {n} examples; it must return one "
            f"integer label per example, shape ({n},), or scores [{n}, C] with C >= 2 (their argmax "
            "is taken)."
        )
    # Float labels are accepted only when they are whole numbers: a float column is more often one
    # class's probability, which must not be silently truncated into a label.
    if np.issubdtype(out.dtype, np.floating) and (not np.isfinite(out).all() or (out != np.round(out)).any()):
        raise ValueError(
            "predict returned non-integer labels; return class indices (e.g. logits.argmax(1)), "
            "not probabilities of one class."
        )
    return out.astype(np.int64)


def as_counter(predict: Predict | QueryCounter) -> QueryCounter:
    """``predict`` itself if it already counts queries, else a new :class:`QueryCounter` around it
    (so a caller's counter keeps accumulating across attacks)."""
    return predict if isinstance(predict, QueryCounter) else QueryCounter(predict)


def check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate audit inputs and labels exactly as :class:`~pytest_privacy.data.MembershipData` does:
    float32 ``x [N, *example_shape]`` and int64 ``y [N]``."""
    xa = check_inputs(x)
    return xa, check_labels(y, xa.shape[0])


def check_nonnegative_int(name: str, value: object) -> int:
    """``value`` as an ``int``, or a ``ValueError`` naming the argument ``name`` if it is not a
    non-negative integer (bools are rejected: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(value)


def resolve_max_radius(x: np.ndarray, max_radius: float | None) -> float:
    """``max_radius``, or by default the diameter of the data's bounding box:
    ``sqrt(example size) * (x.max() - x.min())``. Boundary distances are capped at it."""
    if max_radius is not None:
        if not max_radius > 0 or not math.isfinite(max_radius):
            raise ValueError(f"max_radius must be a positive finite number, got {max_radius!r}.")
        return float(max_radius)
    span = float(x.max() - x.min()) if x.size else 0.0
    if not span > 0:
        raise ValueError("x has zero range, so there is no default max_radius; pass max_radius=.")
    return math.sqrt(x[0].size) * span


@dataclass(eq=False)  # `spent` is an array: compare budgets by identity
class Budget:
    """Queries allowed and spent per audit point: at most ``max_queries`` for each of ``n_points``.

    An iterative attack asks :meth:`affording` which points can still pay for a whole step before
    taking it, and :meth:`charge` records what each point's queries cost, so a point never spends more
    than ``max_queries`` and the total stays at most ``n_points * max_queries``. Charging beyond the
    allowance raises: it would be a bug in the attack, not a property of the model.
    """

    max_queries: int
    n_points: int
    spent: np.ndarray = field(init=False, repr=False)  # int64 [n_points]

    def __post_init__(self) -> None:
        self.max_queries = check_nonnegative_int("max_queries", self.max_queries)
        self.n_points = check_nonnegative_int("n_points", self.n_points)
        self.spent = np.zeros(self.n_points, dtype=np.int64)

    def remaining(self, idx: np.ndarray) -> np.ndarray:
        """Queries points ``idx`` may still spend (int64, same shape as ``idx``)."""
        return self.max_queries - self.spent[idx]

    def can_afford(self, idx: np.ndarray, k: int) -> np.ndarray:
        """Which of the points ``idx`` can pay ``k`` more queries each (bool, same shape as ``idx``)."""
        return self.remaining(idx) >= k

    def affording(self, idx: np.ndarray, k: int) -> np.ndarray:
        """The points of ``idx`` that can pay ``k`` more queries each, in their order."""
        return idx[self.can_afford(idx, k)]

    def charge(self, idx: np.ndarray, k: int = 1) -> None:
        """Record ``k`` queries spent by each point of ``idx`` (a point listed twice pays twice)."""
        idx = np.asarray(idx, dtype=np.int64)
        np.add.at(self.spent, idx, k)
        if (self.spent[idx] > self.max_queries).any():
            np.subtract.at(self.spent, idx, k)  # leave the record as it was
            raise RuntimeError(f"a point spent more than its budget of {self.max_queries} queries.")

    @property
    def total(self) -> int:
        """Queries spent by all points together."""
        return int(self.spent.sum())
