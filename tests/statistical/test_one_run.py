"""One-run auditing (Steinke, Nasr & Jagielski 2023): the epsilon lower bound holds at its confidence on
mechanisms whose true epsilon is known, is reasonably tight on the tight case (randomized response), stays
at 0 without a leak, says honestly when an audit is too small, and refuses bad input."""

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from pytest_privacy.stats.one_run import (
    OneRunAudit,
    epsilon_lower_bound,
    one_run_audit,
    p_value,
)
from pytest_privacy.stats.one_run_power import needed_canaries

RUNS = 200
M = 1000
# The reported bound exceeds the truth in at most 5% of runs (95% confidence, Bonferroni over the guess
# fractions makes it conservative): the allowance is Binomial(200, 0.05)'s 99.9% quantile.
ALLOWED = stats.binom.ppf(0.999, RUNS, 0.05)
FRACTIONS = (0.05, 0.1, 0.2, 0.5)


def _membership(rng, m=M):
    return rng.random(m) < 0.5


def _randomized_response_bounds(eps, *, delta=0.0):
    """Score = membership bit flipped with probability 1 / (1 + e^eps): exactly eps-DP per canary."""
    bounds = []
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        member = _membership(rng)
        flipped = rng.random(M) < 1 / (1 + math.exp(eps))
        bounds.append(one_run_audit((member ^ flipped).astype(float), member, delta=delta).epsilon_low)
    return np.array(bounds)


def _gaussian_delta(eps, mu):
    """delta(eps) of the Gaussian mechanism with sensitivity / sigma = mu (exact privacy profile)."""
    return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)


def _gaussian_eps(delta, mu):
    return optimize.brentq(lambda e: _gaussian_delta(e, mu) - delta, 0.0, 50.0, xtol=1e-12)


# ------------------------------------------------------------------------------ (a) randomized response


@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_randomized_response_bound_holds_and_is_reasonably_tight(eps):
    """Randomized response is the tight case of the theorem (given a guessed score, the guess is right
    with probability exactly q = e^eps / (1 + e^eps)), so false alarms occur at close to the nominal rate.

    Measured over 200 seeds, m = 1000: medians 0.303 / 0.777 / 1.685 for eps 0.5 / 1 / 2 (factors 0.61,
    0.78, 0.84), false alarms 5 / 7 / 3 of 200.

    The median is also predicted from the normal approximation: at fraction 0.5 (r = 500 guesses, the most
    informative here) v ~ r q and the bound is logit(q - z sqrt(q (1 - q) / r)) with z the 98.75% normal
    quantile (Bonferroni over 4 fractions): 0.298 / 0.784 / 1.722.
    """
    bounds = _randomized_response_bounds(eps)
    assert np.sum(bounds > eps) <= ALLOWED
    median = np.median(bounds)
    assert median <= eps
    assert median >= (0.5 if eps >= 1 else 0.4) * eps
    q, r = special.expit(eps), 500
    z = stats.norm.ppf(1 - 0.05 / len(FRACTIONS))
    predicted = special.logit(q - z * math.sqrt(q * (1 - q) / r))
    assert median == pytest.approx(predicted, abs=0.1)


def test_randomized_response_with_delta_never_bounds_higher():
    """Allowing delta > 0 only weakens the null hypothesis, so the bound can only drop."""
    pure = _randomized_response_bounds(1.0)
    approx = _randomized_response_bounds(1.0, delta=1e-5)
    assert np.all(approx <= pure + 1e-12)
    assert np.all(approx >= pure - 0.05)  # 2m delta = 0.02: a small correction at this size


# ------------------------------------------------------------------------------ (b) Gaussian mechanism


@pytest.mark.parametrize("mu", [1.0, 2.0])
def test_gaussian_mechanism_bound_holds(mu):
    """Score N(mu * member, 1); true eps at delta = 1e-5 is 4.38 (mu = 1) and 10.0 (mu = 2).

    Measured over 200 seeds, m = 1000: medians 1.63 (mu = 1) and 3.15 (mu = 2), never above the truth (the
    Gaussian is far from the worst case at the extremes a one-run audit can see; max_detectable is 4.68).
    """
    true_eps = _gaussian_eps(1e-5, mu)
    bounds = []
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        member = _membership(rng)
        audit = one_run_audit(rng.normal(size=M) + mu * member, member, delta=1e-5)
        bounds.append(audit.epsilon_low)
        assert audit.epsilon_low <= audit.max_detectable
    bounds = np.array(bounds)
    assert np.sum(bounds > true_eps) <= ALLOWED
    # Power: the audit does detect the leak, more of it for the bigger leak.
    assert np.median(bounds) >= (1.0 if mu == 1.0 else 2.5)


# ------------------------------------------------------------------------------------------ (c) no leak


@pytest.mark.parametrize("delta", [0.0, 1e-5])
def test_no_leak_gives_zero(delta):
    """Scores independent of membership: W ~ Binomial(r, 1/2) exactly, so epsilon = 0 is rejected for a
    fraction with probability <= 1.25%, and for some fraction with probability <= 5% (measured: 7 / 200)."""
    nonzero = 0
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        member = _membership(rng)
        nonzero += one_run_audit(rng.normal(size=M), member, delta=delta).epsilon_low > 0
    assert nonzero <= 0.05 * RUNS


def test_ties_are_broken_without_leaking_the_input_order():
    """All scores tied and the members listed last: a stable sort would 'guess' perfectly."""
    member = np.array([False] * 500 + [True] * 500)
    bounds = [
        one_run_audit(np.zeros(M), member, delta=0.0, tie_break_seed=seed).epsilon_low for seed in range(20)
    ]
    assert sum(b > 0 for b in bounds) <= 2  # each is a false alarm of probability <= 5%
    # ...and the seed makes it reproducible.
    first = one_run_audit(np.zeros(M), member, delta=0.0, tie_break_seed=3)
    assert first == one_run_audit(np.zeros(M), member, delta=0.0, tie_break_seed=3)


# -------------------------------------------------------------------------------- (d) too few canaries


def _perfect_audit(m, **kwargs):
    member = np.arange(m) % 2 == 0  # balanced, so every guess at any fraction <= 1 can be right
    return one_run_audit(member.astype(float), member, **kwargs)


def test_too_few_canaries_cannot_detect_a_large_epsilon():
    audit = _perfect_audit(20, delta=1e-5)
    assert audit.n_correct == audit.n_guesses
    assert audit.epsilon_low == audit.max_detectable
    # r = 10 perfect guesses at 98.75%: q^10 <= 0.0125, so q <= 0.645 and eps <= 0.598 (delta = 0); the
    # delta term (2m delta = 4e-4 times alpha <= 1) shifts it by less than 0.005.
    assert audit.max_detectable < 1
    assert audit.max_detectable == pytest.approx(special.logit(0.0125 ** (1 / 10)), abs=5e-3)
    assert audit.max_detectable <= special.logit(0.0125 ** (1 / 10))
    assert not audit.can_detect(8)
    assert audit.max_detectable < 8


@pytest.mark.parametrize(("delta", "fraction"), [(0.0, 0.1), (1e-5, 1.0)])
def test_needed_canaries_is_the_smallest_perfect_audit_reaching_epsilon(delta, fraction):
    n = needed_canaries(8, delta=delta, guess_fraction=fraction)
    assert n > 20
    if delta == 0:
        # q^r <= 0.05 with q = e^8 / (1 + e^8): r >= 8930 guesses, 10% of the canaries.
        assert n == pytest.approx(10 * math.log(0.05) / math.log(special.expit(8)), rel=1e-3)
    at_n = _perfect_audit(n, delta=delta, guess_fractions=(fraction,))
    assert at_n.epsilon_low >= 8
    below = _perfect_audit(n - 1, delta=delta, guess_fractions=(fraction,))
    assert below.epsilon_low < 8


def test_delta_caps_the_detectable_epsilon():
    """With delta > 0 the delta * 2m term caps the bound near log(fraction * (1 - confidence) / delta):
    at delta = 1e-5 and 10% guesses perfect guesses never show eps = 8 (they peak at 5.94)."""
    with pytest.raises(ValueError, match="not detectable"):
        needed_canaries(8, delta=1e-5, guess_fraction=0.1)
    assert needed_canaries(5.9, delta=1e-5, guess_fraction=0.1) > needed_canaries(5.9, delta=0.0)


# ------------------------------------------------------------------------- (e) p-value and its inverse


def _naive_p_value(m, r, v, eps, delta):
    """The theorem's p-value summed over every outcome, with scipy.stats."""
    if v == 0:
        return 1.0
    q = special.expit(eps)
    beta = stats.binom.sf(v - 1, r, q)
    pmf = stats.binom.pmf(np.arange(v), r, q)
    partial = np.cumsum(pmf[::-1])  # partial[i - 1] = P[v - i <= B < v]
    alpha = np.max(partial / np.arange(1, v + 1))
    return min(1.0, beta + alpha * delta * 2 * m)


@pytest.mark.parametrize(
    ("m", "r", "v"), [(10, 4, 3), (100, 20, 15), (1000, 100, 90), (1000, 500, 300), (20000, 4000, 3990)]
)
@pytest.mark.parametrize("eps", [0.0, 0.5, 2.0, 6.0])
@pytest.mark.parametrize("delta", [0.0, 1e-5, 1e-2])
def test_p_value_matches_the_theorem(m, r, v, eps, delta):
    assert p_value(m, r, v, eps, delta) == pytest.approx(_naive_p_value(m, r, v, eps, delta), rel=1e-7, abs=1e-15)


def test_p_value_is_monotone():
    eps_grid = np.linspace(0, 8, 81)
    for delta in (0.0, 1e-5, 1e-3):
        for v in (0, 30, 60, 80, 100):
            ps = [p_value(1000, 100, v, e, delta) for e in eps_grid]
            assert np.all(np.diff(ps) >= -1e-12), (delta, v)
        for eps in (0.0, 1.0, 3.0):
            ps = [p_value(1000, 100, v, eps, delta) for v in range(101)]
            assert np.all(np.diff(ps) <= 1e-12), (delta, eps)


def test_p_value_edge_cases():
    assert p_value(10, 0, 0, 1.0, 0.0) == 1.0
    assert p_value(10, 6, 0, 3.0, 0.1) == 1.0
    assert p_value(10, 4, 4, 0.0, 0.0) == pytest.approx(0.5**4)
    assert p_value(10, 4, 4, 1.0, 0.0) == pytest.approx(special.expit(1.0) ** 4)
    assert epsilon_lower_bound(10, 0, 0, delta=0.0) == 0.0
    assert epsilon_lower_bound(10, 6, 0, delta=1e-5) == 0.0


@pytest.mark.parametrize(("r", "v"), [(10, 10), (100, 90), (500, 380), (500, 260)])
@pytest.mark.parametrize("delta", [0.0, 1e-5, 1e-3])
def test_lower_bound_inverts_the_p_value(r, v, delta):
    m, level, tol = 1000, 0.05, 1e-4
    eps = epsilon_lower_bound(m, r, v, delta=delta, confidence=1 - level)
    if eps == 0:
        assert p_value(m, r, v, 0.0, delta) > level
        return
    assert p_value(m, r, v, eps, delta) <= level
    assert p_value(m, r, v, eps + (2 * tol if delta else 1e-6), delta) > level


def test_audit_reports_the_best_bonferroni_corrected_fraction():
    rng = np.random.default_rng(0)
    member = _membership(rng)
    scores = rng.normal(size=M) + 1.5 * member
    audit = one_run_audit(scores, member, delta=1e-5)
    assert isinstance(audit, OneRunAudit)
    order = np.lexsort((np.random.default_rng(0).permutation(M), scores))
    bounds = []
    for f in FRACTIONS:
        k = max(1, math.floor(f * M / 2 + 0.5))
        v = int(member[order[-k:]].sum() + (~member[order[:k]]).sum())
        bounds.append(epsilon_lower_bound(M, 2 * k, v, delta=1e-5, confidence=1 - 0.05 / 4))
    assert audit.epsilon_low == max(bounds)
    assert audit.n_guesses == audit.k_pos + audit.k_neg == 2 * max(1, math.floor(audit.guess_fraction * M / 2 + 0.5))
    assert (audit.n_canaries, audit.confidence, audit.delta) == (M, 0.95, 1e-5)
    assert 0 < audit.epsilon_low <= audit.max_detectable


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: p_value(10, 11, 0, 1.0, 0.0), "guesses"),
        (lambda: p_value(10, 4, 5, 1.0, 0.0), "exceeds"),
        (lambda: p_value(10, 4, 2.5, 1.0, 0.0), "integer"),
        (lambda: p_value(10, 4, 2, -1.0, 0.0), "epsilon"),
        (lambda: p_value(10, 4, 2, float("nan"), 0.0), "epsilon"),
        (lambda: p_value(10, 4, 2, 1.0, 1.0), "delta"),
        (lambda: p_value(10, 4, 2, 1.0, -0.1), "delta"),
        (lambda: epsilon_lower_bound(10, 4, 2, delta=0.0, confidence=1.0), "confidence"),
        (lambda: epsilon_lower_bound(10, 4, 2, delta=0.0, confidence=0.0), "confidence"),
        (lambda: one_run_audit([0.1, 0.2, 0.3], [True, False], delta=0.0), "length"),
        (lambda: one_run_audit([0.1, 0.2], [1, 0], delta=0.0), "boolean"),
        (lambda: one_run_audit([0.1, float("nan")], [True, False], delta=0.0), "NaN"),
        (lambda: one_run_audit([0.1], [True], delta=0.0), "at least 2"),
        (lambda: one_run_audit([0.1, 0.2], [True, False], delta=1.5), "delta"),
        (lambda: one_run_audit([0.1, 0.2], [True, False], delta=0.0, confidence=2), "confidence"),
        (lambda: one_run_audit([0.1, 0.2], [True, False], delta=0.0, guess_fractions=()), "empty"),
        (lambda: one_run_audit([0.1, 0.2], [True, False], delta=0.0, guess_fractions=(0.0,)), "fractions"),
        (lambda: needed_canaries(-1.0, delta=0.0), "epsilon"),
        (lambda: needed_canaries(2.0, delta=0.0, guess_fraction=1.5), "fractions"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_power_statement_is_met_in_the_canary_game_and_never_optimistic():
    """``detectable_epsilon``: in the best-case canary game (each guess right with probability
    e^eps/(1+e^eps), what an optimal attack gets from an eps-DP mechanism), the audit refutes the claim
    at least half the time at that epsilon, and clearly less often well below it."""
    from scipy import stats

    from pytest_privacy.stats.one_run import one_run_audit
    from pytest_privacy.stats.one_run_power import detectable_epsilon

    m, claim, delta, seeds = 600, 1.0, 1e-5, 300
    eps_d = detectable_epsilon(m, claim, delta=delta)
    assert claim < eps_d < 5

    def refuted(eps: float, seed: int) -> bool:
        rng = np.random.default_rng(seed)
        included = rng.random(m) < 0.5
        # randomized response per canary: the score says "in" with probability q when in, 1 - q when out
        says_in = np.where(rng.random(m) < 1 / (1 + np.exp(-eps)), included, ~included)
        scores = says_in + rng.random(m) * 0.01  # ties broken at random
        return one_run_audit(scores, included, delta=delta).epsilon_low > claim

    at = sum(refuted(eps_d, s) for s in range(seeds))
    # at least half the time (the statement's promise), less the 99.9% binomial tail of 300 trials
    assert at >= stats.binom.ppf(0.001, seeds, 0.5)
    below = sum(refuted(claim, s) for s in range(seeds))
    assert below <= stats.binom.ppf(0.999, seeds, 0.05)  # at the claim itself: the audit's error rate
    assert np.isinf(detectable_epsilon(20, 3.0, delta=delta))  # 20 canaries cannot refute eps = 3
