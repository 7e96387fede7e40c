"""Does LiRA's Gaussian model fit? A per-audit check of the per-example IN and OUT score distributions
LiRA assumes (Carlini et al. 2022), from the reference models alone.

For each audit point and each of its sets (the references trained IN on it, and OUT), one value is
held out, the first reference of the set (chosen before any value is seen), and standardised by the
set's others: ``t = (x - mean_others) / (sd_others * sqrt(1 + 1/(n - 1)))``, which is exactly
Student-t with ``n - 2`` degrees of freedom when the set's values are i.i.d. normal, whatever their
mean and variance. Its t-distribution function ``u`` is then exactly uniform on [0, 1].

Over the points, two tests of the ``u``: Kolmogorov-Smirnov against the uniform (the shape), and a
one-sided binomial test of how many fall in the outer 1% (the tails, where heavy-tailed scores break
LiRA's low-FPR readings); the check's p-value is the smaller of the two, doubled (Bonferroni). The
points that violate the model most are those with the smallest per-point p-value
(``2 min(u, 1 - u)`` per set, the smaller set's doubled), Holm-adjusted over the points.

Known answers (``tests/statistical/test_gaussian_fit.py``): on Gaussian scores the check rejects at
most at its level over 200 seeds; on Student-t scores with 2 degrees of freedom it rejects nearly
always at 16 references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .checks import check_confidence

__all__ = ["GaussianFitCheck", "MIN_PER_SET", "gaussian_fit"]

MIN_PER_SET = 3  # a held-out value and two others to standardise it by
_TAIL = 0.01  # the outer share of the uniform the tail test counts
_NAMED = 5  # the most violating points named


@dataclass(frozen=True)
class GaussianFitCheck:
    """The check's p-value over ``n_points`` points, whether it rejects at ``1 - confidence``, and the
    points (audit indices) that violate the model most, those significant after Holm first."""

    p_value: float
    rejected: bool
    n_points: int
    worst: tuple[int, ...]
    worst_significant: int
    n_degenerate: int = 0  # points left out: a set whose other values are all equal (no spread to standardise by)


def _held_out_uniforms(phi: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``u [N]`` for one set per point (``members [M, N]`` marks the set's references)."""
    m, n = members.shape
    order = np.argsort(~members, axis=0, kind="stable")  # the set's references first, in model order
    first = order[0]  # the held-out reference of each point's set
    counts = members.sum(axis=0)
    values = np.where(members, phi, np.nan)
    values[first, np.arange(n)] = np.nan
    rest_mean = np.nanmean(values, axis=0)
    rest_sd = np.nanstd(values, axis=0, ddof=1)
    held = phi[first, np.arange(n)]
    with np.errstate(divide="ignore", invalid="ignore"):  # no spread: NaN, left out by the caller
        t = (held - rest_mean) / (rest_sd * np.sqrt(1.0 + 1.0 / (counts - 1)))
    return np.where(rest_sd > 0, stats.t.cdf(t, df=counts - 2), np.nan)


def gaussian_fit(phi: np.ndarray, keep: np.ndarray, *, confidence: float = 0.95) -> GaussianFitCheck | None:
    """Check the Gaussian model of the references' per-point statistic ``phi [M, N]`` (or ``[M, N, A]``,
    averaged over queries) split IN/OUT by ``keep [M, N]``; None when some point has fewer than
    ``MIN_PER_SET`` references in a set (nothing to check it with), or fewer than 2 points have spread
    in both sets. Points whose references agree exactly (saturated scores) are left out and counted."""
    check_confidence(confidence)
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim == 3:
        phi = phi.mean(axis=-1)
    keep = np.asarray(keep, dtype=bool)
    if phi.shape != keep.shape:
        raise ValueError(f"phi [M, N] and keep [M, N] must have one shape, got {phi.shape} and {keep.shape}.")
    if min(keep.sum(axis=0).min(), (~keep).sum(axis=0).min()) < MIN_PER_SET:
        return None
    u = np.stack([_held_out_uniforms(phi, keep), _held_out_uniforms(phi, ~keep)])  # [2, N]
    checked = np.flatnonzero(np.isfinite(u).all(axis=0))
    if checked.size < 2:
        return None
    u = u[:, checked]
    pooled = u.ravel()
    p_shape = stats.kstest(pooled, "uniform").pvalue
    in_tails = int(((pooled < _TAIL / 2) | (pooled > 1 - _TAIL / 2)).sum())
    p_tail = stats.binomtest(in_tails, pooled.size, _TAIL, alternative="greater").pvalue
    p_value = min(1.0, 2.0 * min(p_shape, p_tail))
    per_point = np.minimum(1.0, 2.0 * (2.0 * np.minimum(u, 1.0 - u)).min(axis=0))  # [N]
    order = np.argsort(per_point, kind="stable")
    holm = per_point[order] * (len(order) - np.arange(len(order)))  # step-down: significant while below alpha
    alpha = 1.0 - confidence
    significant = int(np.argmax(holm >= alpha)) if (holm >= alpha).any() else len(order)
    return GaussianFitCheck(
        float(p_value), bool(p_value < alpha), int(checked.size), tuple(int(checked[i]) for i in order[:_NAMED]),
        significant, int(phi.shape[1] - checked.size),
    )
