"""The three-way gates on one set of scores: TPR at FPR (the exact gate and its p-value), AUC and
epsilon, Holm over a family, and the reasons an undecided gate gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..results import GateResult, Verdict
from .checks import (
    check_confidence,
    check_delta,
    check_gate_args,
    check_max_auc,
    check_max_epsilon,
    check_rate,
)
from .epsilon import epsilon_bound
from .intervals import auc_confidence_interval, clopper_pearson, nonmembers_needed
from .levels import Rate, decide, fail_levels
from .roc import RocCounts, operating_index, roc_area, roc_counts

__all__ = ["INVERTED_AUC", "auc_gate", "epsilon_gate", "fail_p_value", "gate", "holm", "inverted_reason", "measure"]


# An AUC whose 99% interval lies wholly below this is an input error, not privacy: inverted
# scores or swapped membership labels.
INVERTED_AUC = 0.45


def gate(
    scores: object,
    is_member: object,
    *,
    fpr: float,
    max_tpr: float,
    confidence: float = 0.95,
) -> GateResult:
    """Decide whether membership scores prove a leak, prove safety, or prove nothing.

    The claim under test is "TPR at FPR = ``fpr`` is at most ``max_tpr``". At every threshold we
    bound the false-positive rate and the true-positive rate with two-sided Clopper-Pearson
    intervals at ``confidence`` (``a/2`` in each tail):

    - **FAIL** when some threshold has ``fpr_high <= fpr`` and ``tpr_low > max_tpr``;
    - **PASS** when some threshold ``t_j`` has ``fpr_low > fpr`` and the members scoring strictly
      above it (the count at the next higher threshold ``t_{j-1}``) have ``tpr_high <= max_tpr``:
      every threshold with FPR at most ``fpr`` lies above ``t_j``, so it finds no more members;
      but never when no finite threshold reaches ``fpr`` at all (coarse scores, e.g. a label-only
      gap attack's two values): such an attack says nothing about TPR at ``fpr``, INCONCLUSIVE;
    - **INCONCLUSIVE** otherwise, with the reason, and also whenever the AUC's 99% interval lies
      below 0.45 (inverted scores or swapped labels are an input error, never evidence of privacy).

    The argument (why the error rate holds): ``docs/statistics.md``, "The TPR-at-FPR gate".

    For PASS the reported TPR fields describe the members scoring above ``threshold``
    and the FPR fields the threshold itself.
    """
    fpr, max_tpr, confidence = check_gate_args(fpr, max_tpr, confidence)
    e = _Evidence.of(scores, is_member, fpr, confidence)
    c, fpr_low, fpr_high, tpr_low, tpr_high = e.counts, e.fpr_low, e.fpr_high, e.tpr_low, e.tpr_high
    # The pooled gate's rule at design effect 1. PASS witness j >= 1: t_j's FPR is surely above fpr;
    # the members above t_j are those at t_{j-1}.
    fail_at, pass_at = decide(*e.rates, fpr, max_tpr, 1.0 - confidence)
    pct = f"{confidence:.0%}"
    if fail_at.size:
        verdict, at = Verdict.FAIL, int(fail_at[np.argmax(tpr_low[fail_at])])
        reason = (
            f"leak proven: with {pct} confidence TPR >= {tpr_low[at]:.4f} > max_tpr={max_tpr:g} "
            f"while FPR <= {fpr_high[at]:.4g} <= {fpr:g}"
        )
    elif e.operating == 0:
        # Not one finite threshold reaches fpr: the attack's scores are too coarse to say anything
        # there (a two-valued score's only threshold flags most non-members). Breaking its ties at
        # random would reach fpr with TPR ~ fpr * TPR_1 / FPR_1, which can exceed max_tpr: no PASS.
        verdict, at = Verdict.INCONCLUSIVE, 0
        first_fpr, first_tpr = c.fps[1] / c.n_nonmembers, c.tps[1] / c.n_members
        reason = (
            f"the scores are too coarse to reach FPR {fpr:g}: {len(c.thresholds) - 1} distinct values, the highest "
            f"already flags {first_fpr:.2%} of non-members (and {first_tpr:.2%} of members), so no threshold "
            f"can certify a TPR at FPR {fpr:g} (breaking ties at random would give TPR ~ "
            f"{fpr * first_tpr / max(first_fpr, 1e-12):.4f}); gate this attack at FPR >= {first_fpr:.2g}, or "
            "with assert_auc_below"
        )
    elif pass_at.size:
        verdict, at = Verdict.PASS, int(pass_at[np.argmin(tpr_high[pass_at - 1])])
        reason = (
            f"safe: with {pct} confidence TPR <= {tpr_high[at - 1]:.4f} <= max_tpr={max_tpr:g} for every "
            f"threshold above {c.thresholds[at]:.4g}, whose FPR >= {fpr_low[at]:.4g} > {fpr:g}"
        )
    else:
        verdict, at = Verdict.INCONCLUSIVE, e.operating
        reason = _inconclusive_reason(c, fpr, max_tpr, confidence, tpr_low, tpr_high, fpr_low, fpr_high)
    if e.inverted:
        verdict, at, reason = Verdict.INCONCLUSIVE, e.operating, e.inverted
    return e.result(verdict, reason, at=at, members_above=verdict is Verdict.PASS, max_tpr=max_tpr)


def fail_p_value(scores: object, is_member: object, *, fpr: float, max_tpr: float) -> float:
    """The smallest ``1 - confidence`` at which :func:`gate` FAILs (1.0 when it never does): a
    p-value for "TPR <= max_tpr at FPR <= fpr", since the gate's FAIL errs at most ``1 - confidence``
    at the limit. What a family of gates needs for a Holm correction.

    Closed form, threshold by threshold (:func:`pytest_privacy.stats.levels.fail_levels` at design
    effect 1, the levels :func:`gate` decides by): the two-sided Clopper-Pearson upper FPR bound is ``<= fpr``
    exactly when ``alpha >= 2 * (1 - I_fpr(k + 1, n - k))`` and the lower TPR bound is above
    ``max_tpr`` exactly when ``alpha > 2 * I_max_tpr(t, m - t + 1)`` (``I`` the regularised
    incomplete beta, ``k``/``t`` the false/true positives above the threshold); the gate FAILs at
    the smallest ``alpha`` any threshold meets both at. Scores whose AUC is clearly below 0.5 are
    never judged (as in the gate): 1.0.
    """
    fpr, max_tpr, _ = check_gate_args(fpr, max_tpr, 0.95)
    e = _Evidence.of(scores, is_member, fpr, 0.95)
    if e.inverted:
        return 1.0
    return float(min(1.0, np.min(fail_levels(*e.rates, fpr, max_tpr))))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - step):
            break
        rejected[i] = True
    return rejected


def auc_gate(scores: object, is_member: object, *, max_auc: float, confidence: float = 0.95) -> GateResult:
    """Decide whether the scores' ROC AUC is above ``max_auc`` (FAIL), at most it (PASS), or neither
    provably (INCONCLUSIVE), with the Hanley-McNeil interval at ``confidence``.

    AUC measures average-case leakage: prefer :func:`gate` for a release, since the attacks that
    matter are confident on a few points. As in :func:`gate`, an AUC clearly below 0.5 (inverted
    scores or swapped labels) is INCONCLUSIVE, never PASS. The result's TPR fields are the ROC at
    FPR 1%, for the record.
    """
    max_auc, confidence = check_max_auc(max_auc), check_confidence(confidence)
    e = _Evidence.of(scores, is_member, 0.01, confidence)
    low, high = auc_confidence_interval(e.area, e.counts.n_members, e.counts.n_nonmembers, confidence)
    pct = f"{confidence:.0%}"
    if e.inverted:
        verdict, reason = Verdict.INCONCLUSIVE, e.inverted
    elif low > max_auc:
        verdict, reason = Verdict.FAIL, f"leak proven: AUC >= {low:.4f} > max_auc={max_auc:g} at {pct}"
    elif high <= max_auc:
        verdict, reason = Verdict.PASS, f"safe: AUC <= {high:.4f} <= max_auc={max_auc:g} at {pct}"
    else:
        # The interval's half-width shrinks as 1 / sqrt(n): the points needed to clear the limit.
        gap, n = abs(e.area - max_auc), e.counts.n_members + e.counts.n_nonmembers
        more = (
            f"about {math.ceil(n * ((high - low) / 2 / gap) ** 2):,} audit points would decide it at this AUC "
            f"(now {n:,})" if gap > 0 else "the AUC sits at the limit: no audit size decides it"
        )
        verdict, reason = Verdict.INCONCLUSIVE, (
            f"AUC {e.area:.4f} has interval [{low:.4f}, {high:.4f}] containing max_auc={max_auc:g}; {more}"
        )
    return e.result(verdict, reason, at=e.operating, gate="auc", max_auc=max_auc, auc_low=low, auc_high=high)


def epsilon_gate(
    scores: object, is_member: object, *, max_epsilon: float, delta: float = 0.0, confidence: float = 0.95
) -> GateResult:
    """FAIL when :func:`epsilon_lower_bound` proves epsilon above ``max_epsilon`` (no
    (``max_epsilon``, ``delta``)-DP guarantee can hold), else PASS with the bound reported ("no
    violation found"): a lower bound can refute a guarantee, never certify one. Valid only for the
    randomized membership game (see :func:`epsilon_lower_bound`).
    """
    max_epsilon, delta, confidence = check_max_epsilon(max_epsilon), check_delta(delta), check_confidence(confidence)
    e = _Evidence.of(scores, is_member, 0.01, confidence)
    eps = epsilon_bound(e.counts, delta, confidence)
    verdict = Verdict.FAIL if eps > max_epsilon else Verdict.PASS
    reason = (
        f"epsilon >= {eps:.3f} at delta={delta:g} with {confidence:.0%} confidence "
        + (f"> max_epsilon={max_epsilon:g}" if verdict is Verdict.FAIL else f"<= max_epsilon={max_epsilon:g}: no violation found")
        + " (valid for the randomized membership game)"
    )
    return e.result(verdict, reason, at=e.operating, gate="epsilon", max_epsilon=max_epsilon, epsilon_low=eps)


class _Evidence(NamedTuple):
    """What every gate reports: the counts, Clopper-Pearson bounds at every threshold, the
    empirical operating point at ``fpr`` and the AUC (with its 99% interval)."""

    counts: RocCounts
    fpr: float
    confidence: float
    fpr_low: np.ndarray
    fpr_high: np.ndarray
    tpr_low: np.ndarray
    tpr_high: np.ndarray
    operating: int
    area: float
    auc99: tuple[float, float]

    @classmethod
    def of(cls, scores: object, is_member: object, fpr: float, confidence: float) -> _Evidence:
        c = roc_counts(scores, is_member)
        fpr_low, fpr_high = clopper_pearson(c.fps, c.n_nonmembers, confidence)
        tpr_low, tpr_high = clopper_pearson(c.tps, c.n_members, confidence)
        area = roc_area(c)
        auc99 = auc_confidence_interval(area, c.n_members, c.n_nonmembers, 0.99)
        return cls(c, fpr, confidence, fpr_low, fpr_high, tpr_low, tpr_high, operating_index(c, fpr), area, auc99)

    @property
    def inverted(self) -> str | None:
        """Why the scores cannot be judged, when their AUC is clearly below 0.5."""
        return inverted_reason(self.area, self.auc99)

    @property
    def rates(self) -> tuple[Rate, Rate]:
        """The false- and true-positive rates as independent trials (design effect 1)."""
        c = self.counts
        return Rate.independent(c.fps, c.n_nonmembers), Rate.independent(c.tps, c.n_members)

    def result(self, verdict: Verdict, reason: str, *, at: int, members_above: bool = False, **fields: Any) -> GateResult:
        """The GateResult at threshold index ``at`` (TPR fields one threshold higher with
        ``members_above``: the members scoring strictly above a PASS witness)."""
        c, tp_at = self.counts, at - 1 if members_above else at
        values: dict[str, Any] = {"max_tpr": None, "auc_low": self.auc99[0], "auc_high": self.auc99[1], **fields}
        return GateResult(
            verdict=verdict,
            reason=reason,
            fpr=float(self.fpr),
            confidence=float(self.confidence),
            tpr=float(c.tps[tp_at] / c.n_members),
            tpr_low=float(self.tpr_low[tp_at]),
            tpr_high=float(self.tpr_high[tp_at]),
            fpr_achieved=float(c.fps[at] / c.n_nonmembers),
            fpr_low=float(self.fpr_low[at]),
            fpr_high=float(self.fpr_high[at]),
            threshold=float(c.thresholds[at]),
            tpr_at_fpr=float(c.tps[self.operating] / c.n_members),
            n_members=c.n_members,
            n_nonmembers=c.n_nonmembers,
            auc=self.area,
            **values,
        )


def inverted_reason(area: float, auc99: tuple[float, float], *, what: str = "AUC") -> str | None:
    """Why scores cannot be judged when their AUC's 99% interval ``auc99`` lies below
    :data:`INVERTED_AUC` (inverted scores or swapped labels are an input error, never privacy), or
    None; ``what`` names the AUC in the message."""
    low, high = auc99
    if high >= INVERTED_AUC:
        return None
    return (
        f"{what} = {area:.3f} (99% interval [{low:.3f}, {high:.3f}]) is clearly below 0.5: "
        "the scores rank non-members above members, which means inverted scores (higher must "
        "mean 'member') or swapped is_member labels, not privacy. Check both."
    )


def _inconclusive_reason(
    c: RocCounts,
    fpr: float,
    max_tpr: float,
    confidence: float,
    tpr_low: np.ndarray,
    tpr_high: np.ndarray,
    fpr_low: np.ndarray,
    fpr_high: np.ndarray,
) -> str:
    needed = nonmembers_needed(fpr, confidence)
    parts = []
    above = np.flatnonzero(tpr_low > max_tpr)
    if above.size:  # a TPR above the limit is proven somewhere: say why that is no FAIL
        k = int(above[np.argmin(fpr_high[above])])
        parts.append(
            f"not a FAIL: where TPR >= {tpr_low[k]:.4f} > max_tpr={max_tpr:g} is proven, the FPR is only bounded by "
            f"<= {fpr_high[k]:.4g}, above {fpr:g}"
        )
    if c.n_nonmembers < needed:
        parts.append(
            f"certifying FPR <= {fpr:g} needs >= {needed:,} non-members at {confidence:.0%}; "
            f"you have {c.n_nonmembers:,}, so a leak at this FPR cannot be proven"
        )
    certifiable = np.flatnonzero(fpr_low[1:] > fpr)
    if certifiable.size:
        j = int(certifiable[0])  # t_{j+1} is the highest threshold surely past fpr
        parts.append(
            f"the TPR at FPR {fpr:g} is only bounded above by {tpr_high[j]:.4f} > "
            f"max_tpr={max_tpr:g}"
        )
    parts.append(_audit_size(c, fpr, max_tpr, confidence))
    parts.append("what else could decide it: more references (a stronger attack), or audit='recipe' (every model's trials pooled)")
    return "; ".join(parts)


def _audit_size(c: RocCounts, fpr: float, max_tpr: float, confidence: float) -> str:
    """How many audit points would decide a TPR gate if its ROC stayed as it is: the counts at
    every threshold scaled up by the smallest factor at which the gate's own rule (FAIL or PASS at
    some threshold) holds. An estimate: a larger audit's ROC moves within the sampling noise."""

    emp_fpr, emp_tpr = c.fps / c.n_nonmembers, c.tps / c.n_members
    # Scaling keeps every empirical rate: only thresholds already on the right sides can decide.
    fail_at = np.flatnonzero((emp_fpr < fpr) & (emp_tpr > max_tpr))
    pass_at = 1 + np.flatnonzero((emp_fpr[1:] > fpr) & (emp_tpr[:-1] < max_tpr))

    def decides(k: float) -> bool:
        n_non, n_mem = round(c.n_nonmembers * k), round(c.n_members * k)
        if fail_at.size:
            _, fpr_high = clopper_pearson(np.round(c.fps[fail_at] * k), n_non, confidence)
            tpr_low, _ = clopper_pearson(np.round(c.tps[fail_at] * k), n_mem, confidence)
            if ((fpr_high <= fpr) & (tpr_low > max_tpr)).any():
                return True
        if pass_at.size:
            fpr_low, _ = clopper_pearson(np.round(c.fps[pass_at] * k), n_non, confidence)
            _, tpr_high = clopper_pearson(np.round(c.tps[pass_at - 1] * k), n_mem, confidence)
            return bool(((fpr_low > fpr) & (tpr_high <= max_tpr)).any())
        return False

    now = f"now {c.n_members:,} members, {c.n_nonmembers:,} non-members"
    if not (fail_at.size or pass_at.size):
        return f"at this ROC no audit size decides it: its rates sit at the limits ({now})"
    hi = 2.0
    while not decides(hi):
        hi *= 2
        if hi > 2**16:
            return f"at this ROC no audit size up to {2**16}x the current one decides it ({now})"
    lo = hi / 2
    while hi / lo > 1.02:
        mid = (lo * hi) ** 0.5
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return (
        f"if the ROC stays as it is, about {math.ceil(hi * (c.n_members + c.n_nonmembers)):,} audit points "
        f"({hi:.2f}x) would decide it ({now})"
    )


def measure(scores: object, is_member: object, *, fpr: float, confidence: float = 0.95) -> GateResult:
    """The numbers a TPR gate reports (the TPR at the empirical operating point at ``fpr`` with its
    Clopper-Pearson interval, the AUC with its interval) and no verdict: ``Verdict.MEASURED``, what
    ``measure_attack`` records where a gate with an unreachable limit would have recorded a PASS
    that could never fail."""
    check_rate("fpr", fpr)
    check_confidence(confidence)
    e = _Evidence.of(scores, is_member, fpr, confidence)
    c = e.counts
    reason = (
        f"measured, no limit: TPR {c.tps[e.operating] / c.n_members:.4f} at FPR "
        f"{c.fps[e.operating] / c.n_nonmembers:.4f} (the operating point at {fpr:g})"
    ) + (f"; {e.inverted}" if e.inverted else "")
    return e.result(Verdict.MEASURED, reason, at=e.operating, gate="measure")
