"""The membership gates: TPR at FPR (one attack or a family), AUC and epsilon, and the measure-only
helper. Each checks its arguments before any attack runs, runs the gate through :mod:`.running` (its
trials, looks and families), records the result, and acts on the verdict as :mod:`.policy` says.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..attacks.registry import get_attack
from ..attacks.runner import attack_scores
from ..data import MembershipData, as_membership_data
from ..report import record_result
from ..results import AttackResult
from ..stats.checks import (
    check_delta,
    check_gate_args,
    check_max_auc,
    check_max_epsilon,
    check_rate,
)
from ..stats.gates import auc_gate, epsilon_gate, gate, measure
from ..stats.pooled import pooled_gate
from .policy import (
    OnInconclusive,
    confidence_or_default,
    enforce,
    enforce_family,
    hint_for,
    policy_or_default,
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

__all__ = ["assert_auc_below", "assert_epsilon_below", "assert_tpr_at_fpr_below", "measure_attack"]


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
        return enforce(results[0], policy, f"TPR at FPR {fprs[0]:g} must be <= {max_tpr:g}", hint=hint_for(data))
    return enforce_family(results, policy, max_tpr=max_tpr, fprs=fprs, hint=hint_for(data))


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
    return enforce(
        r, policy, f"AUC must be <= {max_auc:g} (got {r.auc:.4f} [{r.auc_low:.4f}, {r.auc_high:.4f}])", hint=hint_for(data)
    )


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
    return enforce(r, policy_or_default(None), f"epsilon must be <= {max_epsilon:g}", hint=hint_for(data))
