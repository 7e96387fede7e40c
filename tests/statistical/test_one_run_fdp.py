"""The f-DP one-run reading (Mahloujifar, Melis & Chaudhuri 2025) on mechanisms whose curve is known:
randomized response (exactly (eps, 0)-DP) and the Gaussian mechanism (exactly mu-GDP), over 200 seeds
each: the bound exceeds the truth at most at its error rate, it is tighter than the
Steinke-Nasr-Jagielski bound where the curve is Gaussian and no looser where it is (eps, 0)."""

import math

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.stats import one_run, one_run_fdp
from pytest_privacy.stats.one_run_fdp import (
    claim_curve,
    dp_inverse_blowup,
    gdp_delta,
    gdp_epsilon,
    gdp_inverse_blowup,
    one_run_fdp_audit,
    rejects,
)

SEEDS = 200
M = 1000
# 95% confidence: the bound may exceed the truth in 5% of seeds; the allowance is the 99.9% quantile.
ALLOWED = stats.binom.ppf(0.999, SEEDS, 0.05)

def _randomized_response(rng, eps, m=M):
    included = rng.random(m) < 0.5
    says_in = np.where(rng.random(m) < 1 / (1 + math.exp(-eps)), included, ~included)
    return says_in + rng.random(m) * 0.01, included  # ties broken at random, independent of membership

def _gaussian(rng, mu, m=M):
    included = rng.random(m) < 0.5
    return rng.normal(mu * included, 1.0), included

@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_the_dp_curve_holds_on_randomized_response_and_matches_the_older_bound(eps):
    """Randomized response is exactly (eps, 0)-DP, the worst case of that curve: the f-DP bound exceeds
    eps in at most the allowance of 200 seeds, and within 0.01 of the Steinke-Nasr-Jagielski bound on
    the same guesses (measured 0.004 below it: the recursion's one-step relaxation), which is why an
    (eps, delta) claim stays decided by that bound."""
    rng = np.random.default_rng(7)
    fdp, snj = [], []
    for _ in range(SEEDS):
        scores, included = _randomized_response(rng, eps)
        fdp.append(one_run_fdp_audit(scores, included, delta=0.0).epsilon_low)
        snj.append(one_run.one_run_audit(scores, included, delta=0.0).epsilon_low)
    fdp, snj = np.array(fdp), np.array(snj)
    assert (fdp > eps).sum() <= ALLOWED
    assert np.median(fdp) > 0.5 * eps  # it finds the leak, not just stays valid
    assert abs(np.median(fdp) - np.median(snj)) < 0.01

@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_the_gaussian_curve_holds_on_the_gaussian_mechanism_and_is_tighter(mu):
    """Scores N(mu * included, 1) are exactly mu-GDP per canary: the mu bound exceeds mu in at most the
    allowance of 200 seeds, and the epsilon it means at delta 1e-5 is larger (tighter) than the
    Steinke-Nasr-Jagielski bound on the same canaries in the median."""
    rng = np.random.default_rng(11)
    mus, gdp_eps, snj = [], [], []
    for _ in range(SEEDS):
        scores, included = _gaussian(rng, mu)
        a = one_run_fdp_audit(scores, included, delta=1e-5)
        mus.append(a.mu_low)
        gdp_eps.append(gdp_epsilon(a.mu_low, 1e-5))
        snj.append(one_run.one_run_audit(scores, included, delta=1e-5).epsilon_low)
    mus = np.array(mus)
    assert (mus > mu).sum() <= ALLOWED
    assert np.median(mus) > 0.3 * mu
    assert np.median(gdp_eps) > 1.1 * np.median(snj)

def test_no_leak_proves_nothing():
    """Membership independent of the scores: the bounds stay near 0 (exceed 0 at most at the error rate)."""
    rng = np.random.default_rng(3)
    positive = sum(one_run_fdp_audit(rng.random(M), rng.random(M) < 0.5, delta=1e-5).mu_low > 0 for _ in range(100))
    assert positive <= stats.binom.ppf(0.999, 100, 0.05)

def test_the_curves_are_what_they_say():
    """The inverse blow-ups against their definitions: the (eps, delta) curve's pieces and GDP's
    closed form; a test that rejects a curve rejects every stronger one and none weaker."""
    g = dp_inverse_blowup(1.0, 0.01)
    for y in [0.0, 0.005, 0.1, 0.5, 0.9, 0.999, 1.0]:
        expected = max(0.0, (y - 0.01) / math.e, 1 - 0.01 - math.e * (1 - y))
        assert g(y) == pytest.approx(expected, abs=1e-15)
    h = gdp_inverse_blowup(1.5)
    for y in [0.01, 0.3, 0.8]:
        assert h(y) == pytest.approx(stats.norm.cdf(stats.norm.ppf(y) - 1.5), rel=1e-12)
    assert gdp_delta(1.0, gdp_epsilon(1.0, 1e-5)) == pytest.approx(1e-5, rel=1e-6)
    m, k, level = 1000, 100, 0.0125
    c_star = next(c for c in range(k + 1) if rejects(m, k, c, gdp_inverse_blowup(1.0), level))
    assert all(rejects(m, k, c, gdp_inverse_blowup(1.0), level) for c in range(c_star, k + 1))
    assert rejects(m, k, c_star, gdp_inverse_blowup(0.8), level)  # a stronger claim is rejected too
    assert not rejects(m, k, c_star - 1, gdp_inverse_blowup(1.2), level)  # a weaker one with less evidence is not

def test_the_power_statement_is_met_in_the_canary_game():
    """``detectable_epsilon`` for a Gaussian claim: with each guess right with probability
    e^eps/(1+e^eps) at that epsilon, the f-DP reading rejects mu = 1 at least half the time."""
    m, mu_claim, seeds = 600, 1.0, 300
    eps_d = one_run_fdp.detectable_epsilon(m, claim_curve(mu=mu_claim))
    assert 1.0 < eps_d < 8
    hits = 0
    for seed in range(seeds):
        scores, included = _randomized_response(np.random.default_rng(seed), eps_d, m)
        hits += one_run_fdp_audit(scores, included, delta=1e-5).mu_low > mu_claim
    assert hits >= stats.binom.ppf(0.001, seeds, 0.5)
    assert math.isinf(one_run_fdp.detectable_epsilon(20, claim_curve(mu=3.0)))

def test_needed_canaries_is_enough_and_about_the_fewest():
    curve = claim_curve(mu=1.0)
    n = one_run_fdp.needed_canaries(curve)
    level = 0.05 / 4
    assert one_run_fdp._thresholds(n, curve, level, one_run.DEFAULT_GUESS_FRACTIONS)
    assert not one_run_fdp._thresholds(n // 2, curve, level, one_run.DEFAULT_GUESS_FRACTIONS)
    with pytest.raises(ValueError, match="no one-run audit"):
        one_run_fdp.needed_canaries(claim_curve(epsilon=30.0, delta=1e-5), max_canaries=1000)

def test_the_reading_refuses_what_the_audit_refuses():
    for kwargs, message in [
        ({"scores": [0.1, float("nan")], "included": [True, False]}, "NaN"),
        ({"scores": [0.1, 0.2], "included": [1, 0]}, "boolean"),
        ({"scores": [0.1, 0.2], "included": [True, False], "guess_fractions": (0.0,)}, "fractions"),
        ({"scores": [0.1, 0.2], "included": [True, False], "confidence": 1.0}, "confidence"),
        ({"scores": [0.1, 0.2], "included": [True, False], "delta": 1.0}, "delta"),
    ]:
        with pytest.raises(ValueError, match=message):
            one_run_fdp_audit(**{"delta": 1e-5, **kwargs})
