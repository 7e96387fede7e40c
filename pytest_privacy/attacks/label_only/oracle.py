"""The per-point query ``Budget`` of the label-only attacks and the argument checks they share (the
labels oracle they query, ``QueryCounter``, is in :mod:`pytest_privacy.attacks.queries`).

Numpy only: nothing here imports torch (a torch tensor returned by ``predict`` is converted through
its own ``.detach()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...data import check_inputs, check_labels

__all__ = [
    "CHUNK_ELEMENTS",
    "Budget",
    "check_nonnegative_int",
    "check_xy",
    "resolve_max_radius",
]
# Elements per internal chunk of noised or perturbed copies (float32: 16 MiB), bounds memory.
CHUNK_ELEMENTS = 1 << 22


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
