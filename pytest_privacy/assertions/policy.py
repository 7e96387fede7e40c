"""What a gate's verdict does: the errors it raises, the session's defaults for an undecided
verdict and for the confidence, and the message a person reads."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, NamedTuple

from ..report.summary import dp_power, dp_proven
from ..results import (
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    Verdict,
)
from ..stats.checks import (
    check_confidence,
)
from ..strict import unknown_name_error

__all__ = ["GaussianFitWarning", "enforce_baseline", "enforce_family", "DP_HINT", "HINT", "OnInconclusive", "PrivacyInconclusiveError", "PrivacyInconclusiveWarning", "PrivacyLeakError", "confidence_or_default", "describe_attack", "describe_dp", "enforce", "gate_defaults", "policy_or_default", "set_inconclusive_default"]


OnInconclusive = Literal["fail", "warn", "skip", "xfail"]


class _GateDefaults(NamedTuple):
    inconclusive: OnInconclusive
    confidence: float


# What helpers use when a call leaves on_inconclusive/confidence unset: the session's settings,
# and inside a test that test's own (the plugin sets them per test, ``@pytest.mark.privacy`` included).
_defaults: ContextVar[_GateDefaults] = ContextVar("pytest_privacy_gate_defaults", default=_GateDefaults("fail", 0.95))


HINT = (
    "what to try: regularise (weight decay, fewer epochs, early stopping, augmentation), train on "
    "more data, or train with the MMD+mixup defense; then look at the most vulnerable points for "
    "duplicates and mislabels."
)
LM_HINT = (
    "what to try: fewer epochs or a lower learning rate, LoRA instead of a full fine-tune, deduplicate the "
    "training texts (repeated texts are memorised first), scrub or mask the PII before fine-tuning, or "
    "fine-tune with DP-SGD; then look at the most vulnerable texts."
)


class PrivacyLeakError(AssertionError):
    """A gate proved a leak (verdict FAIL). Use ``xfail(raises=PrivacyLeakError)`` for known leaks."""


class PrivacyInconclusiveError(AssertionError):
    """A gate could not decide and inconclusive results are set to ``fail`` (the default)."""


class GaussianFitWarning(UserWarning):
    """LiRA's Gaussian model of the reference scores does not fit an audit: its readings at low FPR
    may be off (the result's ``gaussian_fit`` holds the check)."""


class PrivacyInconclusiveWarning(UserWarning):
    """A privacy gate could not decide; emitted when inconclusive results are set to ``warn``."""


_POLICIES = ("fail", "warn", "skip", "xfail")


def _check_policy(policy: object) -> None:
    # A typo must never fall through to a lenient branch (``"fial"`` once meant xfail).
    if policy not in _POLICIES:
        raise ValueError(f"on_inconclusive: {unknown_name_error('policy', str(policy), list(_POLICIES))}")


def set_inconclusive_default(policy: OnInconclusive) -> None:
    """What helpers do with an INCONCLUSIVE verdict when ``on_inconclusive`` is not given
    (the plugin sets it from ``--privacy-inconclusive``)."""
    _check_policy(policy)
    _defaults.set(_defaults.get()._replace(inconclusive=policy))


@contextmanager
def gate_defaults(*, inconclusive: OnInconclusive, confidence: float) -> Iterator[None]:
    """Within the block, helpers called without ``on_inconclusive``/``confidence`` use these
    (the plugin wraps each test in its own resolved settings)."""
    _check_policy(inconclusive)
    token = _defaults.set(_GateDefaults(inconclusive, check_confidence(confidence)))
    try:
        yield
    finally:
        _defaults.reset(token)


def confidence_or_default(confidence: float | None) -> float:
    """``confidence`` checked, or the test's (the session's) confidence when it is None."""
    return _defaults.get().confidence if confidence is None else check_confidence(confidence)


def policy_or_default(on_inconclusive: OnInconclusive | None) -> OnInconclusive:
    """``on_inconclusive`` checked, or the test's (the session's) policy when it is None."""
    if on_inconclusive is None:
        return _defaults.get().inconclusive
    _check_policy(on_inconclusive)
    return on_inconclusive


def describe_attack(r: AttackResult) -> str:
    """An attack gate's numbers as its failure message shows them: attack, TPR with its interval, limit, audit."""
    return (
        f"{r.attack} ({r.variant}) TPR {r.tpr:.4f} [{r.confidence:.0%} CI {r.tpr_low:.4f}, "
        f"{r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f} (<= {r.fpr_high:.4f}); limit: {_limit(r)}\n"
        f"  audit: {r.n_members:,} members, {r.n_nonmembers:,} non-members, "
        f"{r.n_references} reference models, AUC {r.auc:.3f}, seed {r.seed}"
    )


def _limit(r: AttackResult) -> str:
    if r.gate == "auc":
        return f"AUC <= {r.max_auc:g} (AUC {r.auc:.4f} [{r.confidence:.0%} CI {r.auc_low:.4f}, {r.auc_high:.4f}])"
    if r.gate == "epsilon":
        return f"epsilon <= {r.max_epsilon:g} (epsilon >= {r.epsilon_low:.3f})"
    return f"TPR <= {r.max_tpr:g} at FPR {r.fpr:g}"


def enforce(r: Any, policy: OnInconclusive, what: str, *, describe: Any = None, hint: str = HINT) -> Any:
    """Act on ``r``'s verdict: raise ``PrivacyLeakError`` for a FAIL, apply ``policy`` to an INCONCLUSIVE
    (raise, warn, skip or xfail), return ``r`` otherwise; ``what`` says what had to hold."""
    described = (describe or describe_attack)(r)
    if r.verdict is Verdict.FAIL:
        raise PrivacyLeakError(f"privacy leak: {what}\n  {described}\n  {r.reason}\n  {hint}")
    if r.verdict is Verdict.INCONCLUSIVE:
        message = f"privacy gate inconclusive: {what}\n  {described}\n  {r.reason}"
        if policy == "fail":
            raise PrivacyInconclusiveError(message + "\n  (set --privacy-inconclusive=warn|skip|xfail to not fail)")
        if policy == "warn":
            warnings.warn(message, PrivacyInconclusiveWarning, stacklevel=3)
        else:
            import pytest  # only reached under pytest

            (pytest.skip if policy == "skip" else pytest.xfail)(message)
    return r


def hint_for(data: Any) -> str:
    """What to try after a leak, for the kind of model ``data`` audits (a language model's texts, or a classifier's points)."""
    return LM_HINT if getattr(data, "text", None) is not None else HINT


DP_HINT = (
    "what commonly breaks a DP claim: the optimizer never made private (no noise, no clipping), noise "
    "scaled to the wrong batch size or multiplier, clipping disabled or applied to the batch instead of "
    "each example, shuffled batches accounted as Poisson sampling, or an accountant run with other "
    "settings than training"
)


def describe_dp(r: DPAuditResult) -> str:
    """A DP audit's numbers as its failure message shows them: the bound, its reading, power, canaries."""
    accountant = f", the accountant's target epsilon {r.accountant_epsilon:g}" if r.accountant_epsilon else ""
    gdp = (
        f"; read as Gaussian DP: mu >= {r.gdp_mu_low:.3f}, epsilon >= {r.gdp_epsilon_low:.3f} at delta {r.delta:g}"
        if r.gdp_mu_low and r.mu_claim is None else ""
    )
    return (
        f"one-run audit ({r.variant}, {r.reading} bound): {dp_proven(r)} at {r.confidence:.0%} "
        f"({dp_power(r)}){accountant}{gdp}, {r.n_canaries} canaries, seed {r.seed}"
    )


def enforce_family(
    results: list[AttackResult], policy: OnInconclusive, *, max_tpr: float, fprs: list[float], hint: str = HINT
) -> list[AttackResult]:
    """:func:`enforce` for a family of TPR gates (Holm over its members): a leak any member proved
    raises with every failing member's numbers; else an undecided member is handled by ``policy``."""
    k = len(results)
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    ran = ", ".join(dict.fromkeys(r.attack for r in results))
    what = f"TPR must be <= {max_tpr:g} at FPR {', '.join(f'{f:g}' for f in fprs)} for {ran}"
    if failed:
        lines = "\n  ".join(describe_attack(r) for r in failed)
        raise PrivacyLeakError(
            f"privacy leak: {what} (a family of {k}, Holm-corrected)\n  {lines}\n  {failed[0].reason}\n  {hint}"
        )
    undecided = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if undecided:
        enforce(undecided[0], policy, f"{what} (a family of {k}: every member must pass)")
    return results


def enforce_baseline(r: ComparisonResult) -> ComparisonResult:
    """A FAIL of a baseline comparison raises with both models' TPR and accuracy side by side (a
    baseline that leaks less by being useless is no yardstick); else ``r``."""
    if r.verdict is not Verdict.FAIL:
        return r
    raise PrivacyLeakError(
        f"more vulnerable than the baseline: {r.attack} ({r.variant}) at FPR {r.fpr:g}\n"
        f"                 TPR      accuracy\n"
        f"  this model     {r.tpr:.4f}   {r.accuracy:.3f}\n"
        f"  baseline       {r.tpr_baseline:.4f}   {r.accuracy_baseline:.3f}   ({r.baseline})\n"
        f"  difference {r.tpr_diff:+.4f} [{r.confidence:.0%} CI {r.diff_low:+.4f}, {r.diff_high:+.4f}] > margin "
        f"{r.margin:g}: {r.reason}\n"
        f"  audit: {r.n_members:,} members, {r.n_nonmembers:,} non-members, seed {r.seed}\n  {HINT}"
    )
