"""What a one-run audit (:mod:`pytest_privacy.stats.one_run`) can catch before it runs: its power
against a claim (the smallest epsilon it refutes half the time in the best case) and the fewest
canaries that let it refute a claim at all."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from scipy import special

from .checks import check_confidence, check_delta, check_number
from .one_run import (
    DEFAULT_GUESS_FRACTIONS,
    DEFAULT_TOLERANCE,
    check_epsilon,
    check_fraction,
    check_tolerance,
    checked_fractions,
    guesses_per_side,
    lower_bound,
)

__all__ = ["detectable_epsilon", "fewest_refuting", "needed_canaries", "power_at"]


def detectable_epsilon(
    m: int,
    claim: float,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
    power: float = 0.5,
    tol: float = DEFAULT_TOLERANCE,
) -> float:
    """The smallest true epsilon at which this audit refutes the claim ``claim`` with probability at
    least ``power``, in the best case for the audit: every guess right independently with probability
    ``e^eps / (1 + e^eps)``, what an optimal attack achieves against an eps-DP mechanism (randomized
    response on each canary). ``inf`` when no true epsilon lets it (even perfect guesses cannot prove
    more than the claim).

    An honest statement of power in place of the perfect-guess ceiling: a PASS at a claim of 2 from an
    audit whose ``detectable_epsilon`` is 3.1 says "a mechanism leaking eps >= 3.1 on these canaries
    would have been caught at least half the time", nothing about eps between 2 and 3.1. Real canaries
    are less memorable than this best case, so the true power is lower still.

    Exact: for each guess fraction, the smallest number of correct guesses ``v*`` whose bound (at the
    audit's Bonferroni level) exceeds ``claim``; the audit refutes the claim when any fraction reaches
    its ``v*``, so the probability is at least the largest single-fraction ``P[Binomial(r, q) >= v*]``
    (used here: the epsilon returned is never optimistic), found by bisection in epsilon.
    """
    m = check_number("m", m, "[2, inf)", integer=True)
    claim = check_epsilon(claim)
    delta = check_delta(delta)
    level = (1.0 - check_confidence(confidence)) / len(checked_fractions(guess_fractions))
    thresholds = []
    for fraction in checked_fractions(guess_fractions):
        r = 2 * guesses_per_side(m, fraction)
        v = fewest_refuting(r, lambda v, r=r: lower_bound(m, r, v, delta, level, tol) > claim)
        if v is not None:  # (None: even r correct guesses of this fraction cannot refute the claim)
            thresholds.append((r, v))
    return power_at(thresholds, claim, power)


def fewest_refuting(r: int, refutes: Callable[[int], bool]) -> int | None:
    """The fewest correct guesses of ``r`` that refute a claim (``refutes(v)``: more correct guesses
    only strengthen the evidence, so bisection finds it), or None when even ``r`` do not. Every one-run
    reading states its power through this."""
    if not refutes(r):
        return None
    lo, hi = 0, r  # refutes(hi), not refutes(lo) (v = 0 refutes nothing)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if refutes(mid) else (mid, hi)
    return hi


def power_at(thresholds: Sequence[tuple[int, int]], claim: float, power: float) -> float:
    """The smallest epsilon at which some ``(r, v*)`` of ``thresholds`` (``r`` guesses of a fraction,
    ``v*`` right ones refuting the claim) is reached with probability ``power`` when each guess is right
    independently with probability ``e^eps / (1 + e^eps)``; ``inf`` when there are none. The largest
    single-fraction probability is used, a lower bound on the audit's (never optimistic)."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be strictly between 0 and 1, got {power!r}.")
    if not thresholds:
        return math.inf

    def detected(eps: float) -> float:
        q = float(special.expit(eps))
        return max(float(special.betainc(v, r - v + 1, q)) for r, v in thresholds)  # P[Binomial(r, q) >= v]

    lo_eps, hi_eps = 0.0, max(1.0, claim)
    while detected(hi_eps) < power:
        hi_eps *= 2.0
        if hi_eps > 1e3:
            return math.inf
    while hi_eps - lo_eps > 1e-3:
        mid = 0.5 * (lo_eps + hi_eps)
        lo_eps, hi_eps = (lo_eps, mid) if detected(mid) >= power else (mid, hi_eps)
    return hi_eps


# ---------------------------------------------------------------------------------------------- planning


def _perfect_bound(m: int, fraction: float, delta: float, level: float, tol: float) -> float:
    r = 2 * guesses_per_side(m, fraction)
    return lower_bound(m, r, r, delta, level, tol)


def _fewest_canaries_for(k: int, fraction: float) -> int:
    """Smallest ``m`` with ``guesses_per_side(m, fraction) >= k``."""
    m = max(2, 2 * k, math.ceil((2 * k - 1) / fraction) - 2)
    while guesses_per_side(m, fraction) < k:
        m += 1
    return m


def needed_canaries(
    epsilon: float,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fraction: float = 0.1,
    max_canaries: int = 10**8,
    tol: float = DEFAULT_TOLERANCE,
) -> int:
    """Fewest canaries whose perfectly correct guesses at ``guess_fraction`` give a bound >= ``epsilon``.

    This is the audit size below which a one-run audit (a single guess fraction, at ``confidence``) cannot
    refute a claimed ``epsilon`` whatever the attack; with several guess fractions the Bonferroni correction
    of :func:`one_run_audit` needs a few more. For a given number of guesses per side the bound is best with
    the fewest canaries that give it (more canaries only grow the ``delta * 2m`` term), so the search runs
    over the number of guesses: doubling, then bisection on the rising side of the perfect-guess bound
    (which, with ``delta > 0``, peaks and then slowly falls as canaries are added).

    Raises:
        ValueError: on bad parameters, or when no audit with at most ``max_canaries`` canaries reaches
            ``epsilon`` (with ``delta > 0`` the bound is capped at roughly
            ``log(guess_fraction * (1 - confidence) / delta)``, however many canaries are used).
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    level = 1.0 - check_confidence(confidence)
    fraction = check_fraction(guess_fraction)
    max_canaries = check_number("max_canaries", max_canaries, "[2, inf)", integer=True)
    tol = check_tolerance(tol)

    def bound(k: int) -> float:
        return _perfect_bound(_fewest_canaries_for(k, fraction), fraction, delta, level, tol)

    def undetectable(best: float) -> ValueError:
        return ValueError(
            f"epsilon={epsilon} is not detectable by a one-run audit with at most {max_canaries} canaries "
            f"at delta={delta}, confidence={1 - level}, guess_fraction={fraction}: perfect guesses reach "
            f"at most {best:.3f}"
        )

    # Doubling: find k_hi that reaches epsilon with k_lo = k_hi / 2 not reaching it. With delta > 0 the
    # perfect-guess bound rises to a peak and then slowly falls (the delta * 2m term grows); if the doubling
    # walks past the peak without reaching epsilon, locate the peak and bisect on its rising side.
    k_lo, k_hi = 0, 1
    previous = -1.0
    while True:
        if _fewest_canaries_for(k_hi, fraction) > max_canaries:
            raise undetectable(max(previous, 0.0))
        current = bound(k_hi)
        if current >= epsilon:
            break
        if current < previous:  # past the peak, which lies in (k_hi / 4, k_hi)
            a, b = max(1, k_hi // 4), k_hi
            while b - a > 2:  # ternary search of the (unimodal) bound for its maximum
                third = (b - a) // 3
                if bound(a + third) < bound(b - third):
                    a = a + third
                else:
                    b = b - third
            k_peak = max(range(a, b + 1), key=bound)
            if bound(k_peak) < epsilon:
                raise undetectable(bound(k_peak))
            k_lo, k_hi = max(1, k_hi // 4) - 1, k_peak
            break
        previous = current
        k_lo, k_hi = k_hi, 2 * k_hi
    while k_hi - k_lo > 1:  # invariant: bound(k_lo) < epsilon <= bound(k_hi) (k_lo = 0: no guesses)
        mid = (k_lo + k_hi) // 2
        if bound(mid) >= epsilon:
            k_hi = mid
        else:
            k_lo = mid
    return _fewest_canaries_for(k_hi, fraction)
