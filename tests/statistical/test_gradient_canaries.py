"""The white-box Dirac canaries of the built-in DP-SGD, as their audit sees them: each included canary joins
each of T steps with the sampling rate q, its score the sum over all T steps of the privatized sum at its
coordinate (clip per join plus N(0, (sigma clip)^2) per step). With sigma from the accountant for
(epsilon, delta) at that q and T, the canaries are as private as the accountant says, so a claim of that
epsilon is falsely FAILed at most at the one-run audit's error rate (5%), over 200 seeds. An auditor who
knew the steps a canary joined and summed only those would test the mechanism without subsampling: the
same simulation shows that reading FAILs the honest claim nearly always, which is why the engine's score
never reads them."""

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.stats.dp_claim import DPClaim, judge_dp_claim

pytestmark = pytest.mark.slow
Q, STEPS, CANARIES, SEEDS, CLIP = 0.05, 100, 1000, 200, 1.0


class _Run:
    def __init__(self, scores, included):
        self.scores, self.included, self.no_trace = scores, included, None


def _sigma():
    from pytest_privacy.engine.defenses.dp_sgd import dp_noise_multiplier

    return dp_noise_multiplier(2.0, 1e-5, Q, int(Q * STEPS))  # epochs = q T


def _simulate(rng, sigma, *, knows_steps):
    included = rng.random(CANARIES) < 0.5
    joins = rng.random((CANARIES, STEPS)) < Q
    joins &= included[:, None]
    noise = rng.normal(0.0, sigma * CLIP, size=(CANARIES, STEPS))
    per_step = CLIP * joins + noise
    if knows_steps:  # summed only where it joined (or would have: the same draw, inclusion aside)
        would = rng.random((CANARIES, STEPS)) < Q
        steps = np.where(included[:, None], joins, would)
        return (per_step * steps).sum(axis=1), included
    return per_step.sum(axis=1), included


def _fails(seed, runs, *, knows_steps):
    """How many of ``runs`` simulated runs FAIL the honest claim (epsilon 2, the accountant's own)."""
    pytest.importorskip("opacus", reason="the accountant's sigma needs the [dp] extra")
    sigma, claim, rng = _sigma(), DPClaim.of(epsilon=2.0, delta=1e-5), np.random.default_rng(seed)
    return sum(
        judge_dp_claim(_Run(*_simulate(rng, sigma, knows_steps=knows_steps)), claim, confidence=0.95).verdict.value
        == "fail"
        for _ in range(runs)
    )


def test_an_honest_claim_is_falsely_failed_at_most_at_the_error_rate():
    fails = _fails(0, SEEDS, knows_steps=False)
    assert fails <= stats.binom.ppf(0.999, SEEDS, 0.05), fails


def test_reading_the_steps_a_canary_joined_would_fail_the_honest_claim():
    fails = _fails(1, 20, knows_steps=True)
    assert fails >= 15, fails  # the subsampling the accountant counts on is gone
