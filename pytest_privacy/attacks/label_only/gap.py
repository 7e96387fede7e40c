"""The gap attack (Yeom et al. 2018): member iff the target classifies the point correctly."""

from __future__ import annotations

import numpy as np

from ..queries import LabelQuery, Predict, QueryCounter, as_counter
from ..registry import Attack, register_attack
from .oracle import check_xy

__all__ = ["gap_scores"]


def gap_scores(predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gap attack (Yeom et al. 2018): 1.0 if ``x`` is classified as ``y``, else 0.0 (float64 [N]).

    The baseline every label-only attack must beat; one query per point.
    """
    xa, ya = check_xy(x, y)
    return (as_counter(predict)(xa) == ya).astype(np.float64)


def _gap(q: LabelQuery) -> tuple[np.ndarray, str]:
    return gap_scores(q.oracle, q.x, q.y), "correctness"


register_attack(
    Attack(
        "label_only_gap", "label_only", False, "member iff correctly classified (the baseline to beat)",
        score_labels=_gap,
    )
)
