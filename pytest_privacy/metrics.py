"""ROC metrics, exact binomial bounds and the three-way privacy gate (numpy/scipy only).

Conventions follow scikit-learn's ``roc_curve``: a higher score means "more likely a member", a
point is predicted member when ``score >= threshold``, thresholds decrease, the first point is
(0, 0) at threshold ``+inf``, and tied scores form a single threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import special, stats

from .results import GateResult, Verdict

__all__ = [
    "INVERTED_AUC",
    "RocCounts",
    "auc",
    "auc_gate",
    "auc_confidence_interval",
    "check_confidence",
    "fail_p_value",
    "holm",
    "inverted_reason",
    "operating_index",
    "roc_area",
    "check_delta",
    "check_gate_args",
    "check_score_values",
    "check_margin",
    "check_max_auc",
    "check_max_epsilon",
    "check_rate",
    "clopper_pearson",
    "epsilon_gate",
    "epsilon_lower_bound",
    "gate",
    "nonmembers_needed",
    "paired_tpr_comparison",
    "swap_test",
    "PairedComparison",
    "SwapTest",
    "roc_counts",
    "roc_curve",
    "tpr_at_fpr",
]

# An AUC whose 99% interval lies wholly below this is an input error, not privacy: inverted
# scores or swapped membership labels.
INVERTED_AUC = 0.45


class RocCounts(NamedTuple):
    """Cumulative counts at every distinct threshold (the counting primitive of every metric here)."""

    fps: np.ndarray  # false positives at each threshold, increasing
    tps: np.ndarray  # true positives at each threshold, increasing
    thresholds: np.ndarray  # decreasing, first is +inf

    @property
    def n_members(self) -> int:
        return int(self.tps[-1])  # the lowest threshold admits everyone

    @property
    def n_nonmembers(self) -> int:
        return int(self.fps[-1])


def check_score_values(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and membership as bool, arrays of any (matching) shape: one model's
    ``[N]`` or a recipe audit's ``[K, N]``; a ValueError that names the fix."""
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}.")
    s = s.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        at = f"indices {np.flatnonzero(bad)[:5].tolist()}" if s.ndim == 1 else f"model {first[0]}, point {first[1]}"
        raise ValueError(
            f"scores contain {int(bad.sum())} NaN/inf values (first at {at}); an attack "
            "that produced them overflowed or saw NaN inputs: fix the model outputs first."
        )
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(
                "is_member must be boolean (or 0/1); got values "
                f"{np.unique(m)[:5].tolist()}."
            )
        m = m.astype(bool)
    return s, m


def _check_scores(scores: object, is_member: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``(scores, is_member)``; raise a ValueError that names the fix."""
    s = np.asarray(scores)
    m = np.asarray(is_member)
    if s.ndim != 1 or m.ndim != 1:
        raise ValueError(
            f"scores and is_member must be 1-D arrays, got shapes {s.shape} and {m.shape}; "
            "pass one score and one membership flag per audit point."
        )
    if s.shape != m.shape:
        raise ValueError(
            f"scores has {s.shape[0]} entries but is_member has {m.shape[0]}; they must align "
            "point by point."
        )
    s, m = check_score_values(s, m)
    n_pos = int(m.sum())
    if n_pos == 0 or n_pos == m.size:
        raise ValueError(
            f"is_member has {n_pos} members and {m.size - n_pos} non-members; a membership test "
            "needs both (hold out points the model never trained on)."
        )
    return s, m


def roc_counts(scores: object, is_member: object) -> RocCounts:
    """Validated ``(scores, is_member)`` as false and true positives at every distinct threshold,
    thresholds decreasing from ``+inf`` (ties are one threshold)."""
    s, m = _check_scores(scores, is_member)
    order = np.argsort(-s, kind="mergesort")
    s, m = s[order], m[order]
    # Last index of each run of equal scores: ties are one threshold.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(m)[last]
    fps = last + 1 - tps
    return RocCounts(fps=np.r_[0, fps], tps=np.r_[0, tps], thresholds=np.r_[np.inf, s[last]])


def roc_curve(scores: object, is_member: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve at every distinct score.

    Returns ``(fpr, tpr, thresholds)`` with decreasing thresholds, the first being ``+inf`` at
    the point (0, 0), like ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    c = roc_counts(scores, is_member)
    return c.fps / c.n_nonmembers, c.tps / c.n_members, c.thresholds


def tpr_at_fpr(scores: object, is_member: object, fpr: float) -> float:
    """Largest TPR over thresholds whose empirical FPR is ``<= fpr`` (0.0 when there is none)."""
    check_rate("fpr", fpr)
    f, t, _ = roc_curve(scores, is_member)
    ok = f <= fpr
    return float(t[ok].max()) if ok.any() else 0.0


def auc(scores: object, is_member: object) -> float:
    """Area under the ROC curve (trapezoidal, i.e. the Mann-Whitney statistic with ties as 1/2)."""
    return roc_area(roc_counts(scores, is_member))


def auc_confidence_interval(
    auc_value: float, n_members: int, n_nonmembers: int, confidence: float = 0.99
) -> tuple[float, float]:
    """Normal-approximation interval for an AUC (Hanley & McNeil 1982), clipped to [0, 1]."""
    a = auc_value
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (
        a * (1 - a) + (n_members - 1) * (q1 - a * a) + (n_nonmembers - 1) * (q2 - a * a)
    ) / (n_members * n_nonmembers)
    half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0))
    return max(0.0, a - half), min(1.0, a + half)


def clopper_pearson(
    k: int | np.ndarray, n: int | np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Two-sided exact (Clopper-Pearson) interval for a binomial proportion ``k / n``.

    ``low = Beta.ppf(a/2, k, n-k+1)`` (0 when k = 0), ``high = Beta.ppf(1-a/2, k+1, n-k)`` (1 when
    k = n), with ``a = 1 - confidence``. Vectorised over ``k`` and ``n``.
    """
    check_confidence(confidence)
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(k_arr < 0) or np.any(k_arr > n_arr) or np.any(n_arr <= 0):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}.")
    a = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k_arr == 0, 0.0, special.betaincinv(k_arr, n_arr - k_arr + 1, a / 2))
        high = np.where(
            k_arr == n_arr, 1.0, special.betaincinv(k_arr + 1, n_arr - k_arr, 1 - a / 2)
        )
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def nonmembers_needed(fpr: float, confidence: float = 0.95) -> int:
    """Fewest non-members with which zero false positives certify ``FPR <= fpr``.

    Solves ``clopper_pearson(0, n, confidence).high <= fpr``, i.e.
    ``n >= ln((1 - confidence) / 2) / ln(1 - fpr)`` (about ``3.7 / fpr`` at 95%).
    """
    check_rate("fpr", fpr)
    return math.ceil(math.log((1 - confidence) / 2) / math.log1p(-fpr) - 1e-9)


def _is_number(value: object) -> bool:
    # bool is an int to Python, but ``fpr=True`` is a mistake, not 1.0.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_rate(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1, or a ValueError naming ``name``."""
    if not (_is_number(value) and 0.0 < float(value) < 1.0):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def check_confidence(confidence: object) -> float:
    """A confidence level strictly between 0 and 1 (e.g. 0.95), or a ValueError."""
    return check_rate("confidence", confidence)


def check_margin(margin: object) -> float:
    """A TPR difference tolerated by a comparison: a number in [0, 1), or a ValueError."""
    if not (_is_number(margin) and 0.0 <= float(margin) < 1.0):  # type: ignore[arg-type]
        raise ValueError(f"margin must be a number in [0, 1), got {margin!r}.")
    return float(margin)  # type: ignore[arg-type]


def check_max_auc(max_auc: object) -> float:
    """An AUC limit: a number in [0.5, 1] (0.5 is chance), or a ValueError."""
    if not (_is_number(max_auc) and 0.5 <= float(max_auc) <= 1.0):  # type: ignore[arg-type]
        raise ValueError(f"max_auc must be a number in [0.5, 1] (0.5 is chance), got {max_auc!r}.")
    return float(max_auc)  # type: ignore[arg-type]


def check_max_epsilon(max_epsilon: object) -> float:
    """An epsilon limit: a finite number >= 0 (an infinite limit is a gate that cannot fail), or a ValueError."""
    if not (_is_number(max_epsilon) and 0 <= float(max_epsilon) < math.inf):  # type: ignore[arg-type]
        raise ValueError(f"max_epsilon must be a finite number >= 0, got {max_epsilon!r}.")
    return float(max_epsilon)  # type: ignore[arg-type]


def check_epsilon_claim(epsilon: object) -> float:
    """The epsilon of a DP claim under audit: a finite number > 0 (an infinite epsilon claims
    nothing, so no audit can refute it), or a ValueError."""
    if not (_is_number(epsilon) and 0 < float(epsilon) < math.inf):  # type: ignore[arg-type]
        raise ValueError(
            f"epsilon must be a finite number > 0 (the epsilon of the claim under audit), got {epsilon!r}."
        )
    return float(epsilon)  # type: ignore[arg-type]


def check_delta(delta: object) -> float:
    """The delta of an (epsilon, delta) guarantee: a number in [0, 1), or a ValueError."""
    if not (_is_number(delta) and 0.0 <= float(delta) < 1.0):  # type: ignore[arg-type]
        raise ValueError(
            f"delta must be a number in [0, 1) (the delta of the (epsilon, delta) guarantee under "
            f"test; use 0 for pure DP), got {delta!r}."
        )
    return float(delta)  # type: ignore[arg-type]


def check_gate_args(fpr: object, max_tpr: object, confidence: object) -> tuple[float, float, float]:
    """The arguments of a TPR-at-FPR gate, checked before any work is done.

    ``max_tpr`` must exceed ``fpr``: guessing at random already reaches TPR = FPR, so a limit at or
    below it would call a model with no signal a proven leak.
    """
    fpr_f = check_rate("fpr", fpr)
    if not (_is_number(max_tpr) and 0.0 <= float(max_tpr) <= 1.0):  # type: ignore[arg-type]
        raise ValueError(f"max_tpr must be a number in [0, 1], got {max_tpr!r}.")
    if float(max_tpr) <= fpr_f:  # type: ignore[arg-type]
        raise ValueError(
            f"max_tpr={max_tpr!r} <= fpr={fpr!r}: random guessing already has TPR = FPR, so this limit "
            "would call a model with no signal a leak; set max_tpr above fpr (e.g. fpr=1e-3, max_tpr=0.01)."
        )
    return fpr_f, float(max_tpr), check_confidence(confidence)  # type: ignore[arg-type]


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

    Why scanning every threshold needs no multiplicity correction: let ``t*`` be the threshold at
    which the true FPR crosses ``fpr``. Thresholds are ordered, so every certifying threshold
    ``t_k`` (k false positives) is wrong about its FPR only if the largest certifying one is, which
    is a single event ``Binomial(n_nonmembers, fpr) <= k_max`` of probability ``<= a/2``; and every
    threshold at or above ``t*`` has at most the true positives of ``t*``, so all TPR lower bounds
    are wrong only if the one at ``t*`` is, again probability ``<= a/2``. Hence a model exactly at
    the limit is FAILed with probability at most ``1 - confidence`` (and PASS symmetrically: if
    ``t_j`` truly has FPR above ``fpr``, every member found at ``t*`` scores above ``t_j``), however
    many thresholds are scanned. FAIL and PASS cannot both hold.

    For PASS the reported TPR fields describe the members scoring above ``threshold``
    and the FPR fields the threshold itself.
    """
    fpr, max_tpr, confidence = check_gate_args(fpr, max_tpr, confidence)
    e = _Evidence.of(scores, is_member, fpr, confidence)
    c, fpr_low, fpr_high, tpr_low, tpr_high = e.counts, e.fpr_low, e.fpr_high, e.tpr_low, e.tpr_high
    fail_at = np.flatnonzero((fpr_high <= fpr) & (tpr_low > max_tpr))
    # PASS witness j >= 1: t_j's FPR is surely above fpr; members above t_j are those at t_{j-1}.
    pass_at = 1 + np.flatnonzero((fpr_low[1:] > fpr) & (tpr_high[:-1] <= max_tpr))
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

    Closed form, threshold by threshold: the two-sided Clopper-Pearson upper FPR bound is ``<= fpr``
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
    c = e.counts
    n, m = c.n_nonmembers, c.n_members
    fps, tps = c.fps.astype(np.float64), c.tps.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        a_fpr = np.where(fps < n, 2.0 * (1.0 - special.betainc(fps + 1, np.maximum(n - fps, 1e-300), fpr)), np.inf)
        a_tpr = np.where(tps > 0, 2.0 * special.betainc(np.maximum(tps, 1e-300), m - tps + 1, max_tpr), np.inf)
    needed = np.maximum(a_fpr, a_tpr * (1 + 1e-12))  # the TPR side is strict: just above its boundary
    return float(min(1.0, np.min(needed)))


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
    eps = _epsilon_bound(e.counts, delta, confidence)
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


def operating_index(c: RocCounts, fpr: float) -> int:
    """The empirical operating point at ``fpr``: the index of the lowest threshold whose empirical
    FPR is at most ``fpr`` (index 0, the ``+inf`` threshold, always qualifies)."""
    return int(np.flatnonzero(c.fps / c.n_nonmembers <= fpr)[-1])


def roc_area(c: RocCounts) -> float:
    """The ROC's area (trapezoids over every distinct threshold)."""
    return float(np.trapezoid(c.tps / c.n_members, c.fps / c.n_nonmembers))


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


def epsilon_lower_bound(
    scores: object,
    is_member: object,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> float:
    """A lower bound on the privacy parameter epsilon that holds with probability >= ``confidence``.

    An (epsilon, delta)-DP training algorithm makes every membership test obey
    ``TPR <= e^eps * FPR + delta`` and ``TNR <= e^eps * FNR + delta``. At every threshold of the
    ROC (predict member when ``score >= t``) we bound ``FPR`` above and ``TPR`` below with
    Clopper-Pearson and return ``max(0, ln((TPR_low - delta) / FPR_high),
    ln((TNR_low - delta) / FNR_high))`` over all thresholds, with ``TNR_low = 1 - FPR_high`` and
    ``FNR_high = 1 - TPR_low``. A term whose numerator is ``<= 0`` contributes nothing;
    ``FPR_high`` and ``FNR_high`` are never 0 (an exact upper bound is positive even at 0 errors).

    **Valid only for the randomized membership game**: member scores are independent draws from the
    score distribution of a point that was trained on and non-member scores from that of a point that
    was not, as when each canary is included with probability 1/2 in its own training run, or many
    runs are made. Many canaries scored in one training run are not independent and need one-run
    auditing (Steinke et al. 2023) instead. It bounds the epsilon of the whole algorithm from below,
    at the given ``delta``; it never certifies privacy.

    **Why the bounds hold jointly over the thresholds.** Unlike :func:`gate`'s fixed-FPR claim, the
    threshold maximising a ratio depends on both counts, so every bound must hold at once:

    1. Per count ``k``: let ``G(t)`` be the true FPR at ``t`` and ``U_k`` the upper bound for ``k``
       false positives. Every ``t`` with ``fp(t) <= k`` and ``G(t) > U_k`` lies at or below the fixed
       threshold ``t_k = sup{t: G(t) > U_k}``, where ``G(t_k) >= U_k`` (G is left-continuous) and
       ``fp(t_k) <= fp(t) <= k``; so all bounds that use ``k`` fail together only on the single event
       ``Binomial(n_nonmembers, G(t_k)) <= k``, of probability ``<= P(Binomial(n, U_k) <= k) = beta``.
       The TPR lower bound at each true-positive count ``j`` is the mirror image (with the fixed
       threshold's tail ``P(score > s)`` where ``P(score >= s)`` jumps there).
    2. Bonferroni over the data-independent set of counts that can fail (``k = 0..n_nonmembers-1``,
       ``j = 1..n_members``): each one-sided bound uses ``beta = (1 - confidence) / (2 n)`` for its
       sample size ``n``, so all bounds hold at once with probability ``>= confidence``, and then
       every term, hence their maximum, is at most the true epsilon.

    The price is a wider interval than a single threshold's: at 0 false positives ``FPR_high`` is
    about ``ln(2 n / (1 - confidence)) / n`` instead of ``ln(2 / (1 - confidence)) / n``.
    """
    check_delta(delta)
    check_confidence(confidence)
    return _epsilon_bound(roc_counts(scores, is_member), float(delta), float(confidence))


def _epsilon_bound(c: RocCounts, delta: float, confidence: float) -> float:
    """:func:`epsilon_lower_bound` from counts already taken (the epsilon gate sorts the scores once)."""
    alpha = 1.0 - confidence
    # Both terms grow with TPR_low and shrink with FPR_high, so only the last threshold of each run
    # of equal false-positive counts (the most true positives for that count) can be the maximum.
    last = np.r_[np.diff(c.fps) > 0, True]
    fps, tps = c.fps[last], c.tps[last]
    # A two-sided interval at confidence 1 - alpha / n has alpha / (2 n) in each tail; one tail is used.
    _, fpr_high = clopper_pearson(fps, c.n_nonmembers, 1.0 - alpha / c.n_nonmembers)
    tpr_low, _ = clopper_pearson(tps, c.n_members, 1.0 - alpha / c.n_members)
    d = delta
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.log(np.clip(tpr_low - d, 0.0, None)) - np.log(fpr_high)
        backward = np.log(np.clip(1.0 - fpr_high - d, 0.0, None)) - np.log1p(-tpr_low)
    terms = np.concatenate([forward, backward])
    terms = terms[np.isfinite(terms)]  # -inf: no evidence; +inf only from rounding, never claimed
    return max(0.0, float(terms.max())) if terms.size else 0.0


class PairedComparison(NamedTuple):
    """TPRs of two score sets at their own ``fpr`` thresholds, compared on the same members."""

    tpr: float
    tpr_baseline: float
    diff: float
    diff_low: float
    diff_high: float
    p_value: float
    worse: bool
    n_members: int
    n_nonmembers: int


def paired_tpr_comparison(
    scores: object,
    baseline_scores: object,
    is_member: object,
    *,
    fpr: float,
    margin: float = 0.0,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Is ``scores``' TPR at ``fpr`` more than ``margin`` above ``baseline_scores``' on the same points?

    Each score set gets its own threshold, that of :func:`tpr_at_fpr` (a member counts as found when
    its score exceeds the ``floor(fpr * n) + 1``-th largest non-member score). Both thresholds are
    estimated from the same non-members, so their noise is part of the comparison: conditioning on
    them (a McNemar test on the members) raises false alarms far above the nominal rate. The
    interval for ``TPR - TPR_baseline`` is therefore a paired, stratified bootstrap percentile
    interval: ``n_bootstrap`` resamples of the members and of the non-members, the same for both
    score sets, thresholds re-estimated in each. ``worse`` when its lower end exceeds ``margin``
    (a one-sided test at ``(1 - confidence) / 2``); ``p_value`` is the share of resampled
    differences at or below ``margin``.
    """
    check_rate("fpr", fpr)
    margin = check_margin(margin)
    confidence = check_confidence(confidence)
    s_a, m = _check_scores(scores, is_member)
    s_b, _ = _check_scores(baseline_scores, m)
    pos = np.stack([s_a[m], s_b[m]])  # [2, n1]
    neg = np.stack([s_a[~m], s_b[~m]])  # [2, n0]
    n1, n0 = pos.shape[1], neg.shape[1]
    k = int(math.floor(fpr * n0 + 1e-12))  # false positives allowed

    def tprs(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """TPR of both score sets for members ``p [2, B, n1]`` and non-members ``q [2, B, n0]``."""
        if k >= q.shape[-1]:
            return np.ones(p.shape[:2])
        cut = -np.partition(-q, k, axis=-1)[..., k]  # the (k+1)-th largest non-member score
        return (p > cut[..., None]).mean(axis=-1)

    point = tprs(pos[:, None], neg[:, None])[:, 0]
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_bootstrap, 250):  # chunks bound memory to ~250 x (n1 + n0) indices
        b = min(250, n_bootstrap - start)
        i1, i0 = rng.integers(0, n1, size=(b, n1)), rng.integers(0, n0, size=(b, n0))
        t = tprs(pos[:, i1], neg[:, i0])
        diffs.append(t[0] - t[1])
    d = np.concatenate(diffs)
    alpha = 1 - confidence
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return PairedComparison(
        tpr=float(point[0]), tpr_baseline=float(point[1]), diff=float(point[0] - point[1]),
        diff_low=float(low), diff_high=float(high), p_value=float((d <= margin).mean()),
        worse=bool(low > margin), n_members=n1, n_nonmembers=n0,
    )


class SwapTest(NamedTuple):
    """Two score sets on the same points: their TPRs at ``fpr``, the rise, and what a rise looks like
    when the two are exchangeable (see :func:`swap_test`)."""

    tpr: float
    tpr_baseline: float
    diff: float
    diff_low: float  # one-sided lower confidence bound of the rise
    p_value: float
    worse: bool
    n_points: int


def swap_test(
    scores: object, baseline_scores: object, is_member: object, *, fpr: float, margin: float = 0.0,
    confidence: float = 0.95, n_swaps: int = 2000, seed: int = 0,
) -> SwapTest:
    """Did ``scores``' TPR at ``fpr`` rise by more than ``margin`` over ``baseline_scores``' on the same
    audit points? A randomisation test conditional on the points.

    If both score sets come from the same procedure (the same model re-audited, or a retrained draw
    of the same recipe), each point's two scores are exchangeable: swapping them leaves the joint
    distribution unchanged. So the rise ``TPR - TPR_baseline`` (each at its own threshold, as in
    :func:`tpr_at_fpr`, re-estimated after every swap) is compared with its distribution over
    ``n_swaps`` random per-point swaps. This is exact under the null "no change" whatever the
    thresholds' noise, and, because the points are held fixed, far tighter than resampling them
    (:func:`paired_tpr_comparison` answers the population question for two different models).
    ``diff_low = diff - q``, ``q`` the ``confidence`` quantile of the swapped rises (a shift-model
    inversion); ``worse`` when ``diff_low > margin``; ``p_value`` the share of swapped rises at or
    above ``diff - margin``, counting the observed one (so it is never 0).
    """
    check_rate("fpr", fpr)
    margin = check_margin(margin)
    confidence = check_confidence(confidence)
    a, m = _check_scores(scores, is_member)
    b, _ = _check_scores(baseline_scores, m)
    n0 = int((~m).sum())
    k = int(math.floor(fpr * n0 + 1e-12))  # false positives allowed, as tpr_at_fpr

    def tpr(s: np.ndarray) -> np.ndarray:
        """TPR at fpr of each row of ``s [B, N]``."""
        neg = s[:, ~m]
        if k >= n0:
            return np.ones(len(s))
        cut = -np.partition(-neg, k, axis=-1)[:, k]
        return (s[:, m] > cut[:, None]).mean(axis=-1)

    point = tpr(np.stack([a, b]))
    diff = float(point[0] - point[1])
    rng = np.random.default_rng(seed)
    swapped = []
    for start in range(0, n_swaps, 250):  # chunks bound memory to ~250 x N scores
        flip = rng.random((min(250, n_swaps - start), a.size)) < 0.5
        swapped.append(tpr(np.where(flip, b, a)) - tpr(np.where(flip, a, b)))
    d = np.concatenate(swapped)
    low = diff - float(np.quantile(d, confidence))
    p_value = float((1 + (d >= diff - margin).sum()) / (1 + d.size))
    return SwapTest(
        tpr=float(point[0]), tpr_baseline=float(point[1]), diff=diff, diff_low=low, p_value=p_value,
        worse=bool(low > margin), n_points=int(a.size),
    )
