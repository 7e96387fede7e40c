"""An epsilon lower bound from membership scores (the hypothesis-testing reading of DP).
"""

from __future__ import annotations

import numpy as np

from .checks import check_confidence, check_delta
from .intervals import clopper_pearson
from .roc import RocCounts, roc_counts

__all__ = ["epsilon_bound", "epsilon_lower_bound"]


def epsilon_lower_bound(
    scores: object,
    is_member: object,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """A lower bound on the privacy parameter epsilon that holds with probability >= ``confidence``.

    An (epsilon, delta)-DP training algorithm makes every membership test obey
    ``TPR <= e^eps * FPR + delta`` and ``TNR <= e^eps * FNR + delta``. At every threshold of the
    ROC (predict member when ``score >= t``) we bound ``FPR`` above and ``TPR`` below with
    Clopper-Pearson and return ``max(0, ln((TPR_low - delta) / FPR_high),
    ln((TNR_low - delta) / FNR_high))`` over all thresholds, with ``TNR_low = 1 - FPR_high`` and
    ``FNR_high = 1 - TPR_low``. A term whose numerator is ``<= 0`` contributes nothing;
    ``FPR_high`` and ``FNR_high`` are never 0 (an exact upper bound is positive even at 0 errors).

    **Valid only for the randomized membership game**: member scores are independent draws from the
    score distribution of a point that was trained on and non-member scores from that of a point that
    was not, as when each canary is included with probability 1/2 in its own training run, or many
    runs are made. Many canaries scored in one training run are not independent and need one-run
    auditing (Steinke et al. 2023) instead. It bounds the epsilon of the whole algorithm from below,
    at the given ``delta``; it never certifies privacy.

    The argument (why the error rate holds): ``docs/statistics.md``, "The epsilon lower bound".
    """
    check_delta(delta)
    check_confidence(confidence)
    return epsilon_bound(roc_counts(scores, is_member), float(delta), float(confidence))


def epsilon_bound(c: RocCounts, delta: float, confidence: float) -> float:
    """:func:`epsilon_lower_bound` from counts already taken (the epsilon gate sorts the scores once)."""
    alpha = 1.0 - confidence
    # Both terms grow with TPR_low and shrink with FPR_high, so only the last threshold of each run
    # of equal false-positive counts (the most true positives for that count) can be the maximum.
    last = np.r_[np.diff(c.fps) > 0, True]
    fps, tps = c.fps[last], c.tps[last]
    # A two-sided interval at confidence 1 - alpha / n has alpha / (2 n) in each tail; one tail is used.
    _, fpr_high = clopper_pearson(fps, c.n_nonmembers, 1.0 - alpha / c.n_nonmembers)
    tpr_low, _ = clopper_pearson(tps, c.n_members, 1.0 - alpha / c.n_members)
    d = delta
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log(np.clip(tpr_low - d, 0.0, None)) - np.log(fpr_high)
        backward = np.log(np.clip(1.0 - fpr_high - d, 0.0, None)) - np.log1p(-tpr_low)
    terms = np.concatenate([forward, backward])
    terms = terms[np.isfinite(terms)]  # -inf: no evidence; +inf only from rounding, never claimed
    return max(0.0, float(terms.max())) if terms.size else 0.0
