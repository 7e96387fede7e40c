"""Parameter and input checks shared by the statistics: one rule per kind of number, each a clear ValueError.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_confidence", "check_delta", "check_epsilon_claim", "check_gate_args", "check_margin", "check_max_auc", "check_max_epsilon", "check_rate", "check_score_values", "check_scores", "is_number"]


def check_score_values(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and membership as bool, arrays of any (matching) shape: one model's
    ``[N]`` or a recipe audit's ``[K, N]``; a ValueError that names the fix."""
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}.")
    s = s.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        at = f"indices {np.flatnonzero(bad)[:5].tolist()}" if s.ndim == 1 else f"model {first[0]}, point {first[1]}"
        raise ValueError(
            f"scores contain {int(bad.sum())} NaN/inf values (first at {at}); an attack "
            "that produced them overflowed or saw NaN inputs: fix the model outputs first."
        )
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(
                "is_member must be boolean (or 0/1); got values "
                f"{np.unique(m)[:5].tolist()}."
            )
        m = m.astype(bool)
    return s, m


def check_scores(scores: object, is_member: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``(scores, is_member)``; raise a ValueError that names the fix."""
    s = np.asarray(scores)
    m = np.asarray(is_member)
    if s.ndim != 1 or m.ndim != 1:
        raise ValueError(
            f"scores and is_member must be 1-D arrays, got shapes {s.shape} and {m.shape}; "
            "pass one score and one membership flag per audit point."
        )
    if s.shape != m.shape:
        raise ValueError(
            f"scores has {s.shape[0]} entries but is_member has {m.shape[0]}; they must align "
            "point by point."
        )
    s, m = check_score_values(s, m)
    n_pos = int(m.sum())
    if n_pos == 0 or n_pos == m.size:
        raise ValueError(
            f"is_member has {n_pos} members and {m.size - n_pos} non-members; a membership test "
            "needs both (hold out points the model never trained on)."
        )
    return s, m


def is_number(value: object) -> bool:
    # bool is an int to Python, but ``fpr=True`` is a mistake, not 1.0.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_rate(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1, or a ValueError naming ``name``."""
    if not (is_number(value) and 0.0 < float(value) < 1.0):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def check_confidence(confidence: object) -> float:
    """A confidence level strictly between 0 and 1 (e.g. 0.95), or a ValueError."""
    return check_rate("confidence", confidence)


def check_margin(margin: object) -> float:
    """A TPR difference tolerated by a comparison: a number in [0, 1), or a ValueError."""
    if not (is_number(margin) and 0.0 <= float(margin) < 1.0):  # type: ignore[arg-type]
        raise ValueError(f"margin must be a number in [0, 1), got {margin!r}.")
    return float(margin)  # type: ignore[arg-type]


def check_max_auc(max_auc: object) -> float:
    """An AUC limit: a number in [0.5, 1] (0.5 is chance), or a ValueError."""
    if not (is_number(max_auc) and 0.5 <= float(max_auc) <= 1.0):  # type: ignore[arg-type]
        raise ValueError(f"max_auc must be a number in [0.5, 1] (0.5 is chance), got {max_auc!r}.")
    return float(max_auc)  # type: ignore[arg-type]


def check_max_epsilon(max_epsilon: object) -> float:
    """An epsilon limit: a finite number >= 0 (an infinite limit is a gate that cannot fail), or a ValueError."""
    if not (is_number(max_epsilon) and 0 <= float(max_epsilon) < math.inf):  # type: ignore[arg-type]
        raise ValueError(f"max_epsilon must be a finite number >= 0, got {max_epsilon!r}.")
    return float(max_epsilon)  # type: ignore[arg-type]


def check_epsilon_claim(epsilon: object) -> float:
    """The epsilon of a DP claim under audit: a finite number > 0 (an infinite epsilon claims
    nothing, so no audit can refute it), or a ValueError."""
    if not (is_number(epsilon) and 0 < float(epsilon) < math.inf):  # type: ignore[arg-type]
        raise ValueError(
            f"epsilon must be a finite number > 0 (the epsilon of the claim under audit), got {epsilon!r}."
        )
    return float(epsilon)  # type: ignore[arg-type]


def check_delta(delta: object) -> float:
    """The delta of an (epsilon, delta) guarantee: a number in [0, 1), or a ValueError."""
    if not (is_number(delta) and 0.0 <= float(delta) < 1.0):  # type: ignore[arg-type]
        raise ValueError(
            f"delta must be a number in [0, 1) (the delta of the (epsilon, delta) guarantee under "
            f"test; use 0 for pure DP), got {delta!r}."
        )
    return float(delta)  # type: ignore[arg-type]


def check_gate_args(fpr: object, max_tpr: object, confidence: object) -> tuple[float, float, float]:
    """The arguments of a TPR-at-FPR gate, checked before any work is done.

    ``max_tpr`` must exceed ``fpr``: guessing at random already reaches TPR = FPR, so a limit at or
    below it would call a model with no signal a proven leak.
    """
    fpr_f = check_rate("fpr", fpr)
    if not (is_number(max_tpr) and 0.0 <= float(max_tpr) <= 1.0):  # type: ignore[arg-type]
        raise ValueError(f"max_tpr must be a number in [0, 1], got {max_tpr!r}.")
    if float(max_tpr) <= fpr_f:  # type: ignore[arg-type]
        raise ValueError(
            f"max_tpr={max_tpr!r} <= fpr={fpr!r}: random guessing already has TPR = FPR, so this limit "
            "would call a model with no signal a leak; set max_tpr above fpr (e.g. fpr=1e-3, max_tpr=0.01)."
        )
    return fpr_f, float(max_tpr), check_confidence(confidence)  # type: ignore[arg-type]
