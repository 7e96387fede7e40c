"""Command line: ``python -m pytest_privacy schema`` and ``python -m pytest_privacy compare OLD NEW``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .results import (
    AnyResult,
    AttackResult,
    DPAuditResult,
    SessionReport,
)


def _key(r: AnyResult) -> tuple[str, str, str]:
    gate = r.gate if isinstance(r, AttackResult) else ("dp_claim" if isinstance(r, DPAuditResult) else "relative")
    return (r.test_id or "-", r.attack, gate)


def _measure(r: AnyResult) -> tuple[str, float]:
    """What a result is judged by: its AUC for an AUC gate, an epsilon bound for an epsilon gate or a
    DP-claim audit, else its TPR."""
    if isinstance(r, DPAuditResult):
        return "epsilon", r.epsilon_low
    if isinstance(r, AttackResult) and r.gate == "auc":
        return "AUC", r.auc
    if isinstance(r, AttackResult) and r.gate == "epsilon" and r.epsilon_low is not None:
        return "epsilon", r.epsilon_low
    return "TPR", r.tpr


def compare(
    old: SessionReport, new: SessionReport, tolerance: float, *, allow_missing: bool = False
) -> tuple[list[str], bool]:
    """Lines describing what changed between two reports, and whether anything regressed: a result
    whose TPR (an AUC gate's AUC, an epsilon gate's epsilon bound) rose by more than ``tolerance``, whose verdict got worse
    (pass -> inconclusive/fail), or that is ``GONE`` (deselected, renamed, or erroring before its
    assertion) unless ``allow_missing``."""
    rank = {"pass": 0, "inconclusive": 1, "fail": 2}
    before = {_key(r): r for r in old.results}
    lines, regressed = [], False
    for r in new.results:
        o = before.get(_key(r))
        name, value = _measure(r)
        if o is None:
            lines.append(f"NEW          {r.test_id}  {r.attack}: {name} {value:.4f}, {r.verdict.value}")
            continue
        _, was = _measure(o)
        delta = value - was
        worse = delta > tolerance or rank[r.verdict.value] > rank[o.verdict.value]
        regressed |= worse
        tag = "REGRESSED" if worse else ("improved" if delta < -tolerance else "unchanged")
        lines.append(
            f"{tag:12} {r.test_id}  {r.attack}: {name} {was:.4f} -> {value:.4f} ({delta:+.4f}), "
            f"{o.verdict.value} -> {r.verdict.value}"
        )
    gone = sorted(before.keys() - {_key(r) for r in new.results})
    for key in gone:
        lines.append(f"GONE         {key[0]}  {key[1]} ({key[2]} gate): no result in the new report")
    if gone and not allow_missing:
        regressed = True
        lines.append(
            f"{len(gone)} gate(s) of the old report have no result in the new one (deselected, renamed, or "
            "erroring before their assertion): a gate that disappears fails the comparison; pass "
            "--allow-missing if that was intended."
        )
    if not new.results and new.note:
        lines.append(f"the new report is empty: {new.note}")
    return lines, regressed


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when ``compare`` finds a regression)."""
    parser = argparse.ArgumentParser(prog="python -m pytest_privacy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the JSON schema of --privacy-report files")
    cmp = sub.add_parser("compare", help="what got more vulnerable between two --privacy-report files")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--tolerance", type=float, default=0.01, help="TPR (or AUC) increase tolerated (default 0.01)")
    cmp.add_argument(
        "--allow-missing", action="store_true", help="a gate of OLD without a result in NEW is not a regression"
    )
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(SessionReport.model_json_schema(), indent=2))
        return 0
    try:
        old, new = (SessionReport.model_validate_json(p.read_text()) for p in (args.old, args.new))
    except (OSError, ValueError) as exc:
        print(f"cannot read the reports: {exc}", file=sys.stderr)
        return 2
    lines, regressed = compare(old, new, args.tolerance, allow_missing=args.allow_missing)
    print("\n".join(lines))
    return 1 if regressed else 0


if __name__ == "__main__":
    raise SystemExit(main())
