"""Audit the recipe, not one draw of it: the TPR-at-FPR gate on the trials of many target models.

Train ``K`` models of one recipe on balanced halves of the data (every point a member of about half
of them), score every point under every model (each model in turn the target, the others its
references) and pool the ``K x N`` membership trials. With 17 models and 1,797 digits that is about
15,000 non-member trials instead of 900: enough to decide a gate at FPR 1e-3, which one model's
audit can never certify (:func:`pytest_privacy.metrics.nonmembers_needed` is 3,688 at 95%).

The pooled trials are not independent: the trials of one model share its weights, and the trials of
one point share the point (a vulnerable outlier is found by every model that trained on it; an
atypical non-member is flagged by most models that did not). :func:`pooled_gate` therefore bounds the
pooled rates with a cluster-aware interval; treating the trials as independent (``metrics.gate`` on
the flattened arrays) makes intervals several times too narrow and proves leaks that are not there.

Pure numpy/scipy: no torch, no pytest.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

from ..results import GateResult, Verdict
from .checks import check_gate_args, check_score_values
from .gates import inverted_reason
from .intervals import auc_confidence_interval, clopper_pearson, nonmembers_needed
from .levels import Rate, decide, fail_levels
from .roc import RocCounts, operating_index, roc_area, roc_counts

__all__ = ["MIN_EVENTS", "DesignEffects", "pooled_design_effects", "pooled_fail_p_value", "pooled_gate"]

# Below this many events (or non-events) at a threshold a design effect is estimated from a handful
# of clusters; such thresholds get at least the design effect of the nearest one with enough.
MIN_EVENTS = 20


class DesignEffects(NamedTuple):
    """Two-way cluster-robust design effects of the pooled FPR and TPR at every threshold of the
    pooled ROC (index ``i`` is ``counts.thresholds[i]``, the first ``+inf``)."""

    counts: RocCounts
    fpr: np.ndarray
    tpr: np.ndarray


def _check_pooled(scores: object, is_member: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``[K, N]`` scores and membership; a ValueError that names the fix."""
    s, m = np.asarray(scores), np.asarray(is_member)
    if s.ndim != 2 or m.ndim != 2:
        raise ValueError(
            f"scores and is_member must be 2-D arrays [K models, N points], got shapes {s.shape} and {m.shape}; "
            "stack one row per target model (for a single model use metrics.gate)."
        )
    if s.shape != m.shape:
        raise ValueError(
            f"scores {s.shape} and is_member {m.shape} must have the same shape [K models, N points]: "
            "row k holds model k's score and membership of every point."
        )
    if s.shape[0] < 2:
        raise ValueError(f"pooling needs K >= 2 target models, got {s.shape[0]}; for a single model use metrics.gate.")
    if s.shape[1] < 2:
        raise ValueError(f"every model needs N >= 2 audit points, got {s.shape[1]}.")
    s, m = check_score_values(s, m)
    per_model = m.sum(axis=1)
    lacking = np.flatnonzero((per_model == 0) | (per_model == m.shape[1]))
    if lacking.size:
        raise ValueError(
            f"model(s) {lacking[:5].tolist()} have only members or only non-members; every target model needs "
            "both: train each on a random half of the points (balanced_keep)."
        )
    return s, m


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """How many earlier entries of ``groups`` belong to each entry's group."""
    # A stable sort of small unsigned integers is a radix sort in numpy: linear, not n log n.
    key = groups.astype(np.uint16) if groups.max(initial=0) < 2**16 else groups
    order = np.argsort(key, kind="stable")
    g = groups[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    ranked = np.arange(g.size) - np.repeat(start, np.diff(np.r_[start, g.size]))
    rank = np.empty_like(ranked)
    rank[order] = ranked
    return rank


def _cluster_sum(cluster: np.ndarray, n_clusters: int, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``sum_c (y_c - p n_c)^2`` at every threshold, for one side's cells in score order.

    ``cluster`` is each cell's model or point, ``y`` the side's events at each threshold (the first
    ``y`` cells), ``p = y / n`` and ``n_c`` the cluster's cells. Expanded as ``sum y_c^2 - 2 p sum
    y_c n_c + p^2 sum n_c^2``, each sum a cumulative one: a cell entering raises ``y_c^2`` by ``2 y_c + 1``.
    """
    n_c = np.bincount(cluster, minlength=n_clusters).astype(np.float64)
    squares = np.r_[0.0, np.cumsum(2.0 * _rank_in_group(cluster) + 1.0)][y]
    cross = np.r_[0.0, np.cumsum(n_c[cluster])][y]
    return squares - 2 * p * cross + p * p * float((n_c**2).sum())


def _design_effects(s: np.ndarray, m: np.ndarray, c: RocCounts) -> tuple[Rate, Rate]:
    n_models, n_points = s.shape
    flat_s, flat_m = s.ravel(), m.ravel()
    order = np.argsort(-flat_s, kind="mergesort")  # roc_counts' order: the same cells at every threshold
    model, point = np.divmod(order, n_points)
    member = flat_m[order]
    # Only K model clusters: their variance is itself uncertain (a t with K - 1 degrees of freedom, not
    # a normal), so that component is scaled by the squared ratio of the two-sided 95% quantiles.
    small_k = n_models / (n_models - 1) * (stats.t.ppf(0.975, n_models - 1) / stats.norm.ppf(0.975)) ** 2
    sides = []
    for cells, counts, total in ((~member, c.fps, c.n_nonmembers), (member, c.tps, c.n_members)):
        p = counts / total
        s_model = _cluster_sum(model[cells], n_models, counts, p) * small_k
        s_point = _cluster_sum(point[cells], n_points, counts, p) * n_points / (n_points - 1)
        s_cell = total * p * (1 - p)  # each cell is one trial: the binomial variance (x n^2)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (s_model + s_point - s_cell) / s_cell  # Cameron-Gelbach-Miller over the binomial
        d = np.where(np.isfinite(d), np.maximum(d, 1.0), 1.0)
        enough = np.flatnonzero((counts >= MIN_EVENTS) & (total - counts >= MIN_EVENTS))
        if enough.size:  # the rare ends borrow from their nearest well-estimated threshold
            first, last = enough[0], enough[-1]
            d[:first] = np.maximum(d[:first], d[first])
            d[last + 1 :] = np.maximum(d[last + 1 :], d[last])
        sides.append(Rate(counts, total, d))
    return sides[0], sides[1]


def pooled_design_effects(scores: object, is_member: object) -> DesignEffects:
    """The design effects :func:`pooled_gate` uses: at every threshold, the two-way cluster-robust
    variance of the pooled FPR (and TPR) over the binomial one, at least 1 (see :func:`pooled_gate`)."""
    s, m = _check_pooled(scores, is_member)
    c = roc_counts(s.ravel(), m.ravel())
    fp, tp = _design_effects(s, m, c)
    return DesignEffects(c, fp.deff, tp.deff)


# ------------------------------------------------------------------ envelopes of the bounds, for the report


def _lowest_lower(side: Rate, start: int, confidence: float, chunk: int = 256) -> float:
    """``min`` of the lower bound over threshold ``start`` and every lower one, without computing all:
    the lower end rises with ``k`` and falls with ``deff``, so a chunk's first count at its largest
    design effect bounds the whole chunk from below, and chunks that cannot beat the best are skipped."""
    k, d = side.k[start:], side.deff[start:]
    first = np.arange(0, k.size, chunk)
    d_max = np.maximum.reduceat(d, first)
    floor = np.atleast_1d(clopper_pearson(k[first] / d_max, side.n / d_max, confidence)[0])
    best = math.inf
    for i in np.argsort(floor, kind="stable"):
        if floor[i] >= best:
            break
        part = slice(start + first[i], start + first[i] + chunk)
        best = min(best, float(side.bounds(part, confidence)[0].min()))
    return best


def _highest_upper(side: Rate, stop: int, confidence: float) -> float:
    """``max`` of the upper bound over threshold ``stop`` and every higher one."""
    return float(side.bounds(slice(0, stop + 1), confidence)[1].max())


def _lowest_lowers(side: Rate, index: np.ndarray, confidence: float) -> np.ndarray:
    """:func:`_lowest_lower` at each of the increasing ``index``: exact over their span, pruned below."""
    lo, hi = int(index[0]), int(index[-1])
    span = side.bounds(slice(lo, hi + 1), confidence)[0]
    env = np.minimum.accumulate(span[::-1])[::-1]
    if hi + 1 < len(side.k):
        env = np.minimum(env, _lowest_lower(side, hi + 1, confidence))
    return env[index - lo]


class _Pooled(NamedTuple):
    """The pooled evidence: counts, design effects, operating point and AUC."""

    counts: RocCounts
    fp: Rate
    tp: Rate
    n_models: int
    n_points: int
    fpr: float
    confidence: float
    operating: int
    area: float
    auc99: tuple[float, float]

    @classmethod
    def of(cls, scores: object, is_member: object, fpr: float, confidence: float) -> _Pooled:
        s, m = _check_pooled(scores, is_member)
        c = roc_counts(s.ravel(), m.ravel())
        fp, tp = _design_effects(s, m, c)
        area = roc_area(c)
        # Worst case for the AUC's interval: a point's trials all alike, so one trial per point.
        n_points = s.shape[1]
        auc99 = auc_confidence_interval(area, min(c.n_members, n_points), min(c.n_nonmembers, n_points), 0.99)
        return cls(c, fp, tp, s.shape[0], n_points, fpr, confidence, operating_index(c, fpr), area, auc99)

    @property
    def inverted(self) -> str | None:
        """Why the scores cannot be judged, when their pooled AUC is clearly below 0.5."""
        return inverted_reason(self.area, self.auc99, what="pooled AUC")

    @property
    def where(self) -> str:
        return f"cluster-aware bound over {self.n_models} models x {self.n_points:,} points"

    def result(self, verdict: Verdict, reason: str, *, at: int, members_above: bool, max_tpr: float) -> GateResult:
        """The GateResult at threshold ``at`` with the envelope bounds the decision used (TPR fields
        one threshold higher with ``members_above``: the members scoring above a PASS witness)."""
        c, conf, tp_at = self.counts, self.confidence, at - 1 if members_above else at
        return GateResult(
            verdict=verdict,
            reason=reason,
            fpr=self.fpr,
            max_tpr=max_tpr,
            confidence=conf,
            tpr=float(c.tps[tp_at] / c.n_members),
            tpr_low=_lowest_lower(self.tp, tp_at, conf),
            tpr_high=_highest_upper(self.tp, tp_at, conf),
            fpr_achieved=float(c.fps[at] / c.n_nonmembers),
            fpr_low=_lowest_lower(self.fp, at, conf),
            fpr_high=_highest_upper(self.fp, at, conf),
            threshold=float(c.thresholds[at]),
            tpr_at_fpr=float(c.tps[self.operating] / c.n_members),
            n_members=c.n_members,
            n_nonmembers=c.n_nonmembers,
            auc=self.area,
            auc_low=self.auc99[0],
            auc_high=self.auc99[1],
        )


def pooled_gate(
    scores: object,
    is_member: object,
    *,
    fpr: float,
    max_tpr: float,
    confidence: float = 0.95,
) -> GateResult:
    """:func:`pytest_privacy.stats.gates.gate` on the pooled trials of ``K`` target models of one recipe.

    ``scores`` and ``is_member`` are ``[K, N]``: row ``k`` is target model ``k``'s membership scores
    and memberships of the same ``N`` points. One threshold is applied to all of them (the recipe's
    attack, not a per-model one); ``n_members``/``n_nonmembers`` count pooled trials. The claim, the
    verdicts and the result fields are those of ``metrics.gate``: **FAIL** when some threshold has
    ``fpr_high <= fpr`` and ``tpr_low > max_tpr``; **PASS** when some threshold has ``fpr_low > fpr``
    and the members scoring above it have ``tpr_high <= max_tpr``; **INCONCLUSIVE** otherwise, when no
    finite threshold reaches ``fpr``, or when the pooled AUC is clearly below 0.5. Only the bounds
    differ.

    The argument (why the error rate holds): ``docs/statistics.md``, "The pooled gate of a recipe audit".
    """
    fpr, max_tpr, confidence = check_gate_args(fpr, max_tpr, confidence)
    e = _Pooled.of(scores, is_member, fpr, confidence)
    c, fp, tp, alpha = e.counts, e.fp, e.tp, 1.0 - confidence
    pct = f"{confidence:.0%}"
    fail_at, pass_at = decide(fp, tp, fpr, max_tpr, alpha)
    if e.inverted:
        verdict, at, reason = Verdict.INCONCLUSIVE, e.operating, e.inverted
    elif fail_at.size:
        # The strongest proof: the largest TPR lower bound among the thresholds that prove a leak.
        at = int(fail_at[np.argmax(_lowest_lowers(tp, fail_at, confidence))])
        verdict = Verdict.FAIL
        reason = (
            f"leak proven ({e.where}, design effects FPR {fp.deff[at]:.2g}, TPR {tp.deff[at]:.2g}): with {pct} "
            f"confidence the recipe's TPR >= {_lowest_lower(tp, at, confidence):.4f} > max_tpr={max_tpr:g} while "
            f"FPR <= {_highest_upper(fp, at, confidence):.4g} <= {fpr:g}"
        )
    elif e.operating == 0:
        verdict, at = Verdict.INCONCLUSIVE, 0
        reason = (
            f"the pooled scores are too coarse to reach FPR {fpr:g}: the highest of their {len(c.thresholds) - 1} "
            f"distinct values already flags {c.fps[1] / c.n_nonmembers:.2%} of the non-member trials, so no "
            f"threshold can certify a TPR at FPR {fpr:g} ({e.where}); gate this attack at a larger FPR"
        )
    elif pass_at.size:
        # Envelope TPR upper bounds grow with the witness index: the first witness is the tightest.
        verdict, at = Verdict.PASS, int(pass_at[0])
        reason = (
            f"safe ({e.where}, design effects FPR {fp.deff[at]:.2g}, TPR {tp.deff[at - 1]:.2g}): with {pct} "
            f"confidence the recipe's TPR <= {_highest_upper(tp, at - 1, confidence):.4f} <= max_tpr={max_tpr:g} for "
            f"every threshold above {c.thresholds[at]:.4g}, whose FPR >= {_lowest_lower(fp, at, confidence):.4g} > {fpr:g}"
        )
    else:
        verdict, at = Verdict.INCONCLUSIVE, e.operating
        reason = _inconclusive_reason(e, max_tpr)
    return e.result(verdict, reason, at=at, members_above=verdict is Verdict.PASS, max_tpr=max_tpr)


def _inconclusive_reason(e: _Pooled, max_tpr: float) -> str:
    c, fp, tp, at, conf = e.counts, e.fp, e.tp, e.operating, e.confidence
    low, high = _lowest_lower(tp, at, conf), _highest_upper(tp, at, conf)
    parts = [
        (
            f"the {e.where} leaves TPR at FPR {e.fpr:g} in [{low:.4f}, {high:.4f}], containing max_tpr={max_tpr:g} "
            f"(design effects FPR {fp.deff[at]:.2g}, TPR {tp.deff[at]:.2g})"
        )
    ]
    needed = nonmembers_needed(e.fpr, conf) * fp.deff[at]
    if c.n_nonmembers < needed:
        # Every model adds about N / 2 non-member trials; the design effect stays put.
        models = math.ceil(e.n_models * needed / c.n_nonmembers)
        parts.append(
            f"certifying FPR <= {e.fpr:g} needs about {math.ceil(needed):,} non-member trials at this design effect "
            f"(about {models} models); there are {c.n_nonmembers:,}"
        )
    parts.append("more models narrow both bounds")
    return "; ".join(parts)


def pooled_fail_p_value(scores: object, is_member: object, *, fpr: float, max_tpr: float) -> float:
    """The smallest ``1 - confidence`` at which :func:`pooled_gate` FAILs (1.0 when it never does): a
    p-value for "the recipe's TPR <= max_tpr at FPR <= fpr", for a Holm family
    (:func:`pytest_privacy.metrics.holm`). Closed form as :func:`pytest_privacy.metrics.fail_p_value`:
    the design effects do not depend on the confidence, so each threshold's envelope bounds meet
    ``fpr`` and ``max_tpr`` at explicit levels. Scores whose pooled AUC is clearly below 0.5: 1.0.
    """
    fpr, max_tpr, _ = check_gate_args(fpr, max_tpr, 0.95)
    e = _Pooled.of(scores, is_member, fpr, 0.95)
    if e.inverted:
        return 1.0
    return float(min(1.0, np.min(fail_levels(e.fp, e.tp, fpr, max_tpr))))
