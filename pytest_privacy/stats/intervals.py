"""Exact binomial (Clopper-Pearson) intervals, the AUC's interval and the audit size a rate needs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from .checks import check_confidence, check_rate

__all__ = ["auc_confidence_interval", "clopper_pearson", "nonmembers_needed"]


def auc_confidence_interval(
    auc_value: float, n_members: int, n_nonmembers: int, confidence: float = 0.99
) -> tuple[float, float]:
    """Normal-approximation interval for an AUC (Hanley & McNeil 1982), clipped to [0, 1]."""
    a = auc_value
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (
        a * (1 - a) + (n_members - 1) * (q1 - a * a) + (n_nonmembers - 1) * (q2 - a * a)
    ) / (n_members * n_nonmembers)
    half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0))
    return max(0.0, a - half), min(1.0, a + half)


def clopper_pearson(
    k: int | np.ndarray, n: int | np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Two-sided exact (Clopper-Pearson) interval for a binomial proportion ``k / n``.

    ``low = Beta.ppf(a/2, k, n-k+1)`` (0 when k = 0), ``high = Beta.ppf(1-a/2, k+1, n-k)`` (1 when
    k = n), with ``a = 1 - confidence``. Vectorised over ``k`` and ``n``.
    """
    check_confidence(confidence)
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(k_arr < 0) or np.any(k_arr > n_arr) or np.any(n_arr <= 0):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}.")
    a = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k_arr == 0, 0.0, special.betaincinv(k_arr, n_arr - k_arr + 1, a / 2))
        high = np.where(
            k_arr == n_arr, 1.0, special.betaincinv(k_arr + 1, n_arr - k_arr, 1 - a / 2)
        )
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def nonmembers_needed(fpr: float, confidence: float = 0.95) -> int:
    """Fewest non-members with which zero false positives certify ``FPR <= fpr``.

    Solves ``clopper_pearson(0, n, confidence).high <= fpr``, i.e.
    ``n >= ln((1 - confidence) / 2) / ln(1 - fpr)`` (about ``3.7 / fpr`` at 95%).
    """
    check_rate("fpr", fpr)
    return math.ceil(math.log((1 - confidence) / 2) / math.log1p(-fpr) - 1e-9)
