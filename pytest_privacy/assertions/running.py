"""How a gate is run: its trials (one target, or a recipe's models pooled), its looks at more
references (``n_references="auto"``, stopping when no later look can decide) and families (Holm)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..attacks.default import default_attack
from ..attacks.registry import get_attack
from ..attacks.runner import attack_scores, recipe_scores
from ..data import MembershipData
from ..report.records import attack_record
from ..results import (
    AttackResult,
    GateResult,
    GaussianFit,
    Verdict,
)
from ..stats.gates import fail_p_value, gate, holm
from ..stats.intervals import clopper_pearson, nonmembers_needed
from ..stats.looks import look_confidence
from ..stats.pooled import pooled_fail_p_value, pooled_gate
from .policy import GaussianFitWarning

__all__ = ["diagnosis", "recorded", "adaptively", "as_requested", "attack_for", "decided", "family", "fixed_audit", "trials", "undecidable"]


def as_requested(r: AttackResult, attack: Any) -> AttackResult:
    """``r`` marked as the default gate when the test named no attack: stored runs identify it by
    that request, since the default differs with the references at hand."""
    return r.model_copy(update={"default_attack": True}) if attack is None else r


def attack_for(attack: str | None, data: MembershipData) -> str:
    """``attack``, or when the test named none the default for ``data``'s references (each look of
    an ``n_references="auto"`` audit picks its own)."""
    return default_attack(data) if attack is None else attack


def trials(
    model: Any, data: MembershipData, attack: str, attack_options: Mapping[str, Any] | None
) -> tuple[np.ndarray, np.ndarray, str, int | None]:
    """``(scores, is_member, variant, queries)`` of a TPR gate: ``[N]`` for one target, or ``[K, N]``
    pooled over every model of a recipe audit (``data.recipe``) when the attack scores what the audit
    kept (logits; a language model's log-likelihoods). Label-only attacks and Min-K%++ (the next-token
    spread) query the target model itself, so a recipe audit judges them on it alone."""
    if data.recipe is not None and get_attack(attack).pools and not attack_options:
        scores, member, variant = recipe_scores(data, attack)
        return scores, member, f"{variant}; recipe audit of {len(scores)} models", None
    scores, variant, queries = attack_scores(model, data, attack, attack_options=attack_options)
    return scores, data.is_member, variant, queries


def fixed_audit(data: MembershipData) -> MembershipData:
    """The audit a helper that cannot be INCONCLUSIVE uses: ``data``, or under
    ``n_references="auto"`` the look at :data:`~pytest_privacy.stats.looks.FIXED_LOOK` references (the
    ``ci`` profile's count): nothing to look again for."""
    return data if data.adaptive is None else data.adaptive.fixed()


def decided(results: list[Any]) -> bool:
    """Whether a look settled the gate: a leak proven, or every member of the family passed."""
    return any(r.verdict is Verdict.FAIL for r in results) or all(r.verdict is Verdict.PASS for r in results)


def adaptively(
    judge: Callable[[MembershipData, float], list[AttackResult]], data: MembershipData, confidence: float,
    *, same_attack: bool = False,
) -> list[AttackResult]:
    """``judge(data, confidence)``, or, for an ``n_references="auto"`` audit, the first look of
    :data:`~pytest_privacy.stats.looks.AUTO_SCHEDULE` that decides (each judged at its share of the
    error, :func:`~pytest_privacy.stats.looks.look_confidence`), its results saying how many references
    were trained and why the looks stopped. Before training more references it asks whether a later
    look could decide at all (:func:`undecidable`: the audit's counts, or a named attack's score
    grid, which references do not change); when none can, the looks stop there and say why and what
    would decide. Stopping only drops looks, so the error spent is at most the full plan's."""
    if data.adaptive is None:
        return judge(data, confidence)
    looks = data.adaptive.looks()
    stuck = None
    for i, (m, share, audit) in enumerate(looks):
        results = judge(audit(), look_confidence(confidence, share))
        if decided(results) or i == len(looks) - 1:
            break
        later = look_confidence(confidence, max(share for _, share, _ in looks[i + 1 :]))
        stuck = undecidable(results, later, same_attack=same_attack)
        if stuck:
            break
    why = "decided" if decided(results) else stuck or "still inconclusive at the most planned"
    seen = ", ".join(str(n) for n, _, _ in looks[: i + 1])
    note = (
        f"; auto references: {m} after looks at {seen} ({why}), this look at confidence "
        f"{look_confidence(confidence, share):.4g} ({share:.0%} of the error, spent over {len(looks)} planned looks)"
    )
    return [r.model_copy(update={"variant": r.variant + note}) for r in results]


def undecidable(results: list[AttackResult], later: float, *, same_attack: bool) -> str | None:
    """Why no later look can decide ``results``' undecided TPR gates, or None. ``later`` is the
    confidence of the most lenient look still planned. Two reasons, each beyond what references change:

    - the counts: with ``n`` non-members not even zero false positives certify FPR <= fpr (FAIL is out
      of reach), and with ``m`` members not even zero members above a threshold bound the TPR by
      ``max_tpr`` (PASS is out of reach);
    - the score's grid, when the later looks run the same attack: its top score is shared by several
      points that already exceed the FPR (RMIA's share of Z population points; a gap attack's two values).
    """
    undecided = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if not undecided or any(r.gate != "tpr_at_fpr" for r in undecided):
        return None
    reasons = [_out_of_reach(r, later, same_attack=same_attack) for r in undecided]
    if any(reason is None for reason in reasons):
        return None
    return (
        f"more references cannot decide, so none were trained beyond this look: {reasons[0]}; what would: more "
        "audit points, a finer score (for RMIA, more population points: --privacy-population), another attack, "
        "or the recipe audit"
    )


def _out_of_reach(r: AttackResult, later: float, *, same_attack: bool) -> str | None:
    if r.audit == "model":
        needed = nonmembers_needed(r.fpr, later)
        _, tpr_ceiling = clopper_pearson(0, r.n_members, later)
        if r.n_nonmembers < needed and tpr_ceiling > r.max_tpr:
            return (
                f"{r.n_nonmembers:,} non-members cannot certify FPR <= {r.fpr:g} (that needs {needed:,}), and "
                f"{r.n_members:,} members cannot bound TPR <= {r.max_tpr:g} (at best {tpr_ceiling:.4f})"
            )
    if same_attack and r.point_scores is not None and not np.isfinite(r.threshold):
        scores, member = r.point_scores.arrays()
        top = scores == scores.max()
        if top.sum() > 1 and (~member & top).sum() > r.fpr * (~member).sum():
            return f"{r.attack}'s scores are too coarse to reach FPR {r.fpr:g}: {r.reason.split(' (breaking')[0]}"
    return None


def family(
    model: Any, data: MembershipData, attacks: list[str], fprs: list[float], max_tpr: float, confidence: float,
    attack_options: Mapping[str, Any] | None,
) -> list[AttackResult]:
    """Every (attack, fpr) of a family judged together, Holm over the family (see
    :func:`assert_tpr_at_fpr_below`); not yet recorded."""
    alpha, k = 1.0 - confidence, len(attacks) * len(fprs)
    members = []
    for attack in attacks:
        started = time.perf_counter()
        scores, member, variant, queries = trials(model, data, attack, attack_options)
        p_value = pooled_fail_p_value if scores.ndim == 2 else fail_p_value
        for f in fprs:
            p = p_value(scores, member, fpr=f, max_tpr=max_tpr)
            members.append((attack, f, scores, member, variant, queries, started, p))
    rejected = holm([m[-1] for m in members], alpha)
    fits = {attack: diagnosis(attack, data, confidence) for attack in dict.fromkeys(attacks)}  # once per attack
    order = sorted(range(k), key=lambda i: members[i][-1])
    results = []
    for i, (attack, f, scores, member, variant, queries, started, _) in enumerate(members):
        # A rejected member is shown at the Holm level that rejected it (where its gate FAILs); the
        # others at the Bonferroni level (where none can FAIL, and a PASS holds for the family).
        level = alpha / (k - order.index(i)) if rejected[i] else alpha / k
        g = (pooled_gate if scores.ndim == 2 else gate)(scores, member, fpr=f, max_tpr=max_tpr, confidence=1.0 - level)
        described = f"{variant}; family of {k}, Holm"
        results.append(recorded(g, attack, described, data, queries, scores, started, is_member=member, fit=fits[attack]))
    return results


def diagnosis(attack: str, data: MembershipData, confidence: float) -> GaussianFit | None:
    """The attack's own check of its model of the scores, when it has one (LiRA: does the Gaussian
    model of its references fit?), warning with the points that violate it most when it does not.
    It reads the references only, so one check serves every gate of the attack on this audit."""
    spec = get_attack(attack)
    if spec.diagnose is None or data.references is None:
        return None
    fit = spec.diagnose(data.references, data.y, confidence)
    if fit is not None and fit.rejected:
        warnings.warn(
            GaussianFitWarning(
                f"{attack}: the Gaussian model of the reference scores does not fit this audit (p = {fit.p_value:.2g} "
                f"over {fit.n_points} points; the points that violate it most: {fit.worst}). The verdict's bounds hold "
                "for any scores, but LiRA may rank members less well than it could, so a PASS is weaker evidence: "
                "train more references, use a shrunk variance (lira_shrunk), or add an attack that assumes no "
                "shape (rmia_ratio)"
            ),
            stacklevel=4,
        )
    return fit


_CHECK = object()  # recorded(): run the attack's check here


def recorded(
    g: GateResult, attack: str, variant: str, data: MembershipData, queries: int | None, scores: np.ndarray,
    started: float, *, is_member: np.ndarray | None = None, fit: Any = _CHECK,
) -> AttackResult:
    """The gate's result record (:func:`~pytest_privacy.report.records.attack_record`) with the
    attack's check of its model of the scores (:func:`diagnosis`, at the gate's confidence, unless
    the caller ran it once for several gates and passes its ``fit``)."""
    r = attack_record(g, attack, variant, data, queries, scores, started, is_member=is_member)
    if fit is _CHECK:
        fit = diagnosis(attack, data, g.confidence)
    return r if fit is None else r.model_copy(update={"gaussian_fit": fit})
