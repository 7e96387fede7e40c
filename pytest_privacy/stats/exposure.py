"""Canary exposure (Carlini et al., "The Secret Sharer", 2019) with exact bounds, and its verdict.

A canary is a format with a random secret ``s`` from a space ``R``; the model's log-likelihood of the
canary text with each candidate secret ranks them. ``exposure = log2 |R| - log2 rank(s)``:
``log2 |R|`` bits when the model ranks the true secret first, about 1 bit when it has learnt nothing.

- **Enumerated** (every candidate scored, ``|R| <= 10^6``): ``rank`` is the number of candidates
  scoring at least the secret's (ties against the secret, so the exposure is never overstated), and
  the exposure is exact.
- **Sampled** (``n`` candidates drawn uniformly from ``R``): ``exposure = -log2 Pr_r[ll(r) >= ll(s)]``.
  The count ``c`` of sampled candidates at or above the secret is Binomial(n, p) with that ``p``, so
  the Clopper-Pearson interval on ``p`` gives exact bounds on the exposure,
  ``[-log2 p_high, -log2 p_low]``; the point estimate extrapolates past ``1/n`` with a skew-normal
  fitted to the sampled log-likelihoods, as the paper does, and is said to be an estimate.

The verdict on "exposure <= max_exposure": FAIL when the lower bound exceeds it, PASS when the upper
bound is at most it, otherwise INCONCLUSIVE with the number of samples that could decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..results import Verdict
from .checks import check_confidence, check_number
from .intervals import clopper_pearson

__all__ = ["Exposure", "exposure", "exposure_verdict", "planted_exposure_verdict"]


@dataclass(frozen=True)
class Exposure:
    """A canary's exposure in bits: ``estimate`` within ``[low, high]`` at ``confidence`` (equal when
    every candidate was scored), ``above`` candidates of ``n_candidates`` scoring at least the secret."""

    estimate: float
    low: float
    high: float
    above: int
    n_candidates: int
    space_size: int
    enumerated: bool
    confidence: float
    method: str


def exposure(
    secret_ll: float, candidate_ll: np.ndarray, *, space_size: int, enumerated: bool, confidence: float = 0.95
) -> Exposure:
    """The exposure of a secret whose canary has log-likelihood ``secret_ll`` among candidates with
    ``candidate_ll``: all of ``R`` but the secret (``enumerated``), or a uniform sample from ``R``."""
    ll = np.asarray(candidate_ll, dtype=np.float64)
    space_size = check_number("space_size", space_size, "[2, inf)", integer=True)
    check_confidence(confidence)
    if ll.ndim != 1 or ll.size == 0 or not np.isfinite(ll).all() or not math.isfinite(secret_ll):
        raise ValueError("candidate log-likelihoods must be a non-empty 1-D array of finite numbers, and the secret's finite.")
    above = int((ll >= secret_ll).sum())
    if enumerated:
        if ll.size != space_size - 1:
            raise ValueError(
                f"an enumerated exposure scores every other candidate of the space: {space_size - 1} expected, got {ll.size}."
            )
        bits = math.log2(space_size) - math.log2(above + 1)  # rank = 1 + candidates at or above the secret
        return Exposure(bits, bits, bits, above, int(ll.size), space_size, True, confidence, "exact rank among every candidate")
    n = int(ll.size)
    p_low, p_high = clopper_pearson(above, n, confidence)
    low = -math.log2(float(p_high))
    high = math.log2(space_size) if p_low <= 0 else min(math.log2(space_size), -math.log2(float(p_low)))
    method = f"{n:,} sampled candidates: exact bounds from their count, the estimate from a fitted skew-normal"
    try:
        if np.ptp(ll) == 0:  # no spread to fit a distribution to
            raise RuntimeError("the sampled log-likelihoods are all equal")
        shape, loc, scale = stats.skewnorm.fit(ll)
        tail = float(stats.skewnorm.sf(secret_ll, shape, loc, scale))
        estimate = min(math.log2(space_size), -math.log2(tail)) if tail > 0 else math.log2(space_size)
    except RuntimeError as exc:  # scipy's FitError is one: say so, and estimate from the count instead
        estimate = -math.log2((above + 0.5) / (n + 1))
        method = f"{n:,} sampled candidates: exact bounds from their count, the estimate from the count too (no tail fit: {exc})"
    estimate = min(max(estimate, low), max(high, low))  # an estimate outside its own exact bounds is not kept
    return Exposure(estimate, low, max(high, low), above, n, space_size, False, confidence, method)


def exposure_verdict(e: Exposure, *, max_exposure: float) -> tuple[Verdict, str]:
    """FAIL when the exposure's lower bound exceeds ``max_exposure`` bits, PASS when its upper bound is
    at most it, else INCONCLUSIVE, saying how many sampled candidates could decide."""
    max_exposure = check_number("max_exposure", max_exposure, "[0, inf)", why="bits")
    if e.low > max_exposure:
        return Verdict.FAIL, f"the secret is exposed: >= {e.low:.2f} bits > {max_exposure:g} ({e.method})"
    if e.high <= max_exposure:
        return Verdict.PASS, f"exposure <= {e.high:.2f} bits, within {max_exposure:g} ({e.method})"
    # c at or above the secret among n: the upper bound on p falls below 2^-max only when n grows
    needed = _samples_to_certify(max_exposure, e.confidence)
    return Verdict.INCONCLUSIVE, (
        f"exposure in [{e.low:.2f}, {e.high:.2f}] bits straddles {max_exposure:g}; with no candidate at or above "
        f"the secret, {needed:,} sampled candidates would prove it above {max_exposure:g} bits ({e.method})"
    )


def _samples_to_certify(bits: float, confidence: float) -> int:
    """Fewest samples whose Clopper-Pearson upper bound on ``p`` with none at or above the secret
    is below ``2^-bits``: ``1 - (alpha/2)^(1/n) < 2^-bits``."""
    alpha = (1.0 - confidence) / 2.0
    target = 2.0 ** -bits
    return max(1, math.ceil(math.log(alpha) / math.log1p(-target)))


def planted_exposure_verdict(
    exposures: list[Exposure], *, max_exposure: float, confidence: float
) -> tuple[Verdict, str, float]:
    """``(verdict, reason, p_value)`` on "no canary the model trained on is exposed beyond
    ``max_exposure`` bits", over the ``exposures`` of those canaries.

    PASS when every canary's exposure is at most ``max_exposure`` (its upper bound, exact when every
    candidate was scored). FAIL when one's lower bound exceeds it and chance cannot explain it: for a
    model that never saw a secret, its rank is uniform over the space, so an exposure of at least
    ``e`` bits has chance at most ``2^-e``; over ``k`` canaries, ``p = min(1, k 2^-e)`` (Bonferroni) for the
    most exposed, and FAIL needs ``p <= 1 - confidence``. INCONCLUSIVE otherwise, saying which space
    would decide."""
    max_exposure = check_number("max_exposure", max_exposure, "[0, inf)", why="bits")
    check_confidence(confidence)
    if not exposures:
        raise ValueError("no canary was trained on: plant more canaries (each is included with probability 1/2).")
    k = len(exposures)
    worst = max(exposures, key=lambda e: e.low)
    p = min(1.0, k * 2.0 ** -worst.low)
    if all(e.high <= max_exposure for e in exposures):
        return Verdict.PASS, (
            f"no canary exposed beyond {max_exposure:g} bits: the most exposed of {k} reaches {max(e.high for e in exposures):.2f} "
            f"of {math.log2(worst.space_size):.1f} possible"
        ), p
    if worst.low > max_exposure and p <= 1.0 - confidence:
        return Verdict.FAIL, (
            f"a secret is exposed: {worst.low:.2f} bits > {max_exposure:g} (its rank {worst.above + 1:,} of "
            f"{worst.space_size:,} candidates); chance gives that to one of {k} canaries with p <= {p:.2g}"
        ), p
    return Verdict.INCONCLUSIVE, (
        f"the most exposed of {k} canaries reaches {worst.low:.2f} bits, above {max_exposure:g} but within what chance gives "
        f"one of {k} (p={p:.2g}); secrets from a space of more than {math.log2(k / (1 - confidence)) + max_exposure:.1f} bits "
        "would decide it (longer secrets)"
        if worst.low > max_exposure else
        f"exposures straddle {max_exposure:g} bits (bounds from sampled candidates); score more candidates"
    ), p

