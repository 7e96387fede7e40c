"""Parameter and input checks shared by the statistics: one rule per kind of number, each a clear ValueError.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["check_number", "check_confidence", "check_delta", "check_epsilon_claim", "check_gate_args", "check_margin", "check_max_auc", "check_max_epsilon", "check_rate", "check_score_values", "check_scores", "is_number"]


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
    """A real number that is not a bool (``fpr=True`` is a mistake, not 1.0)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_number(name: str, value: object, interval: str, *, integer: bool = False, why: str = "") -> Any:
    """``value`` when it is a number (an integer when ``integer``; never a bool) in ``interval``,
    written as in mathematics (``"(0, 1)"``, ``"[0, 1)"``, ``"[1, inf)"``), as a float (an int); else a
    ValueError naming ``name``, the interval and ``why`` (what the number means). Every parameter
    check of the statistics is this one rule with its interval."""
    low_bracket, rest = interval[0], interval[1:-1]
    low_text, high_text = (part.strip() for part in rest.split(","))
    low, high = float(low_text), float(high_text)
    kind_ok = isinstance(value, numbers.Integral) if integer else True
    ok = is_number(value) and kind_ok and not math.isnan(float(value))  # type: ignore[arg-type]
    if ok:
        x = float(value)  # type: ignore[arg-type]
        ok = (x > low if low_bracket == "(" else x >= low) and (x < high if interval[-1] == ")" else x <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in {interval}{f' ({why})' if why else ''}, got {value!r}.")
    return int(value) if integer else float(value)  # type: ignore[arg-type]


def check_rate(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1, or a ValueError naming ``name``."""
    return check_number(name, value, "(0, 1)")


def check_confidence(confidence: object) -> float:
    """A confidence level strictly between 0 and 1 (e.g. 0.95), or a ValueError."""
    return check_rate("confidence", confidence)


def check_margin(margin: object) -> float:
    """A TPR difference tolerated by a comparison: a number in [0, 1), or a ValueError."""
    return check_number("margin", margin, "[0, 1)")


def check_max_auc(max_auc: object) -> float:
    """An AUC limit: a number in [0.5, 1] (0.5 is chance), or a ValueError."""
    return check_number("max_auc", max_auc, "[0.5, 1]", why="0.5 is chance")


def check_max_epsilon(max_epsilon: object) -> float:
    """An epsilon limit: a finite number >= 0 (an infinite limit is a gate that cannot fail), or a ValueError."""
    return check_number("max_epsilon", max_epsilon, "[0, inf)", why="an infinite limit is a gate that cannot fail")


def check_epsilon_claim(epsilon: object) -> float:
    """The epsilon of a DP claim under audit: a finite number > 0 (an infinite epsilon claims
    nothing, so no audit can refute it), or a ValueError."""
    return check_number("epsilon", epsilon, "(0, inf)", why="the epsilon of the claim under audit; an infinite one claims nothing")


def check_delta(delta: object) -> float:
    """The delta of an (epsilon, delta) guarantee: a number in [0, 1), or a ValueError."""
    return check_number(
        "delta", delta, "[0, 1)", why="the delta of the (epsilon, delta) guarantee under test; use 0 for pure DP"
    )


def check_gate_args(fpr: object, max_tpr: object, confidence: object) -> tuple[float, float, float]:
    """The arguments of a TPR-at-FPR gate, checked before any work is done.

    ``max_tpr`` must exceed ``fpr``: guessing at random already reaches TPR = FPR, so a limit at or
    below it would call a model with no signal a proven leak.
    """
    fpr_f = check_rate("fpr", fpr)
    max_tpr = check_number("max_tpr", max_tpr, "[0, 1]")
    if max_tpr <= fpr_f:
        raise ValueError(
            f"max_tpr={max_tpr!r} <= fpr={fpr!r}: random guessing already has TPR = FPR, so this limit "
            "would call a model with no signal a leak; set max_tpr above fpr (e.g. fpr=1e-3, max_tpr=0.01)."
        )
    return fpr_f, max_tpr, check_confidence(confidence)
