"""The f-DP reading of a one-run audit (Mahloujifar, Melis & Chaudhuri, "Auditing f-Differential
Privacy in One Run", ICML 2025): the same canaries and guesses as :mod:`pytest_privacy.stats.one_run`, tested
against a claimed trade-off curve instead of the (eps, delta) bound of Steinke, Nasr & Jagielski.

Setting as in :mod:`~pytest_privacy.one_run`: ``m`` canaries, each in training with probability 1/2,
``k`` guesses (the rest abstained on), ``c`` of them right. A mechanism is f-DP for a trade-off curve
``f`` when no test tells a canary's presence from its absence with errors below ``f``; its *blow-up*
``g(a) = 1 - f(a)`` is the largest probability an event can have with a canary when it has probability
``a`` without. Two curves are built in:

- ``(eps, delta)``-DP, valid for every (eps, delta) claim: ``g(a) = min(1, delta + e^eps a,
  1 - e^-eps (1 - delta - a))``.
- mu-Gaussian DP (Dong, Roth & Su 2022), for mechanisms that are Gaussian: ``g(a) = Phi(Phi^-1(a) + mu)``.

The test (the paper's recursion over the number of correct guesses). Suppose the guesses were ``c`` or
more right with probability ``tau``. Writing ``p_j`` for the probability of exactly ``j`` right, the mass
of right and of wrong guesses per canary on the event "at least ``i`` right" is
``r_i = sum_{j>=i} j p_j / m`` and ``h_i = sum_{j>=i} (k-j) p_j / m``; f-DP forces ``h_i >= g^-1(r_i)`` for
every ``i``. The least total probability these constraints allow is built from the top: all of ``tau`` at
``j = c`` (``r = tau c / m``, ``h = tau (k - c) / m``), then, for ``i = c-1, ..., 0``, just enough mass at
``j = i`` to lift ``h`` to ``g^-1(r)`` (it adds right and wrong guesses in the ratio ``i : k - i``).
If that least mass exceeds 1 (``r + h > k / m``), no f-DP mechanism makes ``c`` right guesses this
likely: the claim is rejected at level ``tau``. Each step lifts ``h`` against the ``r`` before the
step's own mass is added, which asks for less mass than the constraint does, so the test only ever
errs toward not rejecting.

Rejecting a curve rejects every curve above it (a smaller epsilon at the same delta, a smaller mu), so
the largest rejected epsilon (or mu) is a lower bound at the test's level. Several guess fractions
share the level by Bonferroni, as in :func:`~pytest_privacy.stats.one_run.one_run_audit`. Known-answer
simulations (``tests/statistical/test_one_run_fdp.py``): randomized response and the Gaussian
mechanism over 200 seeds, the bound above the truth at most at its error rate and tighter than the
Steinke-Nasr-Jagielski bound on the same guesses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from .checks import check_confidence, check_delta
from .one_run import (
    DEFAULT_GUESS_FRACTIONS,
    checked_canaries,
    checked_fractions,
    guess_counts,
    guesses_per_side,
)
from .one_run_power import fewest_refuting, power_at

__all__ = [
    "FDPAudit",
    "InverseBlowup",
    "claim_curve",
    "detectable_epsilon",
    "dp_inverse_blowup",
    "epsilon_lower_bound",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_inverse_blowup",
    "mu_lower_bound",
    "needed_canaries",
    "one_run_fdp_audit",
    "rejects",
]

InverseBlowup = Callable[[float], float]
_EPS_MAX = 64.0  # beyond any claim a one-run audit meets; a bound at the cap says "at least this"
_MU_MAX = 20.0
_TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------ curves


def dp_inverse_blowup(epsilon: float, delta: float) -> InverseBlowup:
    """``g^-1`` of the (eps, delta)-DP trade-off curve: the least probability without a canary of an
    event that has probability ``y`` with it."""
    shrink, grow = math.exp(-epsilon), math.exp(min(epsilon, 700.0))
    return lambda y: max(0.0, (y - delta) * shrink, 1.0 - delta - grow * (1.0 - y))


def gdp_inverse_blowup(mu: float) -> InverseBlowup:
    """``g^-1`` of mu-Gaussian DP: ``Phi(Phi^-1(y) - mu)``."""
    return lambda y: float(special.ndtr(special.ndtri(min(max(y, 0.0), 1.0)) - mu))


def gdp_delta(mu: float, epsilon: float) -> float:
    """The delta of a mu-GDP mechanism at ``epsilon`` (its exact privacy profile)."""
    if mu <= 0:
        return 0.0
    a = stats.norm.cdf(-epsilon / mu + mu / 2)
    b = math.exp(epsilon + stats.norm.logcdf(-epsilon / mu - mu / 2))
    return float(min(1.0, max(0.0, a - b)))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The epsilon of a mu-GDP mechanism at ``delta`` (0 when it is below delta everywhere; infinite
    at ``delta = 0``, where no finite epsilon holds)."""
    if mu <= 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    if delta <= 0:
        return math.inf
    hi = 1.0
    while gdp_delta(mu, hi) > delta:
        hi *= 2
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, hi, xtol=1e-10))


# -------------------------------------------------------------------------------------------------- test


def rejects(m: int, k: int, c: int, inverse_blowup: InverseBlowup, level: float) -> bool:
    """Whether ``c`` right of ``k`` guesses on ``m`` canaries reject the curve (given by its
    ``inverse_blowup``) at ``level``: no mechanism on that curve makes them this likely (module doc)."""
    if c <= 0:
        return False
    r, h = level * c / m, level * (k - c) / m
    for i in range(c - 1, -1, -1):
        need = inverse_blowup(r)
        if need <= h:  # nothing more is forced: r and h stay as they are for every smaller i
            break
        r, h = min(1.0, r + i / (k - i) * (need - h)), need
    return r + h > k / m


def _largest_rejected(
    m: int, counts: Sequence[tuple[int, int]], curve: Callable[[float], InverseBlowup], level: float, top: float
) -> float:
    """The largest parameter (epsilon or mu: the curve weakens as it grows) that some ``(k, c)`` of
    ``counts`` rejects at ``level``, to ``_TOLERANCE``; 0 when none is."""

    def rejected(x: float) -> bool:
        g = curve(x)
        return any(rejects(m, k, c, g, level) for k, c in counts)

    if not rejected(0.0):
        return 0.0
    if rejected(top):
        return top
    lo, hi = 0.0, top  # invariant: rejected(lo), not rejected(hi)
    while hi - lo > _TOLERANCE:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rejected(mid) else (lo, mid)
    return lo


def epsilon_lower_bound(m: int, counts: Sequence[tuple[int, int]], *, delta: float, level: float) -> float:
    """The largest epsilon whose (eps, delta) curve the guesses ``counts`` (``(k, c)`` each, tested at
    ``level`` each) reject: a lower bound on the mechanism's epsilon at ``delta``."""
    return _largest_rejected(m, counts, lambda eps: dp_inverse_blowup(eps, delta), level, _EPS_MAX)


def mu_lower_bound(m: int, counts: Sequence[tuple[int, int]], *, level: float) -> float:
    """The largest mu whose Gaussian curve the guesses ``counts`` reject at ``level``: a lower bound
    on mu for a mechanism that is mu-GDP for some mu."""
    return _largest_rejected(m, counts, gdp_inverse_blowup, level, _MU_MAX)


# ----------------------------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class FDPAudit:
    """The f-DP reading of one run's canaries.

    Attributes:
        epsilon_low: the (eps, delta) curve's bound: epsilon at ``delta`` proven at ``confidence``.
        mu_low: the Gaussian curve's bound (a bound on mu for Gaussian mechanisms only).
        max_epsilon, max_mu: those bounds had every guess been right: the most an audit of this size shows.
        n_guesses, n_correct, guess_fraction: the guesses that gave ``mu_low``.
    """

    epsilon_low: float
    mu_low: float
    max_epsilon: float
    max_mu: float
    n_canaries: int
    n_guesses: int
    n_correct: int
    guess_fraction: float
    confidence: float
    delta: float


def one_run_fdp_audit(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
) -> FDPAudit:
    """Audit one training run's canaries against the (eps, delta) and the Gaussian curves, with the
    guesses of :func:`~pytest_privacy.stats.one_run.one_run_audit` (its fractions, ties and Bonferroni)."""
    scores_arr, included_arr = checked_canaries(scores, included)
    delta = check_delta(delta)
    fractions = checked_fractions(guess_fractions)
    level = (1.0 - check_confidence(confidence)) / len(fractions)
    m = len(scores_arr)
    found = [(f, 2 * k, v) for f, k, v in guess_counts(scores_arr, included_arr, fractions)]
    per_fraction = [(mu_lower_bound(m, [(k, v)], level=level), f, k, v) for f, k, v in found]
    mu, fraction, k, v = max(per_fraction, key=lambda t: t[0])
    perfect = [(k_, k_) for _, k_, _ in found]
    return FDPAudit(
        epsilon_low=epsilon_lower_bound(m, [(k_, v_) for _, k_, v_ in found], delta=delta, level=level),
        mu_low=mu,
        max_epsilon=epsilon_lower_bound(m, perfect, delta=delta, level=level),
        max_mu=mu_lower_bound(m, perfect, level=level),
        n_canaries=m, n_guesses=k, n_correct=v, guess_fraction=fraction, confidence=confidence, delta=delta,
    )


# ------------------------------------------------------------------------------------------------- power


def claim_curve(*, epsilon: float | None = None, delta: float = 0.0, mu: float | None = None) -> InverseBlowup:
    """The curve of a claim: mu-GDP when ``mu`` is given, else (``epsilon``, ``delta``)-DP."""
    if mu is not None:
        return gdp_inverse_blowup(mu)
    assert epsilon is not None
    return dp_inverse_blowup(epsilon, delta)


def _thresholds(m: int, curve: InverseBlowup, level: float, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """``(k, c*)`` per guess fraction: the fewest right guesses of ``k`` that reject ``curve`` (fractions
    where even ``k`` right do not are left out)."""
    out = []
    for fraction in fractions:
        k = 2 * guesses_per_side(m, fraction)
        c = fewest_refuting(k, lambda c, k=k: rejects(m, k, c, curve, level))
        if c is not None:
            out.append((k, c))
    return out


def detectable_epsilon(
    m: int, curve: InverseBlowup, *, confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS, power: float = 0.5,
) -> float:
    """:func:`pytest_privacy.stats.one_run_power.detectable_epsilon` for this reading: the smallest epsilon at which
    each guess right with probability ``e^eps / (1 + e^eps)`` (the best case: randomized response on
    each canary) lets an audit of ``m`` canaries reject the claim's ``curve`` (:func:`claim_curve`) with
    probability ``power``; ``inf`` when none does."""
    fractions = checked_fractions(guess_fractions)
    level = (1.0 - check_confidence(confidence)) / len(fractions)
    return power_at(_thresholds(m, curve, level, fractions), 1.0, power)


def needed_canaries(
    curve: InverseBlowup, *, confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS, max_canaries: int = 10**6,
) -> int:
    """About the fewest canaries whose perfect guesses reject the claim's ``curve`` in this reading
    (doubling, then bisection; the answer returned always does). ValueError when ``max_canaries`` do not."""
    fractions = checked_fractions(guess_fractions)
    level = (1.0 - check_confidence(confidence)) / len(fractions)

    def enough(m: int) -> bool:
        return bool(_thresholds(m, curve, level, fractions))

    hi = 16
    while not enough(hi):
        if hi >= max_canaries:
            raise ValueError(f"no one-run audit with at most {max_canaries:,} canaries can reject this claim")
        hi = min(2 * hi, max_canaries)
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi
