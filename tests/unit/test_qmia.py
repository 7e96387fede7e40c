"""QMIA (Bertran et al. 2023) against literal float64 loops (the hinge, the standardised score), and on a
known answer: when non-members' scores depend on the point (some points are easy, some noisy), the
regression recovers that dependence and finds members a global threshold cannot; when membership
does not matter, the gate on its scores FAILs at most at its error rate."""

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.attacks.qmia import (
    fit_score_distribution,
    hinge_scores,
    qmia_scores,
)
from pytest_privacy.results import Verdict
from pytest_privacy.stats.gates import gate
from pytest_privacy.stats.roc import auc


def test_the_hinge_and_the_score_are_the_formulas():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(20, 3, 5)), rng.integers(0, 5, 20)
    got = hinge_scores(logits, y)
    for i in range(20):
        per_query = [logits[i, a, y[i]] - max(logits[i, a, j] for j in range(5) if j != y[i]) for a in range(3)]
        assert got[i] == pytest.approx(sum(per_query) / 3, rel=1e-12)
    s, mu, sigma = rng.normal(size=7), rng.normal(size=7), rng.uniform(0.5, 2, 7)
    np.testing.assert_allclose(qmia_scores(s, mu, sigma), [(s[i] - mu[i]) / sigma[i] for i in range(7)], rtol=1e-12)


def _points(rng, n):
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] > 0).astype(int)
    mu, sigma = 2.0 * x[:, 1] + y, 0.3 + np.abs(x[:, 2])  # easy and hard points, quiet and noisy ones
    return x, y, mu, sigma


def test_the_fit_recovers_each_points_distribution_and_beats_a_global_threshold():
    rng = np.random.default_rng(1)
    x, y, mu, sigma = _points(rng, 3000)
    predict = fit_score_distribution(x, y, mu + sigma * rng.normal(size=3000), 2, seed=0)
    xa, ya, mua, sigmaa = _points(rng, 2000)
    member = np.arange(2000) % 2 == 0
    s = mua + sigmaa * rng.normal(size=2000) + 0.6 * sigmaa * member  # members sit higher in their own spread
    mu_hat, sigma_hat = predict(xa, ya)
    assert np.corrcoef(mu_hat, mua)[0, 1] > 0.95 and np.corrcoef(sigma_hat, sigmaa)[0, 1] > 0.7
    # The known answer: standardised by the true mu and sigma, members sit 0.6 higher, AUC Phi(0.6 / sqrt 2)
    # = 0.664; the fitted standardisation comes within sampling error (AUC sd ~0.013 at 1000 / 1000),
    # and a global threshold on the raw score is far from it.
    oracle = stats.norm.cdf(0.6 / np.sqrt(2))
    assert abs(auc(qmia_scores(s, mu_hat, sigma_hat), member) - oracle) < 0.04
    assert auc(s, member) < oracle - 0.05


def test_with_membership_that_does_not_matter_the_gate_fails_at_most_at_its_error_rate():
    rng = np.random.default_rng(2)
    x, y, mu, sigma = _points(rng, 1000)
    predict = fit_score_distribution(x, y, mu + sigma * rng.normal(size=1000), 2, seed=0)
    runs, fails = 300, 0
    for _ in range(runs):
        xa, ya, mua, sigmaa = _points(rng, 400)
        s = qmia_scores(mua + sigmaa * rng.normal(size=400), *predict(xa, ya))
        member = rng.permutation(400) < 200
        fails += gate(s, member, fpr=0.05, max_tpr=0.1).verdict is Verdict.FAIL
    assert fails <= stats.binom.ppf(0.999, runs, 0.05)


def test_scores_stay_finite_where_the_population_is_fit_almost_exactly_and_queries_lie_far_out():
    # A saturated model's scores the label alone predicts (residuals near 0), queried far outside the
    # population: the spread regression extrapolates to exp(-1000); without a floor, sigma was 0 and
    # the scores inf (found on the digits target of benchmarks/bench_qmia.py).
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 4)), np.arange(200) % 2
    predict = fit_score_distribution(x, y, 10.0 * y, 2, seed=0)
    mu, sigma = predict(1000 * x, y)
    assert np.all(sigma > 0) and np.isfinite(qmia_scores(10.0 * y, mu, sigma)).all()
