"""The ``assert_*`` helpers: run an attack, gate its scores, and fail with a message a person can act on.

Each helper checks its arguments before any attack runs, runs the gate through :mod:`.running` (its
trials, looks and families), records the result built by :mod:`pytest_privacy.report.records`, and
acts on the verdict as :mod:`.policy` says.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..attacks.registry import get_attack
from ..attacks.runner import attack_scores
from ..data import Baseline, MembershipData, as_membership_data
from ..data.querying import label_oracle
from ..report import record_result
from ..results import (
    AttackResult,
    ComparisonResult,
    DPAuditResult,
)
from ..stats.checks import (
    check_delta,
    check_gate_args,
    check_margin,
    check_max_auc,
    check_max_epsilon,
    check_rate,
)
from ..stats.comparisons import baseline_verdict, paired_tpr_comparison
from ..stats.gates import auc_gate, epsilon_gate, gate, measure
from ..stats.pooled import pooled_gate
from .policy import (
    DP_HINT,
    GaussianFitWarning,
    OnInconclusive,
    PrivacyInconclusiveError,
    PrivacyInconclusiveWarning,
    PrivacyLeakError,
    confidence_or_default,
    describe_dp,
    enforce,
    enforce_baseline,
    enforce_family,
    gate_defaults,
    policy_or_default,
    set_inconclusive_default,
)
from .running import (
    adaptively,
    as_requested,
    attack_for,
    family,
    fixed_audit,
    recorded,
    trials,
)

__all__ = [
    "GaussianFitWarning",
    "OnInconclusive",
    "PrivacyInconclusiveError",
    "PrivacyInconclusiveWarning",
    "PrivacyLeakError",
    "assert_auc_below",
    "assert_dp_claim_holds",
    "assert_epsilon_below",
    "assert_no_more_vulnerable_than",
    "assert_tpr_at_fpr_below",
    "gate_defaults",
    "measure_attack",
    "set_inconclusive_default",
]


def assert_tpr_at_fpr_below(
    model: Any,
    data: MembershipData,
    *,
    fpr: float | Sequence[float] = 1e-3,
    max_tpr: float,
    attack: str | Sequence[str] | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> Any:
    """Assert that ``attack`` finds members with TPR at most ``max_tpr`` at FPR ``fpr``.

    ``attack=None`` runs the default for the audit's references (:func:`~pytest_privacy.attacks.
    default.default_attack`: ``lira``, or ``rmia_ratio`` with 4 references or fewer, where RMIA was
    measured stronger); the result names the attack that ran.

    Fails (``AssertionError``) only when a leak is proven at ``confidence``; passes only when safety
    is proven; otherwise the result is INCONCLUSIVE and handled by ``on_inconclusive``
    (default: the session's ``--privacy-inconclusive``, ``fail``). See :func:`metrics.gate`.
    The result is recorded in the session report and returned.

    Several attacks (``attack=["lira", "rmia"]``) or FPR levels (``fpr=[1e-3, 1e-2]``) gate a
    *family*: every pair is judged, a leak is proven only after Holm's correction over the family
    (so trying more attacks does not raise the false-FAIL rate above ``1 - confidence``), PASS needs
    every member to pass at the Bonferroni level, and the list of results is returned.
    """
    data = as_membership_data(data)
    policy = policy_or_default(on_inconclusive)
    attacks: list[str | None] = [attack] if attack is None or isinstance(attack, str) else list(attack)
    fprs = [fpr] if not isinstance(fpr, (list, tuple)) else list(fpr)
    if not attacks or not fprs:
        raise ValueError("attack= and fpr= need at least one value each.")
    confidence = confidence_or_default(confidence)
    fprs = [check_gate_args(f, max_tpr, confidence)[0] for f in fprs]  # every argument before any attack
    for name in attacks:
        if name is not None:
            get_attack(name)  # an unknown name is an error before the first attack runs
    max_tpr = float(max_tpr)

    def judge(d: MembershipData, level: float) -> list[AttackResult]:
        names = [attack_for(name, d) for name in attacks]
        if len(names) * len(fprs) > 1:
            return family(model, d, names, fprs, max_tpr, level, attack_options)
        started = time.perf_counter()
        scores, member, variant, queries = trials(model, d, names[0], attack_options)
        g = (pooled_gate if scores.ndim == 2 else gate)(scores, member, fpr=fprs[0], max_tpr=max_tpr, confidence=level)
        return [recorded(g, names[0], variant, d, queries, scores, started, is_member=member)]

    results = [
        record_result(as_requested(r, attack)) for r in adaptively(judge, data, confidence, same_attack=attack is not None)
    ]
    if len(results) == 1:
        return enforce(results[0], policy, f"TPR at FPR {fprs[0]:g} must be <= {max_tpr:g}")
    return enforce_family(results, policy, max_tpr=max_tpr, fprs=fprs)


def measure_attack(
    model: Any,
    data: MembershipData,
    *,
    fpr: float = 1e-3,
    attack: str | None = None,
    confidence: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Measure ``attack`` on ``model`` with no limit to hold it to: its TPR at the operating point at
    ``fpr`` with the interval, its AUC and epsilon lower bound, recorded in the session's reports with
    the verdict MEASURED, and never raising (a bad argument is still an error). For what a gate would
    only record: a gate whose limit cannot be reached is a PASS that cannot fail.

    ``attack=None`` runs the default for the audit's references; under ``n_references="auto"`` the
    audit at the fixed look's references (nothing decides, so nothing is looked at again).
    """
    data = fixed_audit(as_membership_data(data))
    requested_attack, attack = attack, attack_for(attack, data)
    confidence = confidence_or_default(confidence)
    check_rate("fpr", fpr)
    started = time.perf_counter()
    scores, variant, queries = attack_scores(model, data, attack, attack_options=attack_options)
    g = measure(scores, data.is_member, fpr=fpr, confidence=confidence)
    return record_result(as_requested(recorded(g, attack, variant, data, queries, scores, started), requested_attack))


def assert_auc_below(
    model: Any,
    data: MembershipData,
    *,
    max_auc: float,
    attack: str | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Assert that ``attack``'s ROC AUC is at most ``max_auc`` (Hanley-McNeil interval).

    AUC measures average-case leakage; prefer :func:`assert_tpr_at_fpr_below` for a release
    gate, since attacks that matter are confident on a few points (Carlini et al. 2022).
    ``attack=None`` runs the default for the audit's references, as in :func:`assert_tpr_at_fpr_below`.
    """
    data = as_membership_data(data)
    policy = policy_or_default(on_inconclusive)
    confidence = confidence_or_default(confidence)
    check_max_auc(max_auc)
    if attack is not None:
        get_attack(attack)

    def judge(d: MembershipData, level: float) -> list[AttackResult]:
        started = time.perf_counter()
        name = attack_for(attack, d)
        scores, variant, queries = attack_scores(model, d, name, attack_options=attack_options)
        g = auc_gate(scores, d.is_member, max_auc=max_auc, confidence=level)
        return [recorded(g, name, variant, d, queries, scores, started)]

    r = record_result(as_requested(adaptively(judge, data, confidence)[0], attack))
    return enforce(r, policy, f"AUC must be <= {max_auc:g} (got {r.auc:.4f} [{r.auc_low:.4f}, {r.auc_high:.4f}])")


def assert_epsilon_below(
    model: Any,
    data: MembershipData,
    *,
    max_epsilon: float,
    attack: str | None = None,
    delta: float = 0.0,
    confidence: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Assert that the attack's empirical lower bound on epsilon is at most ``max_epsilon``.

    The bound (:func:`pytest_privacy.stats.epsilon.epsilon_lower_bound`) holds jointly over thresholds at
    ``confidence`` and is valid only for the randomized membership game (each audit point a member
    with probability 1/2, independently, as the plugin's target split is). Exceeding ``max_epsilon``
    proves that no (``max_epsilon``, ``delta``)-DP guarantee can hold: FAIL. It can never prove a
    guarantee, so otherwise the verdict is PASS with the bound reported ("no violation found").
    ``attack=None`` runs the default for the audit's references, as in :func:`assert_tpr_at_fpr_below`.
    """
    data = fixed_audit(as_membership_data(data))
    requested, attack = attack, attack_for(attack, data)
    confidence = confidence_or_default(confidence)
    check_max_epsilon(max_epsilon)
    check_delta(delta)
    started = time.perf_counter()
    scores, variant, queries = attack_scores(model, data, attack, attack_options=attack_options)
    g = epsilon_gate(scores, data.is_member, max_epsilon=max_epsilon, delta=delta, confidence=confidence)
    r = record_result(as_requested(recorded(g, attack, variant, data, queries, scores, started), requested))
    return enforce(r, policy_or_default(None), f"epsilon must be <= {max_epsilon:g}")


def _accuracy(model: Any, data: MembershipData) -> float:
    """Accuracy on the audit's non-members: points the model never trained on."""
    from ..attacks.label_only import (
        QueryCounter,  # batches and validates like every label query
    )

    labels = QueryCounter(label_oracle(model))(data.x[~data.is_member])
    return float((labels == data.y[~data.is_member]).mean())


def assert_no_more_vulnerable_than(
    model: Any,
    baseline: Baseline | Any,
    data: MembershipData,
    *,
    fpr: float,
    margin: float = 0.0,
    attack: str | None = None,
    confidence: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> ComparisonResult:
    """Assert that ``model`` leaks no more than ``baseline``: its TPR at ``fpr`` is not above the
    baseline's by more than ``margin`` beyond statistical noise.

    ``baseline`` is a :class:`~pytest_privacy.data.Baseline` (e.g. the ``mmd_baseline_model``
    fixture: its own references, judged on its ``points``) or a plain model scored with ``data``.
    Both are compared on the same audit points and members, a paired test
    (:func:`pytest_privacy.stats.comparisons.paired_tpr_comparison`: a stratified bootstrap that re-estimates
    both thresholds, whose false-alarm rate is checked by simulation in the tests). It fails
    only when ``model`` is proven more vulnerable; the message puts both models' TPR and accuracy
    side by side, since a baseline that leaks less by being useless is no yardstick.
    ``attack=None`` runs the default for ``data``'s references on both models, as in
    :func:`assert_tpr_at_fpr_below`.
    """
    data = fixed_audit(as_membership_data(data))
    requested, attack = attack, attack_for(attack, data)
    confidence = confidence_or_default(confidence)
    check_rate("fpr", fpr)
    check_margin(margin)
    if isinstance(baseline, Baseline):
        if baseline.points.max(initial=-1) >= len(data):
            raise ValueError(
                f"the baseline covers audit points up to index {int(baseline.points.max())} but data has "
                f"{len(data)}: compare against the membership data of the same data set."
            )
        data = data.subset(baseline.points)
        base_model, base_data, description = baseline.model, baseline.membership_data, baseline.description
        if not np.array_equal(base_data.is_member, data.is_member):
            raise ValueError("the baseline was trained on a different split than data says: train it on the same members.")
    else:
        base_model, base_data, description = baseline, data, type(baseline).__name__
    started = time.perf_counter()
    ours = attack_scores(model, data, attack, attack_options=attack_options)
    theirs = attack_scores(base_model, base_data, attack, attack_options=attack_options)
    seed = 0 if data.references is None or data.references.seed is None else data.references.seed
    c = paired_tpr_comparison(
        ours.scores, theirs.scores, data.is_member, fpr=fpr, margin=margin, confidence=confidence, seed=seed
    )
    refs, base_refs = data.references, base_data.references
    verdict, reason = baseline_verdict(c)
    r = ComparisonResult(
        verdict=verdict, reason=reason,
        attack=attack, variant=ours.variant, fpr=float(fpr), margin=float(margin), confidence=float(confidence),
        tpr=c.tpr, tpr_baseline=c.tpr_baseline, tpr_diff=c.diff, diff_low=c.diff_low, diff_high=c.diff_high,
        p_value=c.p_value, accuracy=_accuracy(model, data), accuracy_baseline=_accuracy(base_model, base_data),
        n_members=c.n_members, n_nonmembers=c.n_nonmembers,
        n_references=0 if refs is None else refs.n_references,
        n_references_baseline=0 if base_refs is None else base_refs.n_references,
        seed=None if refs is None else refs.seed, baseline=description, seconds=time.perf_counter() - started,
        default_attack=requested is None, data_id=data.data_id,
    )
    return enforce_baseline(record_result(r))


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
    :class:`~pytest_privacy.audit.canaries.CanaryRun`, e.g. the ``dp_canary_run`` fixture): an
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
    from ..stats.dp_claim import DPClaim, judge_dp_claim

    claim = DPClaim.of(epsilon=epsilon, delta=delta, mu=mu)
    if not (hasattr(run, "scores") and hasattr(run, "included")):
        raise TypeError(
            f"assert_dp_claim_holds audits a canary run (the dp_canary_run fixture, or "
            f"PrivacyTrainer.canary_run), got {type(run).__name__}."
        )
    policy = policy_or_default(on_inconclusive)
    r = record_result(judge_dp_claim(run, claim, confidence=confidence_or_default(confidence)))
    return enforce(r, policy, f"the claim {claim.text()} must hold", describe=describe_dp, hint=DP_HINT)
