"""Release to release: what changed between two session reports, and whether it is a regression.

A criterion names a measure and the increase it tolerates (``tpr:+0.01``, ``auc:+0.02``, ``eps:+0.5``,
``new-vulnerable:5``). With ``significant=True`` (``--privacy-compare-fail``) a TPR or AUC counts as
risen only when the rise is significant: the one-sided lower confidence bound of ``new - old``,
from each result's own interval (``se = half-width / z``, independent audits), exceeds the tolerance,
so re-running the same model with another seed does not fail. Epsilon gates carry lower bounds
only, so theirs are compared as bounds. A verdict that got worse, or a gate that is gone, always
fails. Without ``significant`` (the ``compare`` command's ``--tolerance``) point estimates are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ..results import AnyResult, AttackResult, DPAuditResult, SessionReport

__all__ = ["Comparison", "Criterion", "compare_reports", "gate_key", "parse_criteria"]

_MEASURES = ("tpr", "auc", "eps", "new-vulnerable")
_RANK = {"pass": 0, "inconclusive": 1, "fail": 2}


@dataclass(frozen=True)
class Criterion:
    """A measure and the increase tolerated before a comparison fails."""

    measure: str
    tolerance: float


def parse_criteria(text: str) -> list[Criterion]:
    """``"tpr:+0.01,auc:+0.02"`` -> criteria; a bad one is a ValueError naming the forms."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition(":")
        try:
            tolerance = float(value)
        except ValueError:
            tolerance = math.nan
        if name not in _MEASURES or not value or not math.isfinite(tolerance) or tolerance < 0:
            raise ValueError(
                f"cannot read the comparison criterion {part!r}: use tpr:+0.01, auc:+0.02, eps:+0.5 or "
                "new-vulnerable:5 (a measure and the increase it tolerates, >= 0), comma-separated."
            )
        out.append(Criterion(name, tolerance))
    if not out:
        raise ValueError("no comparison criterion given: use e.g. tpr:+0.01")
    return out


@dataclass(frozen=True)
class Comparison:
    """The lines that describe the comparison, and whether it failed."""

    lines: list[str]
    failed: bool


def gate_key(r: AnyResult) -> tuple[str, str, str]:
    """What matches a gate across runs: its test, attack and kind of gate."""
    gate = r.gate if isinstance(r, AttackResult) else ("dp_claim" if isinstance(r, DPAuditResult) else "relative")
    return (r.test_id or "-", r.attack, gate)


def _measure(r: AnyResult) -> tuple[str, float, float | None]:
    """The measure a result is judged by, its value, and its standard error (None: a bound only)."""
    if isinstance(r, DPAuditResult):
        return "eps", r.epsilon_low, None
    z = stats.norm.ppf(0.5 + r.confidence / 2)
    if isinstance(r, AttackResult) and r.gate == "auc":
        return "auc", r.auc, (r.auc_high - r.auc_low) / (2 * z)
    if isinstance(r, AttackResult) and r.gate == "epsilon" and r.epsilon_low is not None:
        return "eps", r.epsilon_low, None
    return "tpr", r.tpr, (r.tpr_high - r.tpr_low) / (2 * z) if isinstance(r, AttackResult) else None


def _vulnerable(r: AnyResult) -> set[str]:
    return {v.key for v in getattr(r, "most_vulnerable", []) if getattr(v, "key", None)}


def compare_reports(
    old: SessionReport, new: SessionReport, criteria: list[Criterion], *, significant: bool = True,
    confidence: float = 0.95, allow_missing: bool = False, accepted: dict[str, list[str]] | None = None,
) -> Comparison:
    """Compare ``new`` with ``old`` gate by gate (matched by test, attack and gate kind). Newly
    vulnerable records are those not among the gate's ``accepted`` ones (the snapshot), or, for a
    gate the snapshot does not hold, not among the old run's."""
    tolerance = {c.measure: c.tolerance for c in criteria}
    z = stats.norm.ppf(confidence)
    before = {gate_key(r): r for r in old.results}
    lines, failed = [], False
    for r in new.results:
        o = before.get(gate_key(r))
        name, value, se = _measure(r)
        label = {"tpr": "TPR", "auc": "AUC", "eps": "epsilon"}[name]
        if o is None:
            lines.append(f"NEW          {r.test_id}  {r.attack}: {label} {value:.4f}, {r.verdict.value}")
            continue
        _, was, se_old = _measure(o)
        delta = value - was
        rise = delta  # what is judged against the tolerance
        note = ""
        if significant and se is not None and se_old is not None:
            rise = delta - z * math.sqrt(se**2 + se_old**2)
            note = f", {confidence:.0%} lower bound of the rise {rise:+.4f}"
        worse_verdict = _RANK[r.verdict.value] > _RANK[o.verdict.value]
        risen = name in tolerance and rise > tolerance[name]
        known = accepted.get(" | ".join(gate_key(r))) if accepted else None
        newly = sorted(_vulnerable(r) - (set(known) if known is not None else _vulnerable(o)))
        too_many_new = "new-vulnerable" in tolerance and len(newly) > tolerance["new-vulnerable"]
        worse = worse_verdict or risen or too_many_new
        failed |= worse
        tag = "REGRESSED" if worse else ("improved" if delta < 0 and not worse_verdict else "unchanged")
        lines.append(
            f"{tag:12} {r.test_id}  {r.attack}: {label} {was:.4f} -> {value:.4f} ({delta:+.4f}{note}), "
            f"{o.verdict.value} -> {r.verdict.value}" + (f", {len(newly)} newly vulnerable records" if newly else "")
        )
    gone = sorted(before.keys() - {gate_key(r) for r in new.results})
    for key in gone:
        lines.append(f"GONE         {key[0]}  {key[1]} ({key[2]} gate): no result in the new report")
    if gone and not allow_missing:
        failed = True
        lines.append(
            f"{len(gone)} gate(s) of the old report have no result in the new one (deselected, renamed, or "
            "erroring before their assertion): a gate that disappears fails the comparison; pass "
            "--allow-missing if that was intended."
        )
    if not new.results and new.note:
        lines.append(f"the new report is empty: {new.note}")
    return Comparison(lines, failed)
