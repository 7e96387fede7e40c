"""Release to release: what changed between two session reports, and whether it is a regression.

A criterion names a measure and the increase it tolerates (``tpr:+0.01``, ``auc:+0.02``, ``eps:+0.5``,
``new-vulnerable:5``). With ``significant=True`` (``--privacy-compare-fail``) a TPR or AUC counts as
risen only when the rise is significant: the one-sided lower confidence bound of ``new - old``,
from each result's own interval (``se = half-width / z``, independent audits), exceeds the tolerance,
so re-running the same model with another seed does not fail; when both runs audited the same points
the two score sets are compared pointwise instead (a paired bootstrap, much tighter). Epsilon gates carry lower bounds
only, so theirs are compared as bounds. A verdict that got worse, or a gate that is gone, always
fails. Without ``significant`` (the ``compare`` command's ``--tolerance``) point estimates are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from ..results import (
    DEFAULT_EXTRACTION,
    AnyResult,
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    GateChange,
    LMAuditResult,
    ReleaseComparison,
    SessionReport,
)

__all__ = [
    "Criterion", "comparison_header", "comparison_lines", "comparison_rows", "compare_reports", "gate_identity",
    "gate_key", "parse_criteria",
]

_MEASURES = ("tpr", "auc", "eps", "new-vulnerable")
_RANK = {"pass": 0, "measured": 0, "inconclusive": 1, "fail": 2}  # a measurement has no verdict to worsen


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


# the extraction gate's default decoding, and how stored runs before samples and prefixes named it
_DEFAULT_DECODING = (DEFAULT_EXTRACTION, "greedy, prompted with the text before each PII span")


def gate_identity(r: AnyResult) -> tuple[str, str, str]:
    """``(test id, attack, definition)``: what makes a gate the same gate in another run. The attack
    is the one the test asked for (``default`` when it named none: the default may be another
    attack at another reference count), the definition everything else that defines the gate:
    its measure, FPR, limit and audit kind (a family's members differ in attack or FPR), a DP
    claim's epsilon and delta, a baseline comparison's FPR and margin."""
    attack = "default" if getattr(r, "default_attack", False) else r.attack
    if isinstance(r, LMAuditResult):
        limit = r.max_extracted if r.gate == "extraction" else r.max_exposure
        definition = f"{r.gate}:limit={limit!r}"
        if r.gate == "extraction" and r.variant not in _DEFAULT_DECODING:
            definition += f",decoding={r.variant!r}"  # sampled, fixed-prefix or pattern decoding: another gate
    elif isinstance(r, DPAuditResult):
        definition = (
            f"dp_claim:mu={r.mu_claim!r}" if r.mu_claim is not None else f"dp_claim:eps={r.epsilon_claim!r},delta={r.delta!r}"
        )
    elif isinstance(r, ComparisonResult):
        definition = f"relative:fpr={r.fpr!r},margin={r.margin!r}"
    elif r.gate == "auc":
        definition = f"auc:max_auc={r.max_auc!r},audit={r.audit}"
    elif r.gate == "epsilon":
        definition = f"epsilon:max_epsilon={r.max_epsilon!r},audit={r.audit}"
    elif r.gate == "measure":
        definition = f"measure:fpr={r.fpr!r},audit={r.audit}"
    else:
        definition = f"tpr_at_fpr:fpr={r.fpr!r},max_tpr={r.max_tpr!r},audit={r.audit}"
    return (r.test_id or "-", attack, definition)


def gate_key(r: AnyResult) -> str:
    """:func:`gate_identity` as one string (``test | attack | definition``): how stored runs and the
    accepted-records snapshot name a gate."""
    return " | ".join(gate_identity(r))


def _measure(r: AnyResult) -> tuple[str, float, float | None]:
    """The measure a result is judged by, its value, and its standard error (None: a bound only)."""
    if isinstance(r, LMAuditResult):  # exact counts and exposures: judged by their verdict and value
        if r.gate == "extraction":
            return "extracted", float(r.extracted or 0), None
        return "exposure", max((e.exposure for e in r.exposures), default=0.0), None
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


def _paired_rise(
    r: AttackResult, o: AttackResult, margin: float, confidence: float
) -> tuple[float, float, float, float, int] | None:
    """``(old TPR, new TPR, rise, its one-sided lower bound, points)`` from the two runs' own scores when
    both audited the same points with the same membership at the same FPR, else None."""
    from ..stats.comparisons import swap_test

    same = (
        r.gate == o.gate == "tpr_at_fpr" and r.fpr == o.fpr and r.point_scores is not None
        and o.point_scores is not None and r.point_scores.audit_id == o.point_scores.audit_id
    )
    if not same:
        return None
    new, member = r.point_scores.arrays()
    old, _ = o.point_scores.arrays()
    t = swap_test(new, old, member, fpr=r.fpr, margin=margin, confidence=confidence)
    return t.tpr_baseline, t.tpr, t.diff, t.diff_low, t.n_points


def compare_reports(
    old: SessionReport, new: SessionReport, criteria: list[Criterion], *, significant: bool = True,
    confidence: float = 0.95, allow_missing: bool = False, accepted: dict[str, list[str]] | None = None,
    against: str = "old", data_changed: bool = False,
) -> ReleaseComparison:
    """Compare ``new`` with ``old`` gate by gate, each matched by its whole identity
    (:func:`gate_identity`: test, requested attack, measure, FPR, limit, audit kind).

    A gate whose identity several results of one run share is ``ambiguous`` (which to pair is not
    known: never guessed), and a gate whose two runs audited different data (``data_id``) is ``not
    comparable`` unless ``data_changed`` says the data changed on purpose; both fail the comparison
    like a gate that is gone (unless ``allow_missing``). A TPR gate whose two runs audited the same
    points (same :class:`~pytest_privacy.results.PointScores` audit id) is compared pointwise:
    :func:`~pytest_privacy.stats.comparisons.swap_test` of the two score sets on the same members and
    non-members, far tighter than two independent intervals when the points' vulnerability carries
    over between releases. Other gates are compared by their intervals. Newly vulnerable records are
    those not among the gate's ``accepted`` ones (the snapshot), or, for a gate the snapshot does not
    hold, not among the old run's."""
    tolerance = {c.measure: c.tolerance for c in criteria}
    z = stats.norm.ppf(confidence)
    before, after = _by_identity(old.results), _by_identity(new.results)
    changes, notes, failed = [], [], False
    unmatched: dict[str, list[str]] = {"ambiguous": [], "not comparable": [], "gone": []}
    switched = []
    for key in [*after, *(k for k in before if k not in after)]:
        test_id, attack, gate = key
        olds, news = before.get(key, []), after.get(key, [])
        if len(olds) > 1 or len(news) > 1:
            unmatched["ambiguous"].append(" | ".join(key))
            changes.append(GateChange(status="ambiguous", test_id=test_id, attack=attack, gate=gate))
            continue
        if not news:
            unmatched["gone"].append(" | ".join(key))
            changes.append(GateChange(status="gone", test_id=test_id, attack=attack, gate=gate, old_verdict=olds[0].verdict))
            continue
        r = news[0]
        name, value, se = _measure(r)
        if not olds:
            changes.append(GateChange(status="new", test_id=test_id, attack=attack, gate=gate, measure=name,
                                      new=value, new_verdict=r.verdict))
            continue
        o = olds[0]
        decided_by = f"{o.attack} -> {r.attack}" if o.attack != r.attack else None
        if decided_by:
            switched.append(f"{test_id}: {decided_by}")
        if r.data_id and o.data_id and r.data_id != o.data_id and not data_changed:
            unmatched["not comparable"].append(" | ".join(key))
            changes.append(GateChange(
                status="not comparable", test_id=test_id, attack=attack, gate=gate, decided_by=decided_by,
                old_verdict=o.verdict, new_verdict=r.verdict,
            ))
            continue
        _, was, se_old = _measure(o)
        rise_low, paired, n_paired = None, None, None
        if isinstance(r, AttackResult) and isinstance(o, AttackResult):
            paired = _paired_rise(r, o, tolerance.get("tpr", 0.0), confidence)
        if paired is not None:
            was, value, _, low, n_paired = paired
            rise_low = low if significant else None
        elif significant and se is not None and se_old is not None:
            rise_low = value - was - z * math.sqrt(se**2 + se_old**2)
        delta = value - was
        rise = delta if rise_low is None else rise_low  # what is judged against the tolerance
        worse_verdict = _RANK[r.verdict.value] > _RANK[o.verdict.value]
        risen = name in tolerance and rise > tolerance[name]
        known = accepted.get(" | ".join(key)) if accepted else None
        newly = sorted(_vulnerable(r) - (set(known) if known is not None else _vulnerable(o)))
        too_many_new = "new-vulnerable" in tolerance and len(newly) > tolerance["new-vulnerable"]
        worse = worse_verdict or risen or too_many_new
        failed |= worse
        status = "regressed" if worse else ("improved" if delta < 0 and not worse_verdict else "unchanged")
        changes.append(GateChange(
            status=status, test_id=test_id, attack=attack, gate=gate, decided_by=decided_by, measure=name,
            old=was, new=value, delta=delta, rise_low=rise_low, paired=paired is not None, n_paired=n_paired,
            old_verdict=o.verdict, new_verdict=r.verdict, newly_vulnerable=newly,
        ))
    if unmatched["ambiguous"]:
        notes.append(
            f"{len(unmatched['ambiguous'])} gate(s) are recorded more than once with the same identity in one run "
            f"({'; '.join(unmatched['ambiguous'][:3])}): which results to pair is not known, so they are not compared; "
            "give each gate of a test its own parameters (or its own test)."
        )
    if unmatched["not comparable"]:
        notes.append(
            f"{len(unmatched['not comparable'])} gate(s) audited other data than in the stored run: their measures "
            "are not comparable. If the data changed on purpose, say so (--privacy-compare-data-changed, or "
            "compare --data-changed) to compare them anyway."
        )
    elif data_changed:
        notes.append("the data changed on purpose (as said): gates on other data are compared all the same.")
    if unmatched["gone"]:
        notes.append(
            f"{len(unmatched['gone'])} gate(s) of the old report have no result in the new one (deselected, renamed, or "
            "erroring before their assertion): a gate that disappears fails the comparison; pass "
            "--allow-missing if that was intended."
        )
    if switched:
        notes.append(
            "the default attack that decided differs between the runs (the references at hand choose it), "
            f"so those measures come from different attacks: {'; '.join(switched[:3])}."
        )
    if any(unmatched.values()) and not allow_missing:
        failed = True
    if not new.results and new.note:
        notes.append(f"the new report is empty: {new.note}")
    return ReleaseComparison(
        against=against, against_created=old.created, against_commit=old.commit,
        criteria=",".join(f"{c.measure}:+{c.tolerance:g}" for c in criteria) or None, confidence=confidence,
        failed=failed, changes=changes, notes=notes,
    )


def _by_identity(results: list[AnyResult]) -> dict[tuple[str, str, str], list[AnyResult]]:
    """Results grouped by :func:`gate_identity`, in the order they were recorded."""
    out: dict[tuple[str, str, str], list[AnyResult]] = {}
    for r in results:
        out.setdefault(gate_identity(r), []).append(r)
    return out


_LABEL = {"tpr": "TPR", "auc": "AUC", "eps": "eps>="}
_HEADER = ("status", "gate", "attack", "measure", "old", "new", "change", "lower bound", "verdict", "newly vulnerable")


def comparison_rows(c: ReleaseComparison) -> list[tuple[str, ...]]:
    """One row of text cells per gate, in the order of ``comparison_header()``: what the terminal
    and Markdown tables show (the HTML report formats the same changes)."""
    rows = []
    for g in c.changes:
        def num(v: float | None, sign: str = "") -> str:
            return "-" if v is None else f"{v:{sign}.4f}"

        bound = "-" if g.rise_low is None else f"{g.rise_low:+.4f}" + (f" paired n={g.n_paired:,}" if g.paired else "")
        verdict = " -> ".join(v.value for v in (g.old_verdict, g.new_verdict) if v is not None)
        rows.append((
            g.status.upper(), f"{g.test_id}[{g.gate}]", g.attack + (f"({g.decided_by.replace(' ', '')})" if g.decided_by else ""),
            _LABEL.get(g.measure or "", "-"), num(g.old), num(g.new),
            num(g.delta, "+"), bound, verdict, str(len(g.newly_vulnerable)) if g.newly_vulnerable else "-",
        ))
    return rows


def comparison_header() -> tuple[str, ...]:
    """The column names of :func:`comparison_rows`."""
    return _HEADER


def comparison_lines(c: ReleaseComparison) -> list[str]:
    """The comparison as an aligned text table, then its notes (what the terminal shows)."""
    table = [comparison_header(), *comparison_rows(c)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return lines + c.notes
