"""The recorded result of an attack gate: the gate's numbers with the thinned ROC curve and its
bands, the most exposed records (content-hashed, thumbnails for images) and the scores kept for
pointwise comparison across releases."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from ..data import MembershipData
from ..data.querying import model_inputs
from ..results import (
    AttackResult,
    GateResult,
    PointScores,
    VulnerablePoint,
)
from ..stats.epsilon import epsilon_lower_bound
from ..stats.intervals import clopper_pearson
from ..stats.roc import roc_counts
from .thumbnails import is_image, png_data_uri

__all__ = ["attack_record", "record_key"]


_TOP_POINTS = 10


_ROC_POINTS = 200


def attack_record(
    gate_result: GateResult, attack: str, variant: str, data: MembershipData, queries: int | None,
    scores: np.ndarray, started: float, *, is_member: np.ndarray | None = None,
) -> AttackResult:
    """The recorded result: the gate, the thinned ROC curve with its bands, the most exposed points,
    and the epsilon lower bound at delta 0 (unless the caller computed it). ``scores [K, N]`` with
    ``is_member [K, N]`` are a recipe audit's pooled trials (model k's score of point n): its ROC is
    the pooled one, its most exposed points distinct points, and it carries no iid epsilon bound."""
    pooled = scores.ndim == 2
    flat = scores.ravel()
    member = (is_member if pooled else data.is_member).ravel()
    point = np.arange(flat.size) % len(data)  # the audit point each trial scores
    ranked = point[np.argsort(-flat, kind="stable")]
    _, first = np.unique(ranked, return_index=True)  # a point's best-ranked trial only
    top = np.argsort(-flat, kind="stable")[np.sort(first)[:_TOP_POINTS]]
    refs = data.references
    c = roc_counts(flat, member)
    fpr_curve, tpr_curve = c.fps / c.n_nonmembers, c.tps / c.n_members
    # Thin the curve evenly in log-FPR (how the LiRA paper plots it), keeping both ends.
    keep = np.unique(np.r_[0, np.searchsorted(fpr_curve, np.geomspace(1e-5, 1, _ROC_POINTS)).clip(max=len(fpr_curve) - 1), len(fpr_curve) - 1])
    low, high = clopper_pearson(c.tps[keep], c.n_members, gate_result.confidence)
    epsilon_low = gate_result.epsilon_low
    if epsilon_low is None and not pooled:  # reported beside every verdict (an epsilon gate computed its own)
        epsilon_low = epsilon_lower_bound(scores, data.is_member, confidence=gate_result.confidence)
    return AttackResult(
        **gate_result.model_dump(exclude={"epsilon_low"}),
        attack=attack,
        variant=variant,
        queries=queries,
        epsilon_low=epsilon_low,
        seconds=time.perf_counter() - started,
        audit="recipe" if pooled else "model",
        n_models=scores.shape[0] if pooled else 1,
        most_vulnerable=[
            VulnerablePoint(
                index=int(point[i]), label=int(data.y[point[i]]), score=float(flat[i]), member=bool(member[i]),
                key=record_key(data.x[point[i]], data.y[point[i]]),
                thumbnail=png_data_uri(data.x[point[i]]) if is_image(data.x[point[i]]) else None,
            )
            for i in top
        ],
        point_scores=(
            PointScores.of(data.audit_id, scores, data.is_member)
            if not pooled and scores.size <= _PAIRED_MAX_POINTS else None
        ),
        roc_fpr=fpr_curve[keep].tolist(),
        roc_tpr=tpr_curve[keep].tolist(),
        roc_tpr_low=np.atleast_1d(low).tolist(),
        roc_tpr_high=np.atleast_1d(high).tolist(),
        n_references=0 if refs is None else refs.n_references,
        seed=None if refs is None else refs.seed,
        data_id=data.data_id,
    )


# Beyond this many audit points a report would carry megabytes of scores: such gates are compared
# across releases by their intervals only.
_PAIRED_MAX_POINTS = 200_000


def record_key(x: np.ndarray, y: Any) -> str:
    """A record's content hash (its input's bytes and its label): how stored runs name vulnerable
    records without carrying them."""
    h = hashlib.sha256(np.ascontiguousarray(model_inputs(x)).tobytes())
    h.update(str(int(y)).encode())
    return h.hexdigest()[:16]
