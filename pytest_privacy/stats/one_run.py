"""One-run privacy auditing: an epsilon lower bound from a single training run.

The statistics of Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023),
implemented here from the mathematics alone.

Setting. There are ``m`` canaries; each is put in the training set independently with probability 1/2.
After the single training run the auditor scores every canary (higher = more likely a member), guesses
"in" for the ``k+`` highest scores and "out" for the ``k-`` lowest, and abstains on the rest: ``r = k+ + k-``
guesses, of which ``v`` are correct.

Theorem (one-run audit). If the training algorithm is (eps, delta)-DP with respect to each canary, the number
``W`` of correct guesses satisfies

    P[W >= v] <= beta + alpha * delta * 2m,

with ``q = e^eps / (1 + e^eps)``, ``B ~ Binomial(r, q)``, ``beta = P[B >= v]`` and
``alpha = max_{1 <= i <= v} P[v - i <= B < v] / i``. The right-hand side is therefore a p-value for the null
hypothesis "the algorithm is (eps, delta)-DP"; rejecting it at level ``1 - confidence`` for some ``eps``
rejects it for every smaller ``eps`` too (an (eps', delta)-DP algorithm with eps' < eps is (eps, delta)-DP),
so the largest rejected ``eps`` is a lower bound on the true epsilon at that confidence.

With ``delta = 0`` the bound has a closed form (the Clopper-Pearson-style inversion of the binomial tail,
``P[Binomial(r, q) >= v] = I_q(v, r - v + 1)``); with ``delta > 0`` it is found by bisection inside
``[0, eps_0]``, where ``eps_0`` is the ``delta = 0`` bound (the p-value is at least ``beta``, so nothing above
``eps_0`` can be rejected). Only epsilons whose p-value was actually checked to be <= ``1 - confidence`` are
ever reported.

Limits worth knowing. The bound saturates: with ``r`` perfect guesses and ``delta = 0`` it is about
``log(r / log(1/(1 - confidence)))``, so showing a large epsilon needs many canaries (:func:`needed_canaries`);
with ``delta > 0`` the ``alpha * delta * 2m`` term caps the bound at roughly
``log(guess_fraction * (1 - confidence) / delta)`` however many canaries are used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from .checks import check_confidence, check_delta, check_number

__all__ = [
    "OneRunAudit",
    "checked_canaries",
    "detectable_epsilon",
    "checked_fractions",
    "epsilon_lower_bound",
    "guess_counts",
    "guesses_per_side",
    "needed_canaries",
    "one_run_audit",
    "p_value",
    "power_at",
]

#: Default guess fractions of :func:`one_run_audit` (share of canaries guessed on, half at each end).
DEFAULT_GUESS_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
#: Default precision (in epsilon) of the bisection used when ``delta > 0``.
DEFAULT_TOLERANCE = 1e-4
# Width, in standard deviations (plus a constant for very skewed binomials), of the window of binomial
# outcomes kept when computing alpha; the mass outside it is below e^-100 and cannot change the p-value.
_WINDOW_SDS = 40.0
_WINDOW_PAD = 50


# --------------------------------------------------------------------------------------------- validation


def _check_counts(m: object, r: object, v: object) -> tuple[int, int, int]:
    m = check_number("m (number of canaries)", m, "[1, inf)", integer=True)
    r = check_number("r (number of guesses)", r, "[0, inf)", integer=True)
    v = check_number("v (number of correct guesses)", v, "[0, inf)", integer=True)
    if r > m:
        raise ValueError(f"cannot make r={r} guesses about m={m} canaries")
    if v > r:
        raise ValueError(f"v={v} correct guesses exceeds r={r} guesses")
    return m, r, v


def _check_epsilon(epsilon: object) -> float:
    return check_number("epsilon", epsilon, "[0, inf)")


def check_fraction(fraction: object) -> float:
    """A guess fraction: the share of canaries guessed on, in (0, 1]."""
    return check_number("guess fractions", fraction, "(0, 1]")


def _check_tolerance(tol: object) -> float:
    return check_number("tol", tol, "(0, 1)")


# ------------------------------------------------------------------------------------------------ p-value


def _alpha(r: int, v: int, q: float, log_q: float, log_1mq: float) -> float:
    """``max_{1 <= i <= v} P[v - i <= B < v] / i`` for ``B ~ Binomial(r, q)``.

    Writing ``j = v - i``, the numerator is the upper partial sum of the pmf over ``j..v-1``. Only outcomes
    within ``_WINDOW_SDS`` standard deviations of the mean carry mass that matters: below the window the
    partial sum stops growing while ``i`` keeps growing (the ratio only falls), and above it the pmf is too
    small to matter next to the bulk (whose ratio is at least ~0.5 / r).
    """
    if v == 0:
        return 0.0
    mean = r * q
    width = _WINDOW_SDS * math.sqrt(r * q * (1.0 - q)) + _WINDOW_PAD
    lo = max(0, math.floor(mean - width))
    hi = min(v - 1, math.ceil(mean + width))
    if lo > hi:
        # All of 0..v-1 lies far below the bulk: alpha <= P[B < v] (i >= 1), itself negligible; using the
        # upper bound keeps the p-value conservative.
        return float(special.bdtr(v - 1, r, q))
    j = np.arange(lo, hi + 1, dtype=float)
    log_pmf = (
        special.gammaln(r + 1.0)
        - special.gammaln(j + 1.0)
        - special.gammaln(r - j + 1.0)
        + j * log_q
        + (r - j) * log_1mq
    )
    pmf = np.exp(log_pmf)
    upper_sums = np.cumsum(pmf[::-1])[::-1]  # upper_sums[t] = sum of pmf over j[t]..hi
    return float(np.max(upper_sums / (v - j)))


def _p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Unchecked :func:`p_value`."""
    if v == 0:
        return 1.0
    q = float(special.expit(epsilon))
    beta = float(special.betainc(v, r - v + 1, q))  # P[Binomial(r, q) >= v]
    if delta == 0.0 or beta >= 1.0:
        return min(1.0, beta)
    log_q = -math.log1p(math.exp(-epsilon))
    log_1mq = -epsilon + log_q
    return min(1.0, beta + 2.0 * m * delta * _alpha(r, v, q, log_q, log_1mq))


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of the null hypothesis "the algorithm is (epsilon, delta)-DP" after a one-run audit.

    Args:
        m: number of canaries (each included independently with probability 1/2).
        r: number of guesses made (``0 <= r <= m``).
        v: number of correct guesses (``0 <= v <= r``).
        epsilon: the epsilon of the null hypothesis (>= 0).
        delta: the delta of the null hypothesis, in ``[0, 1)``.

    Returns:
        ``min(1, beta + alpha * delta * 2m)`` (see the module docstring); 1 when ``v = 0``.

    Raises:
        ValueError: on non-integer or inconsistent counts, or epsilon / delta out of range.
    """
    m, r, v = _check_counts(m, r, v)
    return _p_value(m, r, v, _check_epsilon(epsilon), check_delta(delta))


# ------------------------------------------------------------------------------------------- lower bound


def _pure_bound(r: int, v: int, level: float) -> float:
    """Largest eps with ``P[Binomial(r, q(eps)) >= v] <= level`` (the delta = 0 bound), or 0 if none."""
    if v == 0 or float(special.betainc(v, r - v + 1, 0.5)) > level:
        return 0.0
    q = float(special.betaincinv(v, r - v + 1, level))
    one_minus_q = float(special.betaincinv(r - v + 1, v, 1.0 - level))  # I_x(a, b) = 1 - I_{1-x}(b, a)
    if q <= 0.5:
        eps = math.log(q) - math.log1p(-q)
    else:
        eps = math.log1p(-one_minus_q) - math.log(one_minus_q)
    eps = max(0.0, eps)
    # Guard against round-off in the inversion: only ever report an epsilon that is verifiably rejected.
    step = 1e-12 * max(1.0, eps)
    while eps > 0.0 and float(special.betainc(v, r - v + 1, float(special.expit(eps)))) > level:
        eps = max(0.0, eps - step)
        step *= 2.0
    return eps


@functools.lru_cache(maxsize=65536)
def _lower_bound(m: int, r: int, v: int, delta: float, level: float, tol: float) -> float:
    eps_hi = _pure_bound(r, v, level)
    if delta == 0.0 or eps_hi == 0.0:
        return eps_hi
    if _p_value(m, r, v, 0.0, delta) > level:
        return 0.0
    if _p_value(m, r, v, eps_hi, delta) <= level:
        return eps_hi
    eps_lo = 0.0  # invariant: p(eps_lo) <= level < p(eps_hi)
    while eps_hi - eps_lo > tol:
        mid = 0.5 * (eps_lo + eps_hi)
        if _p_value(m, r, v, mid, delta) <= level:
            eps_lo = mid
        else:
            eps_hi = mid
    return eps_lo


def epsilon_lower_bound(
    m: int,
    r: int,
    v: int,
    *,
    delta: float,
    confidence: float = 0.95,
    tol: float = DEFAULT_TOLERANCE,
) -> float:
    """One-run epsilon lower bound: the largest epsilon whose :func:`p_value` is <= ``1 - confidence``.

    Args:
        m: number of canaries.
        r: number of guesses.
        v: number of correct guesses.
        delta: the delta at which epsilon is bounded, in ``[0, 1)``.
        confidence: confidence of the bound, in ``(0, 1)``.
        tol: precision of the bisection used when ``delta > 0`` (the ``delta = 0`` bound is exact up to
            float round-off). The value returned is always one whose p-value was checked, so the bound
            errs low by at most ``tol``.

    Returns:
        The lower bound (>= 0); 0 when even epsilon = 0 is not rejected.
    """
    m, r, v = _check_counts(m, r, v)
    delta = check_delta(delta)
    level = 1.0 - check_confidence(confidence)
    return _lower_bound(m, r, v, delta, level, _check_tolerance(tol))


# ----------------------------------------------------------------------------------------------- the audit


def guesses_per_side(m: int, fraction: float) -> int:
    """``k+ = k- = max(1, round(fraction * m / 2))`` (round half up), at most ``m // 2``."""
    return min(m // 2, max(1, math.floor(fraction * m / 2.0 + 0.5)))


@dataclass(frozen=True)
class OneRunAudit:
    """Result of :func:`one_run_audit`.

    Attributes:
        epsilon_low: the reported epsilon lower bound (the best over the guess fractions tried, each at a
            Bonferroni-corrected confidence, so the maximum holds at ``confidence``).
        n_canaries: ``m``.
        n_guesses: ``r = k_pos + k_neg`` of the reported guess fraction.
        n_correct: ``v``, correct guesses of the reported guess fraction.
        k_pos: number of "in" guesses (highest scores) of the reported guess fraction.
        k_neg: number of "out" guesses (lowest scores) of the reported guess fraction.
        max_detectable: the bound this audit would have reported had every guess been correct: the largest
            epsilon an audit of this size can ever show. A claimed epsilon above it cannot be refuted.
        confidence: the overall confidence of ``epsilon_low``.
        delta: the delta at which epsilon is bounded.
        guess_fraction: the guess fraction that gave ``epsilon_low``.
    """

    epsilon_low: float
    n_canaries: int
    n_guesses: int
    n_correct: int
    k_pos: int
    k_neg: int
    max_detectable: float
    confidence: float
    delta: float
    guess_fraction: float

    def can_detect(self, epsilon: float) -> bool:
        """Whether an audit of this size could show an epsilon above ``epsilon`` at all."""
        return self.max_detectable > epsilon


def checked_canaries(
    scores: Sequence[float] | np.ndarray, included: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One score (not NaN) and one boolean membership per canary, at least 2: as arrays, or a ValueError."""
    scores_arr = np.asarray(scores, dtype=float)
    included_arr = np.asarray(included)
    if scores_arr.ndim != 1 or included_arr.ndim != 1:
        raise ValueError("scores and included must be one-dimensional")
    if scores_arr.shape != included_arr.shape:
        raise ValueError(
            f"scores and included differ in length: {scores_arr.shape[0]} != {included_arr.shape[0]}"
        )
    if included_arr.dtype != np.bool_:
        raise ValueError(f"included must be boolean, got dtype {included_arr.dtype}")
    if scores_arr.shape[0] < 2:
        raise ValueError(f"a one-run audit needs at least 2 canaries, got {scores_arr.shape[0]}")
    if np.isnan(scores_arr).any():
        raise ValueError("scores contain NaN")
    return scores_arr, included_arr


def checked_fractions(guess_fractions: Sequence[float]) -> tuple[float, ...]:
    """The guess fractions, each in ``(0, 1]``, at least one: as a tuple, or a ValueError."""
    fractions = tuple(check_fraction(f) for f in guess_fractions)
    if not fractions:
        raise ValueError("guess_fractions must not be empty")
    return fractions


def one_run_audit(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    guess_fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS,
    tie_break_seed: int = 0,
    tol: float = DEFAULT_TOLERANCE,
) -> OneRunAudit:
    """Audit one training run from its canaries' scores and their true membership.

    For each fraction ``f`` in ``guess_fractions`` the audit guesses "in" for the ``k = max(1, round(f*m/2))``
    highest-scoring canaries and "out" for the ``k`` lowest (rounding half up, ``k <= m // 2``), counts the
    correct guesses ``v`` and computes :func:`epsilon_lower_bound` at confidence
    ``1 - (1 - confidence) / len(guess_fractions)``; the best of these bounds is reported, which by the
    Bonferroni inequality holds at ``confidence``.

    Ties among scores are broken by a random order of the canaries drawn from ``tie_break_seed``, independent
    of the membership bits, so that neither the input order nor any other property of the data leaks into the
    guesses (the theorem allows guesses that use independent randomness).

    Args:
        scores: one finite-or-infinite (not NaN) score per canary, higher = more likely included.
        included: the true membership of each canary, a boolean array (each canary must have been included
            independently with probability 1/2 for the bound to be valid).
        delta: the delta at which epsilon is bounded, in ``[0, 1)``.
        confidence: overall confidence of the reported bound, in ``(0, 1)``.
        guess_fractions: shares of the canaries guessed on (each in ``(0, 1]``), half at each end.
        tie_break_seed: seed of the random order that breaks ties among scores.
        tol: precision of the bisection used when ``delta > 0``.

    Raises:
        ValueError: on mismatched lengths, fewer than 2 canaries, non-boolean ``included``, NaN scores,
            or parameters out of range.
    """
    scores_arr, included_arr = checked_canaries(scores, included)
    m = scores_arr.shape[0]
    delta = check_delta(delta)
    confidence = check_confidence(confidence)
    tol = _check_tolerance(tol)
    fractions = checked_fractions(guess_fractions)
    seed = check_number("tie_break_seed", tie_break_seed, "[0, inf)", integer=True)

    level = (1.0 - confidence) / len(fractions)
    best: tuple[float, int, int, float] | None = None
    max_detectable = 0.0
    for fraction, k, v in guess_counts(scores_arr, included_arr, fractions, tie_break_seed=seed):
        r = 2 * k
        eps = _lower_bound(m, r, v, delta, level, tol)
        if best is None or eps > best[0]:
            best = (eps, k, v, fraction)
        max_detectable = max(max_detectable, _lower_bound(m, r, r, delta, level, tol))
    assert best is not None
    eps, k, v, fraction = best
    return OneRunAudit(
        epsilon_low=eps,
        n_canaries=m,
        n_guesses=2 * k,
        n_correct=v,
        k_pos=k,
        k_neg=k,
        max_detectable=max_detectable,
        confidence=confidence,
        delta=delta,
        guess_fraction=fraction,
    )


def guess_counts(
    scores: np.ndarray, included: np.ndarray, fractions: Sequence[float], *, tie_break_seed: int = 0
) -> list[tuple[float, int, int]]:
    """``(fraction, k, v)`` for each guess fraction: ``k`` guesses per side ("in" for the ``k`` highest
    scores, "out" for the ``k`` lowest; ties in a seeded random order independent of membership) and
    ``v`` of the ``2k`` guesses correct. (Inputs already checked by the caller.)"""
    m = len(scores)
    tie_order = np.random.default_rng(tie_break_seed).permutation(m)
    order = np.lexsort((tie_order, scores))  # ascending by score (the last key is the primary one)
    sorted_in = included[order]
    correct_out = np.cumsum(~sorted_in)  # correct "out" guesses among the k lowest, for every k
    correct_in = np.cumsum(sorted_in[::-1])  # correct "in" guesses among the k highest
    out = []
    for fraction in fractions:
        k = guesses_per_side(m, fraction)
        out.append((fraction, k, int(correct_in[k - 1] + correct_out[k - 1])))
    return out


# ------------------------------------------------------------------------------------------------- power


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
    claim = _check_epsilon(claim)
    delta = check_delta(delta)
    level = (1.0 - check_confidence(confidence)) / len(checked_fractions(guess_fractions))
    thresholds = []
    for fraction in checked_fractions(guess_fractions):
        r = 2 * guesses_per_side(m, fraction)
        if _lower_bound(m, r, r, delta, level, tol) <= claim:
            continue  # even r correct guesses of this fraction cannot refute the claim
        lo, hi = 0, r  # the smallest v whose bound exceeds the claim: bound(hi) > claim >= bound(lo) or lo = 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _lower_bound(m, r, mid, delta, level, tol) > claim else (mid, hi)
        thresholds.append((r, hi))
    return power_at(thresholds, claim, power)


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
    return _lower_bound(m, r, r, delta, level, tol)


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
    epsilon = _check_epsilon(epsilon)
    delta = check_delta(delta)
    level = 1.0 - check_confidence(confidence)
    fraction = check_fraction(guess_fraction)
    max_canaries = check_number("max_canaries", max_canaries, "[2, inf)", integer=True)
    tol = _check_tolerance(tol)

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
