"""The TPR-at-FPR gate's rule as levels: at every threshold of a ROC, the smallest ``1 - confidence``
at which it proves a leak, or proves safety.

Written once, for rates whose trials may be clustered: a rate is ``k`` events out of ``n`` trials with
a design effect ``deff`` at each threshold, bounded by Clopper-Pearson on the effective counts
``k / deff`` out of ``n / deff``. The pooled gate of a recipe audit estimates its design effects; the
single-model gate is the case ``deff = 1`` (independent trials), where the bounds are exact
Clopper-Pearson and the envelopes below change nothing (each bound is monotone in ``k``).

The argument: ``docs/statistics.md``, "The TPR-at-FPR gate" and "The pooled gate of a recipe audit".
Pure numpy/scipy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from .intervals import clopper_pearson

__all__ = ["Rate", "decide", "fail_levels", "pass_levels"]


class Rate(NamedTuple):
    """One rate's evidence: events at each threshold, trials, design effect at each threshold."""

    k: np.ndarray
    n: int
    deff: np.ndarray

    @classmethod
    def independent(cls, k: np.ndarray, n: int) -> Rate:
        """Independent trials: design effect 1 at every threshold."""
        return cls(k, n, np.ones(len(k)))

    def bounds(self, index: np.ndarray | slice, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """Clopper-Pearson on the effective counts ``k / deff`` out of ``n / deff`` at ``index``."""
        d = self.deff[index]
        low, high = clopper_pearson(self.k[index] / d, self.n / d, confidence)
        return np.atleast_1d(low), np.atleast_1d(high)


def upper_level(x: float, rate: Rate) -> np.ndarray:
    """Per threshold, the smallest ``alpha`` at which the two-sided bound's upper end is ``<= x``:
    ``Beta.ppf(1 - alpha/2, k + 1, n - k) <= x`` iff ``alpha >= 2 (1 - I_x(k + 1, n - k))``."""
    k, n = rate.k / rate.deff, rate.n / rate.deff
    with np.errstate(invalid="ignore", divide="ignore"):
        # 1 - I_x(a, b) = I_{1-x}(b, a): scipy's betaincc is 20x slower on these arrays.
        a = 2.0 * special.betainc(np.maximum(n - k, 1e-300), k + 1, 1.0 - x)
    return np.where(rate.k < rate.n, a, 0.0 if x >= 1.0 else np.inf)


def lower_level(x: float, rate: Rate) -> np.ndarray:
    """Per threshold, the smallest ``alpha`` above which the lower end is ``> x``:
    ``Beta.ppf(alpha/2, k, n - k + 1) > x`` iff ``alpha > 2 I_x(k, n - k + 1)``."""
    k, n = rate.k / rate.deff, rate.n / rate.deff
    with np.errstate(invalid="ignore", divide="ignore"):
        a = 2.0 * special.betainc(np.maximum(k, 1e-300), n - k + 1, x)
    return np.where(rate.k > 0, a, np.inf)


def prefix_max(a: np.ndarray) -> np.ndarray:
    """At each threshold, the worst over it and every higher threshold."""
    return np.maximum.accumulate(a)


def suffix_max(a: np.ndarray) -> np.ndarray:
    """At each threshold, the worst over it and every lower threshold."""
    return np.maximum.accumulate(a[::-1])[::-1]


def fail_levels(fp: Rate, tp: Rate, fpr: float, max_tpr: float) -> np.ndarray:
    """Per threshold, the smallest ``alpha`` at which it proves a leak: ``fpr_high <= fpr`` here and at
    every higher threshold, ``tpr_low > max_tpr`` here and at every lower one (the envelopes)."""
    a_fpr = prefix_max(upper_level(fpr, fp))
    a_tpr = suffix_max(lower_level(max_tpr, tp))
    return np.maximum(a_fpr, a_tpr * (1 + 1e-12))  # the TPR side is strict: just above its boundary


def pass_levels(fp: Rate, tp: Rate, fpr: float, max_tpr: float) -> tuple[np.ndarray, np.ndarray]:
    """For witness ``j >= 1`` (index ``j - 1`` of the arrays): alpha must exceed the first and reach the
    second for ``fpr_low > fpr`` at ``t_j`` and every lower threshold and ``tpr_high <= max_tpr`` for
    the members above ``t_j`` (at ``t_{j-1}``) and at every higher threshold."""
    return suffix_max(lower_level(fpr, fp))[1:], prefix_max(upper_level(max_tpr, tp))[:-1]


def decide(fp: Rate, tp: Rate, fpr: float, max_tpr: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds that prove a leak at level ``alpha`` and the PASS witnesses ``j >= 1`` (whose
    members above are those at ``j - 1``), each in increasing order."""
    fail_at = np.flatnonzero(fail_levels(fp, tp, fpr, max_tpr) <= alpha)
    a_fpr_low, a_tpr_high = pass_levels(fp, tp, fpr, max_tpr)
    pass_at = 1 + np.flatnonzero((a_fpr_low < alpha) & (a_tpr_high <= alpha))
    return fail_at, pass_at
