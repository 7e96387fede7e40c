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
``log(r / log(1/(1 - confidence)))``, so showing a large epsilon needs many canaries (:func:`~pytest_privacy.stats.one_run_power.needed_canaries`);
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
    "check_epsilon",
    "check_fraction",
    "check_tolerance",
    "checked_fractions",
    "epsilon_lower_bound",
    "guess_counts",
    "guesses_per_side",
    "lower_bound",
    "one_run_audit",
    "p_value",
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


def check_epsilon(epsilon: object) -> float:
    return check_number("epsilon", epsilon, "[0, inf)")


def check_fraction(fraction: object) -> float:
    """A guess fraction: the share of canaries guessed on, in (0, 1]."""
    return check_number("guess fractions", fraction, "(0, 1]")


def check_tolerance(tol: object) -> float:
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
    return _p_value(m, r, v, check_epsilon(epsilon), check_delta(delta))


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
def lower_bound(m: int, r: int, v: int, delta: float, level: float, tol: float) -> float:
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
    return lower_bound(m, r, v, delta, level, check_tolerance(tol))


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
    tol = check_tolerance(tol)
    fractions = checked_fractions(guess_fractions)
    seed = check_number("tie_break_seed", tie_break_seed, "[0, inf)", integer=True)

    level = (1.0 - confidence) / len(fractions)
    best: tuple[float, int, int, float] | None = None
    max_detectable = 0.0
    for fraction, k, v in guess_counts(scores_arr, included_arr, fractions, tie_break_seed=seed):
        r = 2 * k
        eps = lower_bound(m, r, v, delta, level, tol)
        if best is None or eps > best[0]:
            best = (eps, k, v, fraction)
        max_detectable = max(max_detectable, lower_bound(m, r, r, delta, level, tol))
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
