"""Canary exposure with known answers: the exact rank when every candidate is scored; over 200 seeds of
sampled candidates whose true exposure is known (log-likelihoods standard normal, the secret at a
chosen quantile), the bounds cover it at their confidence and the verdict's false FAIL stays at its
error rate; a memorised secret FAILs."""

import math

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.results import Verdict
from pytest_privacy.stats.exposure import (
    _samples_to_certify,
    exposure,
    exposure_verdict,
)
from pytest_privacy.stats.intervals import clopper_pearson

SEEDS = 200


def test_an_enumerated_space_gives_the_exact_rank():
    rng = np.random.default_rng(0)
    space = 1000
    others = rng.normal(size=space - 1)
    for secret in (5.0, others.max(), 0.0, -5.0):
        rank = 1 + sum(1 for v in others if v >= secret)  # ties count against the secret
        e = exposure(secret, others, space_size=space, enumerated=True)
        assert e.estimate == e.low == e.high == pytest.approx(math.log2(space) - math.log2(rank), abs=1e-12)
    assert exposure(10.0, others, space_size=space, enumerated=True).estimate == pytest.approx(math.log2(space))
    with pytest.raises(ValueError, match="every other candidate"):
        exposure(0.0, others[:10], space_size=space, enumerated=True)


@pytest.mark.parametrize("z", [0.0, 2.0, 3.0])
def test_sampled_bounds_cover_the_true_exposure(z):
    """Candidates' log-likelihoods N(0, 1), the secret's z: the true exposure is -log2 P[N(0,1) >= z]."""
    truth = -math.log2(stats.norm.sf(z))
    rng = np.random.default_rng(1)
    covered, estimates = 0, []
    for _ in range(SEEDS):
        e = exposure(z, rng.normal(size=2000), space_size=10**12, enumerated=False)
        covered += e.low <= truth <= e.high
        estimates.append(e.estimate)
    assert covered >= stats.binom.ppf(0.001, SEEDS, 0.95)  # 95% coverage, less the binomial tail
    assert abs(np.median(estimates) - truth) < 0.35  # the fitted tail is about right where samples reach


def test_the_verdict_errs_at_its_rate_and_catches_a_memorised_secret():
    rng = np.random.default_rng(2)
    # an unlearnt secret: its log-likelihood is one more draw of the candidates' distribution
    fails = sum(
        exposure_verdict(exposure(rng.normal(), rng.normal(size=1000), space_size=10**9, enumerated=False), max_exposure=6.0)[0]
        is Verdict.FAIL
        for _ in range(SEEDS)
    )
    # P[true exposure > 6 bits] = 2^-6 for an unlearnt secret, and the bound errs at most 2.5% besides
    assert fails <= stats.binom.ppf(0.999, SEEDS, 2.0**-6 + 0.025)
    memorised = exposure(stats.norm.isf(2.0**-20), rng.normal(size=100_000), space_size=10**9, enumerated=False)
    verdict, reason = exposure_verdict(memorised, max_exposure=10.0)
    assert verdict is Verdict.FAIL and "exposed" in reason and memorised.low > 10
    unsure = exposure(stats.norm.isf(2.0**-12), rng.normal(size=300), space_size=10**9, enumerated=False)
    verdict, reason = exposure_verdict(unsure, max_exposure=10.0)
    assert verdict is Verdict.INCONCLUSIVE and "sampled candidates would prove" in reason


def test_the_samples_needed_are_the_fewest_that_certify():
    for bits, conf in [(4.0, 0.95), (10.0, 0.95), (20.0, 0.99)]:
        n = _samples_to_certify(bits, conf)
        assert clopper_pearson(0, n, conf)[1] < 2.0**-bits <= clopper_pearson(0, n - 1, conf)[1]


def test_candidates_without_spread_give_bounds_and_say_the_estimate_is_the_counts():
    e = exposure(1.0, np.zeros(100), space_size=10**6, enumerated=False)
    assert e.low <= e.estimate <= e.high and "no tail fit" in e.method and e.above == 0
    with pytest.raises(ValueError, match="finite"):
        exposure(float("nan"), np.zeros(10), space_size=100, enumerated=False)


def test_planted_canaries_of_a_model_that_never_saw_them_fail_at_most_at_the_error_rate():
    """Known answer: a model independent of the secrets ranks each uniformly among the space. Whatever
    the limit, a FAIL (some planted canary's exposure above it, beyond chance over the k canaries) comes
    at most 5% of the time; a canary ranked first among 10^4 of 11 is a FAIL at 10 bits."""
    from scipy import stats as st

    from pytest_privacy.results import Verdict
    from pytest_privacy.stats.exposure import exposure, planted_exposure_verdict

    rng = np.random.default_rng(7)
    space, k, runs = 10_000, 11, 3000
    for limit in (3.0, 6.0, 10.0):
        fails = 0
        for _ in range(runs):
            ranks = rng.integers(1, space + 1, k)
            exps = [exposure(-float(r), -np.r_[np.arange(1, r), np.arange(r + 1, space + 1)].astype(float),
                             space_size=space, enumerated=True) for r in ranks]
            fails += planted_exposure_verdict(exps, max_exposure=limit, confidence=0.95)[0] is Verdict.FAIL
        assert fails <= st.binom.ppf(0.999, runs, 0.05), (limit, fails)
    first = exposure(0.0, -np.arange(1, space, dtype=float), space_size=space, enumerated=True)
    assert planted_exposure_verdict([first] * k, max_exposure=10.0, confidence=0.95)[0] is Verdict.FAIL
