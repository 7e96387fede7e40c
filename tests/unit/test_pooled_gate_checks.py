"""The pooled gate's input checks, its design effects and the consistency of what it reports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.results import Verdict
from pytest_privacy.stats.intervals import clopper_pearson
from pytest_privacy.stats.pooled import (
    MIN_EVENTS,
    pooled_design_effects,
    pooled_fail_p_value,
    pooled_gate,
)


def _draw(seed: int = 0, k: int = 6, n: int = 400, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a model effect, a point effect and a leak on a fifth of the points."""
    rng = np.random.default_rng(seed)
    member = rng.random((k, n)) < 0.5
    member[:, :2] = [True, False]  # every row has both
    leaky = rng.random(n) < 0.2
    s = rng.normal(0, 0.2, (k, 1)) + rng.normal(0, 0.5, (1, n)) + rng.normal(size=(k, n)) + member * leaky * shift
    return s, member


@pytest.mark.parametrize(
    "scores, member, match",
    [
        (np.zeros(10), np.r_[[True] * 5, [False] * 5], "2-D arrays"),
        (np.zeros((2, 10)), np.zeros((2, 9), bool), "same shape"),
        (np.zeros((1, 10)), np.r_[[True] * 5, [False] * 5][None], "K >= 2"),
        (np.zeros((2, 10)), np.r_[[[True] * 10], [[True] * 5 + [False] * 5]], r"model\(s\) \[0\].*balanced_keep"),
        (np.zeros((2, 4)), np.full((2, 4), 2), "boolean"),
        (np.full((2, 4), "a"), np.array([[1, 0, 1, 0]] * 2), "real numbers"),
    ],
)
def test_shape_and_membership_mistakes_are_named(scores, member, match):
    with pytest.raises(ValueError, match=match):
        pooled_gate(scores, member, fpr=0.01, max_tpr=0.05)


def test_non_finite_scores_are_located():
    s, m = _draw()
    s[3, 7] = np.nan
    with pytest.raises(ValueError, match="model 3, point 7"):
        pooled_gate(s, m, fpr=0.01, max_tpr=0.05)
    with pytest.raises(ValueError, match="model 3, point 7"):
        pooled_fail_p_value(s, m, fpr=0.01, max_tpr=0.05)


@pytest.mark.parametrize("kwargs", [{"fpr": 0.0, "max_tpr": 0.1}, {"fpr": 0.01, "max_tpr": 0.01}, {"fpr": 0.01, "max_tpr": 0.1, "confidence": 1.0}])
def test_gate_arguments_are_checked(kwargs):
    s, m = _draw()
    with pytest.raises(ValueError):
        pooled_gate(s, m, **kwargs)


def test_design_effects_are_the_two_way_cluster_robust_ratio():
    """Against the textbook formula at thresholds with enough events (no floor there)."""
    s, m = _draw(1)
    k, n = s.shape
    d = pooled_design_effects(s, m)
    c = d.counts
    small_k = k / (k - 1) * (stats.t.ppf(0.975, k - 1) / stats.norm.ppf(0.975)) ** 2
    for side, counts, total, deff in ((~m, c.fps, c.n_nonmembers, d.fpr), (m, c.tps, c.n_members, d.tpr)):
        ok = np.flatnonzero((counts >= MIN_EVENTS) & (total - counts >= MIN_EVENTS))
        for i in ok[:: max(1, len(ok) // 7)]:
            y = (s >= c.thresholds[i]) & side
            e = np.where(side, y - y.sum() / total, 0.0)
            v = small_k * (e.sum(1) ** 2).sum() + n / (n - 1) * (e.sum(0) ** 2).sum() - (e**2).sum()
            assert deff[i] == pytest.approx(max(1.0, v / (e**2).sum()), rel=1e-9)


def test_identical_trials_of_a_point_count_once():
    """Scores that depend on the point alone: each point's trials are one trial repeated, and the
    design effect of a tail rate is about the trials per point (here 8, half of 16 models)."""
    rng = np.random.default_rng(2)
    k, n = 16, 3000
    member = np.zeros((k, n), bool)
    for j in range(n):
        member[rng.permutation(k)[: k // 2], j] = True
    s = np.broadcast_to(rng.normal(size=n), (k, n)) + member * 1e-9  # ranks by point only
    d = pooled_design_effects(s, member)
    i = np.flatnonzero(d.counts.fps >= 800)[0]
    assert 6.5 < d.fpr[i] < 9.5


def test_the_report_agrees_with_the_verdict():
    for seed, shift, max_tpr in [(0, 3.0, 0.05), (1, 0.0, 0.2), (2, 0.5, 0.1)]:
        s, m = _draw(seed, k=10, n=600, shift=shift)
        g = pooled_gate(s, m, fpr=0.01, max_tpr=max_tpr)
        assert g.tpr_low <= g.tpr <= g.tpr_high and g.fpr_low <= g.fpr_achieved <= g.fpr_high
        assert g.n_members == m.sum() and g.n_nonmembers == (~m).sum()
        assert "cluster-aware bound over 10 models x 600 points" in g.reason
        if g.verdict is Verdict.FAIL:
            assert g.fpr_high <= 0.01 and g.tpr_low > max_tpr
        if g.verdict is Verdict.PASS:
            assert g.fpr_low > 0.01 and g.tpr_high <= max_tpr
    verdicts = {pooled_gate(*_draw(0, 10, 600, 3.0), fpr=0.01, max_tpr=0.05).verdict,
                pooled_gate(*_draw(1, 10, 600, 0.0), fpr=0.01, max_tpr=0.2).verdict}
    assert verdicts == {Verdict.FAIL, Verdict.PASS}


def test_bounds_are_never_narrower_than_independent_trials():
    """A design effect of at least 1: the pooled bounds contain the naive Clopper-Pearson ones."""
    s, m = _draw(3, k=10, n=600, shift=0.5)
    g = pooled_gate(s, m, fpr=0.01, max_tpr=0.2)
    low, high = clopper_pearson(round(g.tpr * g.n_members), g.n_members, 0.95)
    assert g.tpr_low <= low + 1e-12 and g.tpr_high >= high - 1e-12


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_fail_p_value_is_the_gate_s_own_decision(confidence):
    for seed in range(4):
        s, m = _draw(seed, k=10, n=600, shift=1.5)
        p = pooled_fail_p_value(s, m, fpr=0.01, max_tpr=0.1)
        fails = pooled_gate(s, m, fpr=0.01, max_tpr=0.1, confidence=confidence).verdict is Verdict.FAIL
        assert fails == (p <= 1 - confidence), (seed, p)


def test_inverted_and_coarse_scores_are_never_a_pass():
    s, m = _draw(4, k=8, n=1000, shift=4.0)
    g = pooled_gate(-s, m, fpr=0.01, max_tpr=0.5)
    assert g.verdict is Verdict.INCONCLUSIVE and "inverted" in g.reason
    assert pooled_fail_p_value(-s, m, fpr=0.01, max_tpr=0.5) == 1.0
    coarse = (s > 0).astype(float)
    g = pooled_gate(coarse, m, fpr=0.01, max_tpr=0.5)
    assert g.verdict is Verdict.INCONCLUSIVE and "too coarse" in g.reason


def test_reported_bounds_are_the_envelopes_of_the_per_threshold_bounds():
    """``tpr_low`` is the smallest lower bound at or below the threshold, ``fpr_high`` the largest
    upper bound at or above it (computed here by brute force from the design effects)."""
    s, m = _draw(5, k=10, n=800, shift=0.7)
    d = pooled_design_effects(s, m)
    c = d.counts
    for max_tpr in (0.05, 0.3):
        g = pooled_gate(s, m, fpr=0.01, max_tpr=max_tpr)
        at = int(np.flatnonzero(c.thresholds == g.threshold)[0])
        tp_at = at - 1 if g.verdict is Verdict.PASS else at
        tpr_low = clopper_pearson(c.tps / d.tpr, c.n_members / d.tpr)[0]
        fpr_low, fpr_high = clopper_pearson(c.fps / d.fpr, c.n_nonmembers / d.fpr)
        assert g.tpr_low == pytest.approx(tpr_low[tp_at:].min(), rel=1e-12)
        assert g.fpr_low == pytest.approx(fpr_low[at:].min(), rel=1e-12)
        assert g.fpr_high == pytest.approx(fpr_high[: at + 1].max(), rel=1e-12)
