"""Two score sets on the same points: the paired TPR comparison and the swap test.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..results import Verdict
from .checks import check_confidence, check_margin, check_rate, check_scores
from .roc import false_positives_allowed

__all__ = ["baseline_verdict", "PairedComparison", "SwapTest", "paired_tpr_comparison", "swap_test"]


class PairedComparison(NamedTuple):
    """TPRs of two score sets at their own ``fpr`` thresholds, compared on the same members."""

    tpr: float
    tpr_baseline: float
    diff: float
    diff_low: float
    diff_high: float
    p_value: float
    worse: bool
    n_members: int
    n_nonmembers: int


def paired_tpr_comparison(
    scores: object,
    baseline_scores: object,
    is_member: object,
    *,
    fpr: float,
    margin: float = 0.0,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Is ``scores``' TPR at ``fpr`` more than ``margin`` above ``baseline_scores``' on the same points?

    Each score set gets its own threshold, that of :func:`tpr_at_fpr` (a member counts as found when
    its score exceeds the ``floor(fpr * n) + 1``-th largest non-member score). Both thresholds are
    estimated from the same non-members, so their noise is part of the comparison: conditioning on
    them (a McNemar test on the members) raises false alarms far above the nominal rate. The
    interval for ``TPR - TPR_baseline`` is therefore a paired, stratified bootstrap percentile
    interval: ``n_bootstrap`` resamples of the members and of the non-members, the same for both
    score sets, thresholds re-estimated in each. ``worse`` when its lower end exceeds ``margin``
    (a one-sided test at ``(1 - confidence) / 2``); ``p_value`` is the share of resampled
    differences at or below ``margin``.
    """
    check_rate("fpr", fpr)
    margin = check_margin(margin)
    confidence = check_confidence(confidence)
    s_a, m = check_scores(scores, is_member)
    s_b, _ = check_scores(baseline_scores, m)
    pos = np.stack([s_a[m], s_b[m]])  # [2, n1]
    neg = np.stack([s_a[~m], s_b[~m]])  # [2, n0]
    n1, n0 = pos.shape[1], neg.shape[1]
    k = false_positives_allowed(fpr, n0)

    def tprs(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """TPR of both score sets for members ``p [2, B, n1]`` and non-members ``q [2, B, n0]``."""
        if k >= q.shape[-1]:
            return np.ones(p.shape[:2])
        cut = -np.partition(-q, k, axis=-1)[..., k]  # the (k+1)-th largest non-member score
        return (p > cut[..., None]).mean(axis=-1)

    point = tprs(pos[:, None], neg[:, None])[:, 0]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_bootstrap, 250):  # chunks bound memory to ~250 x (n1 + n0) indices
        b = min(250, n_bootstrap - start)
        i1, i0 = rng.integers(0, n1, size=(b, n1)), rng.integers(0, n0, size=(b, n0))
        t = tprs(pos[:, i1], neg[:, i0])
        diffs.append(t[0] - t[1])
    d = np.concatenate(diffs)
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return PairedComparison(
        tpr=float(point[0]), tpr_baseline=float(point[1]), diff=float(point[0] - point[1]),
        diff_low=float(low), diff_high=float(high), p_value=float((d <= margin).mean()),
        worse=bool(low > margin), n_members=n1, n_nonmembers=n0,
    )


class SwapTest(NamedTuple):
    """Two score sets on the same points: their TPRs at ``fpr``, the rise, and what a rise looks like
    when the two are exchangeable (see :func:`swap_test`)."""

    tpr: float
    tpr_baseline: float
    diff: float
    diff_low: float  # one-sided lower confidence bound of the rise
    p_value: float
    worse: bool
    n_points: int


def swap_test(
    scores: object, baseline_scores: object, is_member: object, *, fpr: float, margin: float = 0.0,
    confidence: float = 0.95, n_swaps: int = 2000, seed: int = 0,
) -> SwapTest:
    """Did ``scores``' TPR at ``fpr`` rise by more than ``margin`` over ``baseline_scores``' on the same
    audit points? A randomisation test conditional on the points.

    If both score sets come from the same procedure (the same model re-audited, or a retrained draw
    of the same recipe), each point's two scores are exchangeable: swapping them leaves the joint
    distribution unchanged. So the rise ``TPR - TPR_baseline`` (each at its own threshold, as in
    :func:`tpr_at_fpr`, re-estimated after every swap) is compared with its distribution over
    ``n_swaps`` random per-point swaps. This is exact under the null "no change" whatever the
    thresholds' noise, and, because the points are held fixed, far tighter than resampling them
    (:func:`paired_tpr_comparison` answers the population question for two different models).
    ``diff_low = diff - q``, ``q`` the ``confidence`` quantile of the swapped rises (a shift-model
    inversion); ``worse`` when ``diff_low > margin``; ``p_value`` the share of swapped rises at or
    above ``diff - margin``, counting the observed one (so it is never 0).
    """
    check_rate("fpr", fpr)
    margin = check_margin(margin)
    confidence = check_confidence(confidence)
    a, m = check_scores(scores, is_member)
    b, _ = check_scores(baseline_scores, m)
    n0 = int((~m).sum())
    k = false_positives_allowed(fpr, n0)  # the cut tpr_at_fpr makes

    def tpr(s: np.ndarray) -> np.ndarray:
        """TPR at fpr of each row of ``s [B, N]``."""
        neg = s[:, ~m]
        if k >= n0:
            return np.ones(len(s))
        cut = -np.partition(-neg, k, axis=-1)[:, k]
        return (s[:, m] > cut[:, None]).mean(axis=-1)

    point = tpr(np.stack([a, b]))
    diff = float(point[0] - point[1])
    rng = np.random.default_rng(seed)
    swapped = []
    for start in range(0, n_swaps, 250):  # chunks bound memory to ~250 x N scores
        flip = rng.random((min(250, n_swaps - start), a.size)) < 0.5
        swapped.append(tpr(np.where(flip, b, a)) - tpr(np.where(flip, a, b)))
    d = np.concatenate(swapped)
    low = diff - float(np.quantile(d, confidence))
    p_value = float((1 + (d >= diff - margin).sum()) / (1 + d.size))
    return SwapTest(
        tpr=float(point[0]), tpr_baseline=float(point[1]), diff=diff, diff_low=low, p_value=p_value,
        worse=bool(low > margin), n_points=int(a.size),
    )


def baseline_verdict(c: PairedComparison) -> tuple[Verdict, str]:
    """The verdict on "no more vulnerable than the baseline" from the paired comparison ``c``: FAIL
    when the model is proven more vulnerable beyond the margin, else PASS (never proven safer: the
    comparison only finds a model worse), with the test that decided in the reason."""
    test = f"paired bootstrap, share of resamples with difference <= margin: {c.p_value:.3g}"
    if c.worse:
        return Verdict.FAIL, f"more vulnerable than the baseline beyond noise ({test})"
    return Verdict.PASS, f"not proven more vulnerable ({test})"
