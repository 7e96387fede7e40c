"""ROC counting: the counts behind every curve and gate, and the curves and rates read from them.

Conventions follow scikit-learn's ``roc_curve``: a higher score means "more likely a member", a
point is predicted member when ``score >= threshold``, thresholds decrease, the first point is
(0, 0) at threshold ``+inf``, and tied scores form a single threshold.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .checks import check_rate, check_scores

__all__ = ["false_positives_allowed", "RocCounts", "auc", "operating_index", "roc_area", "roc_counts", "roc_curve", "tpr_at_fpr"]


class RocCounts(NamedTuple):
    """Cumulative counts at every distinct threshold (the counting primitive of every metric here)."""

    fps: np.ndarray  # false positives at each threshold, increasing
    tps: np.ndarray  # true positives at each threshold, increasing
    thresholds: np.ndarray  # decreasing, first is +inf

    @property
    def n_members(self) -> int:
        return int(self.tps[-1])  # the lowest threshold admits everyone

    @property
    def n_nonmembers(self) -> int:
        return int(self.fps[-1])


def roc_counts(scores: object, is_member: object) -> RocCounts:
    """Validated ``(scores, is_member)`` as false and true positives at every distinct threshold,
    thresholds decreasing from ``+inf`` (ties are one threshold)."""
    s, m = check_scores(scores, is_member)
    order = np.argsort(-s, kind="mergesort")
    s, m = s[order], m[order]
    # Last index of each run of equal scores: ties are one threshold.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(m)[last]
    fps = last + 1 - tps
    return RocCounts(fps=np.r_[0, fps], tps=np.r_[0, tps], thresholds=np.r_[np.inf, s[last]])


def roc_curve(scores: object, is_member: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve at every distinct score.

    Returns ``(fpr, tpr, thresholds)`` with decreasing thresholds, the first being ``+inf`` at
    the point (0, 0), like ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    c = roc_counts(scores, is_member)
    return c.fps / c.n_nonmembers, c.tps / c.n_members, c.thresholds


def false_positives_allowed(fpr: float, n_nonmembers: int) -> int:
    """The most false positives an operating point at ``fpr`` may have among ``n_nonmembers``: the
    largest ``k`` with ``k / n_nonmembers <= fpr`` as floating point compares it. The one cut every
    caller makes (the empirical operating point, ``tpr_at_fpr``, the paired comparison, the swap test),
    so that they agree at every FPR and size, ``0.57 * 100 = 56.99999999999999`` included."""
    k = int(math.floor(fpr * n_nonmembers))
    while (k + 1) / n_nonmembers <= fpr:
        k += 1
    while k > 0 and k / n_nonmembers > fpr:
        k -= 1
    return k


def tpr_at_fpr(scores: object, is_member: object, fpr: float) -> float:
    """Largest TPR over thresholds with at most :func:`false_positives_allowed` false positives
    (at most ``fpr`` of the non-members); 0.0 when there is none."""
    check_rate("fpr", fpr)
    c = roc_counts(scores, is_member)
    return float(c.tps[operating_index(c, fpr)] / c.n_members)


def auc(scores: object, is_member: object) -> float:
    """Area under the ROC curve (trapezoidal, i.e. the Mann-Whitney statistic with ties as 1/2)."""
    return roc_area(roc_counts(scores, is_member))


def operating_index(c: RocCounts, fpr: float) -> int:
    """The empirical operating point at ``fpr``: the index of the lowest threshold whose empirical
    FPR is at most ``fpr`` (index 0, the ``+inf`` threshold, always qualifies)."""
    return int(np.flatnonzero(c.fps <= false_positives_allowed(fpr, c.n_nonmembers))[-1])


def roc_area(c: RocCounts) -> float:
    """The ROC's area (trapezoids over every distinct threshold)."""
    return float(np.trapezoid(c.tps / c.n_members, c.fps / c.n_nonmembers))
