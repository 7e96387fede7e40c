"""A differential-privacy claim audited by one training run's canaries."""

from __future__ import annotations

from typing import Any

from ..report import record_result
from ..results import DPAuditResult
from ..stats.dp_claim import DPClaim, judge_dp_claim
from .policy import (
    DP_HINT,
    OnInconclusive,
    confidence_or_default,
    describe_dp,
    enforce,
    policy_or_default,
)

__all__ = ["assert_dp_claim_holds"]


def assert_dp_claim_holds(
    run: Any,
    *,
    epsilon: float | None = None,
    delta: float | None = None,
    mu: float | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
) -> DPAuditResult:
    """Audit a differential-privacy claim with one training run's canaries (``run``: a
    :class:`~pytest_privacy.audit.canaries.CanaryRun`, e.g. the ``dp_canary_run`` fixture, or a language
    model's :class:`~pytest_privacy.audit.lm_canaries.LMCanaryRun`, each canary scored by its secret's
    log-likelihood; a one-run audit needs hundreds of canaries: ``PrivacyTrainer.lm_canary_run(...,
    repetitions=(1,), per_count=500)``): an
    ``(epsilon, delta)`` claim, by the one-run bound of Steinke, Nasr & Jagielski (2023), or a
    Gaussian-DP claim ``mu=`` (``delta`` then only says where its epsilon is shown, 1e-5 unless given),
    by the f-DP one-run test of Mahloujifar, Melis & Chaudhuri (2025) against its Gaussian curve
    (:mod:`pytest_privacy.stats.dp_claim` says why each).

    FAIL (``PrivacyLeakError``): the canaries prove more than the claim allows, at ``confidence``.
    PASS: they do not, with the audit's power (a PASS never proves the claim: a lower bound only finds
    violations). INCONCLUSIVE: even perfect guesses on these canaries could not refute the claim, or the
    canaries left no trace. The result also carries the Gaussian reading of the same canaries
    (``gdp_mu_low`` and the epsilon it means at ``delta``), valid for Gaussian mechanisms only.
    """
    claim = DPClaim.of(epsilon=epsilon, delta=delta, mu=mu)
    if not (hasattr(run, "scores") and hasattr(run, "included")):
        raise TypeError(
            f"assert_dp_claim_holds audits a canary run (the dp_canary_run or lm_canary_run fixture, or "
            f"PrivacyTrainer.canary_run / lm_canary_run), got {type(run).__name__}."
        )
    policy = policy_or_default(on_inconclusive)
    r = record_result(judge_dp_claim(run, claim, confidence=confidence_or_default(confidence)))
    return enforce(r, policy, f"the claim {claim.text()} must hold", describe=describe_dp, hint=DP_HINT)
