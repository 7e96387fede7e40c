"""Metrics: scikit-learn conventions, exact intervals, and a gate whose error rates hold."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from pytest_privacy.results import Verdict
from pytest_privacy.stats.gates import auc_gate, gate
from pytest_privacy.stats.intervals import clopper_pearson, nonmembers_needed
from pytest_privacy.stats.roc import auc, roc_curve, tpr_at_fpr

labelled_scores = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-5, 5), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda m: 0 < sum(m) < len(m)),
    )
)


@given(labelled_scores)
def test_roc_matches_sklearn_with_ties(data):
    s, m = np.array(data[0], float), np.array(data[1])
    fpr, tpr, thr = roc_curve(s, m)
    f2, t2, th2 = skm.roc_curve(m, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    np.testing.assert_array_equal(thr, th2)
    assert auc(s, m) == pytest.approx(skm.roc_auc_score(m, s))


@given(labelled_scores)
def test_roc_is_monotone_from_origin_to_one(data):
    fpr, tpr, thr = roc_curve(*data)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(thr) < 0).all()


@given(labelled_scores, st.sampled_from([0.01, 0.1, 0.3]))
def test_invariant_to_strictly_increasing_transforms(data, f):
    s, m = np.array(data[0], float), data[1]
    t = s**3 + 5 * s  # strictly increasing and exact on small integers
    assert tpr_at_fpr(s, m, f) == tpr_at_fpr(t, m, f)
    assert auc(s, m) == auc(t, m)
    skip = {"threshold", "reason"}  # both name a score value, which the transform changes
    assert gate(s, m, fpr=f, max_tpr=0.5).model_dump(exclude=skip) == gate(t, m, fpr=f, max_tpr=0.5).model_dump(exclude=skip)


@given(labelled_scores, st.sampled_from([(0.01, 0.02), (0.01, 0.9), (0.1, 0.2), (0.5, 0.9)]))
def test_gate_bounds_contain_point_estimates(data, limits):
    f, limit = limits  # max_tpr above fpr: anything else is an error (see below)
    g = gate(*data, fpr=f, max_tpr=limit)
    assert g.tpr_low <= g.tpr <= g.tpr_high
    assert g.fpr_low <= g.fpr_achieved <= g.fpr_high
    assert g.tpr_at_fpr == tpr_at_fpr(*data, f)


def test_tpr_at_fpr_examples():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    m = np.array([1, 1, 0, 1, 0, 0])
    assert tpr_at_fpr(s, m, 0.01) == pytest.approx(2 / 3)
    assert tpr_at_fpr(s, m, 1 / 3) == 1.0
    # Ties are one threshold: a tie with a non-member cannot be split.
    assert tpr_at_fpr(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0]), 0.4) == 0.0


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 2995), (37, 898)])
def test_clopper_pearson_matches_scipy(k, n):
    low, high = clopper_pearson(k, n, 0.95)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert low == pytest.approx(ref.low, abs=1e-12)
    assert high == pytest.approx(ref.high, abs=1e-12)


def test_nonmembers_needed_is_the_smallest_n_that_certifies():
    for f in (1e-2, 1e-3):
        n = nonmembers_needed(f)
        assert clopper_pearson(0, n)[1] <= f < clopper_pearson(0, n - 1)[1]
    assert nonmembers_needed(1e-3) == 3688  # ln(0.025) / ln(0.999): about 3.7 / fpr two-sided


def _binormal(n, mu, rng):
    return np.r_[rng.normal(mu, 1, n), rng.normal(0, 1, n)], np.r_[np.ones(n, bool), np.zeros(n, bool)]


def test_tpr_at_fpr_known_answer_two_gaussians():
    rng = np.random.default_rng(0)
    n, mu, f = 200_000, 2.0, 1e-2
    s, m = _binormal(n, mu, rng)
    truth = stats.norm.cdf(stats.norm.ppf(f) + mu)
    # Delta method: TPR noise plus the FPR noise of the threshold times the ROC's slope there.
    slope = stats.norm.pdf(stats.norm.ppf(truth)) / stats.norm.pdf(stats.norm.ppf(f))
    sd = math.sqrt(truth * (1 - truth) / n + slope**2 * f * (1 - f) / n)
    assert abs(tpr_at_fpr(s, m, f) - truth) < 5 * sd
    assert abs(auc(s, m) - stats.norm.cdf(mu / math.sqrt(2))) < 5 * math.sqrt(1 / (3 * n))


@pytest.mark.parametrize("verdict", [Verdict.FAIL, Verdict.PASS])
def test_gate_errs_at_most_one_minus_confidence_at_the_limit(verdict):
    # A score model exactly at the limit: its true TPR at fpr equals max_tpr, so neither a proven
    # leak nor proven safety is true. Each may be declared in at most 5% of seeds (the proof in
    # gate's docstring); the allowance is Binomial(400, 0.05)'s 99.9% quantile.
    mu, f, n, runs = 1.5, 0.05, 1000, 400
    limit = float(stats.norm.cdf(stats.norm.ppf(f) + mu))
    rng = np.random.default_rng(1)
    hits = sum(gate(*_binormal(n, mu, rng), fpr=f, max_tpr=limit).verdict is verdict for _ in range(runs))
    assert hits <= stats.binom.ppf(0.999, runs, 0.05)


def test_gate_has_power_on_clear_cases():
    rng = np.random.default_rng(2)
    leaky = gate(*_binormal(2000, 3.0, rng), fpr=0.01, max_tpr=0.2)
    assert leaky.verdict is Verdict.FAIL and leaky.tpr_low > 0.2 and leaky.fpr_high <= 0.01
    safe = gate(*_binormal(2000, 0.0, rng), fpr=0.01, max_tpr=0.1)
    assert safe.verdict is Verdict.PASS and safe.tpr_high <= 0.1 and safe.fpr_low > 0.01


def test_coarse_scores_are_inconclusive_when_no_threshold_reaches_the_fpr():
    # A gap-style attack: score 1 for all members and 60% of non-members, else 0 (a memorising model
    # with 60% test accuracy: AUC 0.7). No threshold has FPR <= 1%, but breaking ties at random would
    # reach it with TPR ~ 1.7%: it must not PASS "safe" at max_tpr=0.015 (it once did).
    m = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    s = np.r_[np.ones(1000), np.arange(1000) < 600].astype(float)
    g = gate(s, m, fpr=0.01, max_tpr=0.015)
    assert g.verdict is Verdict.INCONCLUSIVE and "too coarse to reach FPR 0.01" in g.reason
    assert "TPR ~ 0.0167" in g.reason and g.auc == pytest.approx(0.7)
    # At an FPR its thresholds reach, the same scores are judged.
    assert gate(s, m, fpr=0.7, max_tpr=0.9).verdict is Verdict.FAIL


def test_too_few_nonmembers_is_inconclusive_and_says_how_many():
    rng = np.random.default_rng(3)
    g = gate(*_binormal(898, 4.0, rng), fpr=1e-3, max_tpr=0.01)
    assert g.verdict is Verdict.INCONCLUSIVE
    assert "needs >= 3,688 non-members" in g.reason and "you have 898" in g.reason


def test_inverted_scores_are_inconclusive_never_pass():
    rng = np.random.default_rng(4)
    s, m = _binormal(1000, 1.0, rng)
    g = gate(-s, m, fpr=0.01, max_tpr=0.5)
    assert g.verdict is Verdict.INCONCLUSIVE and "inverted" in g.reason and g.auc < 0.45


@pytest.mark.parametrize("fpr, max_tpr", [(0.01, 0.01), (0.2, 0.1)])
def test_max_tpr_at_or_below_chance_is_an_error_not_a_verdict(fpr, max_tpr):
    # On a model with no signal (AUC ~0.5), max_tpr < fpr used to report "leak proven".
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="random guessing already has TPR = FPR"):
        gate(*_binormal(1000, 0.0, rng), fpr=fpr, max_tpr=max_tpr)


@pytest.mark.parametrize(
    "scores,is_member,match",
    [
        ([0.1, np.nan, 0.3], [1, 0, 1], "NaN/inf"),
        ([0.1, np.inf], [1, 0], "NaN/inf"),
        ([0.1, 0.2], [1, 0, 1], "align"),
        ([0.1, 0.2], [1, 1], "needs both"),
        ([0.1, 0.2], [1, 2], "boolean"),
        ([[0.1, 0.2]], [[1, 0]], "1-D"),
    ],
)
def test_bad_scores_raise_clear_errors(scores, is_member, match):
    with pytest.raises(ValueError, match=match):
        gate(scores, is_member, fpr=0.01, max_tpr=0.1)


@pytest.mark.parametrize("kw", [{"fpr": 0.0, "max_tpr": 0.1}, {"fpr": 1.5, "max_tpr": 0.1}, {"fpr": 0.1, "max_tpr": -1}])
def test_bad_rates_raise(kw):
    with pytest.raises(ValueError, match="fpr|max_tpr"):
        gate([0.1, 0.2], [1, 0], **kw)


@pytest.mark.parametrize("shift, max_tpr", [(0.8, 0.1), (0.0, 0.08), (0.5, 0.1), (0.9, 0.3)])
def test_an_inconclusive_tpr_gate_says_how_many_points_would_decide_it(shift, max_tpr):
    """The number is exact for the ROC it saw: the same scores repeated that many times decide."""
    import re

    rng = np.random.default_rng(7)
    n = 300
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    scores = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
    g = gate(scores, member, fpr=0.05, max_tpr=max_tpr)
    assert g.verdict is Verdict.INCONCLUSIVE
    factor = float(re.search(r"\(([0-9.]+)x\) would decide it", g.reason).group(1))
    repeats = math.ceil(factor * 1.01)  # the reason rounds the factor to 2 decimals
    bigger = gate(np.tile(scores, repeats), np.tile(member, repeats), fpr=0.05, max_tpr=max_tpr)
    assert bigger.verdict is not Verdict.INCONCLUSIVE


def test_an_inconclusive_auc_gate_says_how_many_points_would_decide_it():
    import re

    rng = np.random.default_rng(8)
    n = 300
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    scores = np.r_[rng.normal(0.75, 1, n), rng.normal(0, 1, n)]
    g = auc_gate(scores, member, max_auc=0.66)
    assert g.verdict is Verdict.INCONCLUSIVE
    points = int(re.search(r"about ([0-9,]+) audit points", g.reason).group(1).replace(",", ""))
    repeats = math.ceil(points / (2 * n)) + 1
    assert auc_gate(np.tile(scores, repeats), np.tile(member, repeats), max_auc=0.66).verdict is Verdict.FAIL


def test_a_family_of_attacks_at_the_limit_fails_at_most_one_minus_confidence():
    """Three attacks, each exactly at the limit (independent scores): the family's false-FAIL rate
    stays within 5% after Holm (uncorrected, it would approach 1 - 0.95^3 = 14%)."""
    from pytest_privacy.stats.gates import fail_p_value, holm

    mu, f, n, runs = 1.5, 0.05, 1000, 200
    limit = float(stats.norm.cdf(stats.norm.ppf(f) + mu))
    rng = np.random.default_rng(5)
    family_fails = 0
    for _ in range(runs):
        p = [fail_p_value(*_binormal(n, mu, rng), fpr=f, max_tpr=limit) for _ in range(3)]
        family_fails += any(holm(p, 0.05))
    assert family_fails <= stats.binom.ppf(0.999, runs, 0.05)


def test_holm_steps_down_and_the_p_value_matches_the_gate():
    from pytest_privacy.stats.gates import fail_p_value, holm

    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]  # 0.01 <= 0.05/3; 0.03 > 0.05/2
    assert holm([0.01, 0.02, 0.04], 0.05) == [True, True, True]
    rng = np.random.default_rng(6)
    s, m = _binormal(1000, 2.0, rng)
    p = fail_p_value(s, m, fpr=0.05, max_tpr=0.3)
    # (1 - p is rounded to double precision: a hair of margin either side)
    assert gate(s, m, fpr=0.05, max_tpr=0.3, confidence=1 - p * 1.0001).verdict is Verdict.FAIL
    assert gate(s, m, fpr=0.05, max_tpr=0.3, confidence=1 - p / 1.01).verdict is not Verdict.FAIL


def test_an_inconclusive_gate_with_its_tpr_above_the_limit_says_why_it_is_not_a_fail():
    rng = np.random.default_rng(0)
    member = np.r_[np.ones(900, bool), np.zeros(900, bool)]
    scores = np.r_[rng.normal(1.2, 1, 900), rng.normal(0, 1, 900)]
    g = gate(scores, member, fpr=0.01, max_tpr=0.1)
    assert g.verdict.value == "inconclusive"
    assert "not a FAIL: where TPR >= " in g.reason and "the FPR is only bounded by <= " in g.reason
    assert "audit points" in g.reason and "audit='recipe'" in g.reason
