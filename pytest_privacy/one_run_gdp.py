"""The Gaussian-DP reading of a one-run audit: a lower bound on mu for mechanisms that are mu-GDP
(Dong, Roth & Su 2022), as DP-SGD's Gaussian noise makes them.

mu-GDP implies (eps, delta_mu(eps))-DP for every eps >= 0 at once, with
``delta_mu(eps) = Phi(-eps/mu + mu/2) - e^eps * Phi(-eps/mu - mu/2)``. So the one-run audit's p-value
for "(eps, delta_mu(eps))-DP" (:func:`pytest_privacy.one_run.p_value`) is a p-value for "mu-GDP" at
every eps; over a fixed grid of eps and the guess fractions, Bonferroni keeps the minimum valid. The
p-value grows with mu (delta_mu(eps) does), so the largest mu it still rejects is a lower bound,
and ``gdp_epsilon(mu, delta)`` turns it into the epsilon such a mechanism has at a claim's delta:
for Gaussian mechanisms a tighter reading of the same canaries than the plain (eps, delta) bound,
which must hold for any mechanism.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .metrics import check_confidence
from .one_run import (
    DEFAULT_GUESS_FRACTIONS,
    checked_canaries,
    checked_fractions,
    guess_counts,
    p_value,
)

__all__ = ["EPSILON_GRID", "GDPAudit", "gdp_delta", "gdp_epsilon", "mu_lower_bound", "one_run_gdp_audit"]

EPSILON_GRID: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # fixed before any data
_MU_MAX = 20.0
_TOLERANCE = 1e-3


def gdp_delta(mu: float, epsilon: float) -> float:
    """The delta of a mu-GDP mechanism at ``epsilon`` (its exact privacy profile)."""
    if mu <= 0:
        return 0.0
    a = stats.norm.cdf(-epsilon / mu + mu / 2)
    b = math.exp(epsilon + stats.norm.logcdf(-epsilon / mu - mu / 2))
    return float(min(1.0, max(0.0, a - b)))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The epsilon of a mu-GDP mechanism at ``delta`` (0 when it is below delta everywhere)."""
    if mu <= 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    hi = 1.0
    while gdp_delta(mu, hi) > delta:
        hi *= 2
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, hi, xtol=1e-10))


def mu_lower_bound(
    m: int, counts: Sequence[tuple[int, int]], *, confidence: float = 0.95, grid: Sequence[float] = EPSILON_GRID
) -> float:
    """Largest mu that the guesses ``counts`` (``(r, v)`` per guess fraction) reject at
    ``confidence``, Bonferroni over the fractions and the epsilon ``grid``; 0 when none is."""
    level = (1 - confidence) / (len(counts) * len(grid))

    def rejected(mu: float) -> bool:
        deltas = [(eps, gdp_delta(mu, eps)) for eps in grid]
        # delta = 1 is no guarantee at all: nothing rejects it
        return any(p_value(m, r, v, eps, d) <= level for r, v in counts for eps, d in deltas if d < 1.0)

    if not rejected(_TOLERANCE):
        return 0.0
    lo, hi = _TOLERANCE, _MU_MAX  # invariant: rejected(lo)
    if rejected(hi):
        return hi
    while hi - lo > _TOLERANCE:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejected(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class GDPAudit:
    """The Gaussian-DP reading of a one-run audit: ``mu_low`` and the largest mu perfect guesses
    on as many canaries could show (``max_detectable``)."""

    mu_low: float
    max_detectable: float
    confidence: float


def one_run_gdp_audit(
    scores: Sequence[float] | np.ndarray, included: Sequence[bool] | np.ndarray, *, confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
) -> GDPAudit:
    """A mu lower bound from one run's canaries (the same guesses as :func:`one_run_audit`)."""
    scores_arr, included_arr = checked_canaries(scores, included)
    check_confidence(confidence)
    m = len(scores_arr)
    fractions = checked_fractions(guess_fractions)
    counts = [(2 * k, v) for _, k, v in guess_counts(scores_arr, included_arr, fractions)]
    perfect = [(r, r) for r, _ in counts]
    return GDPAudit(
        mu_lower_bound(m, counts, confidence=confidence), mu_lower_bound(m, perfect, confidence=confidence), confidence
    )
