"""The verdict on a differential-privacy claim from one run's canaries: which reading decides it, and
what the audit could have caught.

A claim is an (epsilon, delta) guarantee or a mu-Gaussian-DP one. Each is decided by the one-run reading
that is valid for it and tightest on it:

- (epsilon, delta): the Steinke-Nasr-Jagielski bound (:mod:`pytest_privacy.stats.one_run`). The f-DP test
  against the (epsilon, delta) curve is valid too, but it is no tighter (randomized response, the
  worst case for that curve, meets both bounds alike: ``tests/statistical/test_one_run_fdp.py``), so the
  older bound stays the verdict and the Gaussian reading is reported beside it.
- mu-GDP (a Gaussian mechanism's own claim, as opacus's GDP accountant or a DP-SGD analysis in mu
  states it): the f-DP test against the Gaussian curve (:mod:`pytest_privacy.stats.one_run_fdp`), about twice
  the mu the (epsilon, delta) bounds show on the same guesses.

FAIL: the canaries prove more privacy loss than claimed. INCONCLUSIVE: even perfect guesses could not
(the audit is too small), or the canaries cannot have left a trace. PASS otherwise, with the audit's
power: the smallest randomized-response epsilon at which it refutes the claim half the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..results import DPAuditResult, Verdict
from .checks import check_delta, check_epsilon_claim, check_number
from .one_run import one_run_audit
from .one_run_fdp import (
    FDPAudit,
    InverseBlowup,
    claim_curve,
    detectable_epsilon,
    gdp_epsilon,
    needed_canaries,
    one_run_fdp_audit,
)
from .one_run_power import detectable_epsilon as snj_detectable_epsilon
from .one_run_power import needed_canaries as snj_needed_canaries

__all__ = ["DISPLAY_DELTA", "DPClaim", "judge_dp_claim"]

#: The delta at which a mu claim's epsilon is shown when the claim names none.
DISPLAY_DELTA = 1e-5


@dataclass(frozen=True)
class DPClaim:
    """A claim under audit: ``mu``-GDP, or (``epsilon``, ``delta``)-DP."""

    epsilon: float  # for a mu claim, the epsilon it means at ``delta``
    delta: float
    mu: float | None = None

    @classmethod
    def of(cls, *, epsilon: object = None, delta: object = None, mu: object = None) -> DPClaim:
        """The claim the arguments state, or a ValueError saying what is missing or contradictory."""
        if mu is not None:
            if epsilon is not None:
                raise ValueError(
                    "a claim is (epsilon, delta)-DP or Gaussian DP, not both: pass epsilon= and delta=, or mu= alone "
                    "(a mu-GDP mechanism's epsilon follows from mu at any delta)."
                )
            mu_value = check_number("mu", mu, "(0, inf)", why="the mu of the Gaussian-DP claim")
            shown = DISPLAY_DELTA if delta is None else check_delta(delta)
            if shown == 0.0:
                raise ValueError(
                    "a Gaussian-DP mechanism has no finite epsilon at delta 0: give delta > 0 to show its epsilon "
                    "at (or leave delta out: 1e-5)."
                )
            return cls(gdp_epsilon(mu_value, shown), shown, mu_value)
        if epsilon is None:
            raise ValueError("no claim given: pass epsilon= and delta= for (epsilon, delta)-DP, or mu= for Gaussian DP.")
        if delta is None:
            raise ValueError("an (epsilon, delta) claim needs its delta (delta=0 for pure DP).")
        return cls(check_epsilon_claim(epsilon), check_delta(delta))

    def text(self) -> str:
        """The claim as reports write it."""
        if self.mu is not None:
            return f"{self.mu:g}-GDP (epsilon {self.epsilon:.3g} at delta {self.delta:g})"
        return f"({self.epsilon:g}, {self.delta:g})-DP"

    def curve(self) -> InverseBlowup:
        """The claim's trade-off curve (its inverse blow-up)."""
        return claim_curve(epsilon=self.epsilon, delta=self.delta, mu=self.mu)


@dataclass(frozen=True)
class _Reading:
    """What the deciding bound found, in the claim's own terms (``name`` is epsilon or mu)."""

    label: str
    name: str
    proven: float
    ceiling: float  # what perfect guesses would have proven
    limit: float
    n_guesses: int
    n_correct: int
    epsilon_low: float
    max_detectable: float
    power: float
    needed: Callable[[], int]  # canaries that could test the claim (ValueError: none could)


def _deciding(run: Any, claim: DPClaim, fdp: FDPAudit, confidence: float) -> _Reading:
    if claim.mu is not None:
        return _Reading(
            "f-DP (Gaussian curve)", "mu", fdp.mu_low, fdp.max_mu, claim.mu, fdp.n_guesses, fdp.n_correct,
            gdp_epsilon(fdp.mu_low, claim.delta), gdp_epsilon(fdp.max_mu, claim.delta),
            detectable_epsilon(fdp.n_canaries, claim.curve(), confidence=confidence),
            lambda: needed_canaries(claim.curve(), confidence=confidence),
        )
    audit = one_run_audit(run.scores, run.included, delta=claim.delta, confidence=confidence)
    return _Reading(
        "Steinke-Nasr-Jagielski", "epsilon", audit.epsilon_low, audit.max_detectable, claim.epsilon,
        audit.n_guesses, audit.n_correct, audit.epsilon_low, audit.max_detectable,
        snj_detectable_epsilon(audit.n_canaries, claim.epsilon, delta=claim.delta, confidence=confidence),
        lambda: snj_needed_canaries(claim.epsilon, delta=claim.delta, confidence=confidence),
    )


def judge_dp_claim(run: Any, claim: DPClaim, *, confidence: float) -> DPAuditResult:
    """The verdict on ``claim`` from a canary run (``scores``, ``included`` and, when known, why the
    canaries left no trace, ``no_trace``); recording and raising are the caller's."""
    fdp = one_run_fdp_audit(run.scores, run.included, delta=claim.delta, confidence=confidence)
    d = _deciding(run, claim, fdp, confidence)
    m = fdp.n_canaries
    if d.proven > d.limit:
        verdict = Verdict.FAIL
        reason = (
            f"claim violated: the canaries prove {d.name} >= {d.proven:.3f} > {d.limit:g} at {confidence:.0%} "
            f"({d.n_correct} of {d.n_guesses} guesses right)"
        )
    elif d.ceiling <= d.limit:
        verdict = Verdict.INCONCLUSIVE
        try:
            more = f"testing this claim needs >= {d.needed():,} canaries"
        except ValueError:  # delta's term caps every one-run bound: no number of canaries reaches this claim
            more = f"no number of canaries lets a one-run audit test {claim.text()}"
        reason = (
            f"cannot detect a violation: with {m} canaries even perfect guesses prove at most {d.name} >= "
            f"{d.ceiling:.3f} <= {d.limit:g}; {more}"
        )
    elif getattr(run, "no_trace", None):
        verdict = Verdict.INCONCLUSIVE
        reason = (
            f"{run.no_trace}; {d.name} >= {d.proven:.3f} proven is no evidence for the claim: check that the "
            "training function trains on the data it is given"
        )
    else:
        verdict = Verdict.PASS
        power_text = (
            "no power to refute it" if math.isinf(d.power) else
            f"refutes the claim at least half the time only when the canaries leak like randomized response at "
            f"epsilon >= {d.power:.2f}, and that with best-case canaries (real ones are less memorable)"
        )
        reason = (
            f"no violation found: {d.name} >= {d.proven:.3f} proven, <= {d.limit:g}. Its power: with {m} canaries "
            f"this audit {power_text}; it finds false claims, it cannot prove a claim true"
        )
    return DPAuditResult(
        verdict=verdict, reason=reason, variant=getattr(run, "description", "canaries"), epsilon_claim=claim.epsilon,
        delta=claim.delta, mu_claim=claim.mu, reading=d.label, confidence=confidence, epsilon_low=d.epsilon_low,
        max_detectable=d.max_detectable, epsilon_detectable=d.power, n_canaries=m, n_guesses=d.n_guesses,
        n_correct=d.n_correct, accountant_epsilon=getattr(run, "accountant_epsilon", None),
        seed=getattr(run, "seed", None), seconds=getattr(run, "seconds", None), gdp_mu_low=fdp.mu_low,
        gdp_epsilon_low=gdp_epsilon(fdp.mu_low, claim.delta), data_id=getattr(run, "data_id", None),
    )
