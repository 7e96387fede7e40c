"""Release against release: is the model under test provably more vulnerable than a baseline?"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..attacks.runner import attack_scores
from ..data import Baseline, MembershipData, as_membership_data
from ..data.querying import label_oracle
from ..report import record_result
from ..results import ComparisonResult
from ..stats.checks import check_margin, check_rate
from ..stats.comparisons import baseline_verdict, paired_tpr_comparison
from .policy import confidence_or_default, enforce_baseline
from .running import attack_for, fixed_audit

__all__ = ["assert_no_more_vulnerable_than"]


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
