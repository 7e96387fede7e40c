"""Command line: ``python -m pytest_privacy schema`` and ``python -m pytest_privacy compare OLD NEW``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .results import AttackResult, ComparisonResult, SessionReport


def _key(r: AttackResult | ComparisonResult) -> tuple[str, str, str]:
    gate = r.gate if isinstance(r, AttackResult) else "relative"
    return (r.test_id or "-", r.attack, gate)


def _tpr(r: AttackResult | ComparisonResult) -> float:
    return r.tpr


def compare(old: SessionReport, new: SessionReport, tolerance: float) -> tuple[list[str], bool]:
    """Lines describing what changed between two reports, and whether anything regressed: a result
    whose TPR rose by more than ``tolerance``, or whose verdict got worse (pass -> inconclusive/fail)."""
    rank = {"pass": 0, "inconclusive": 1, "fail": 2}
    before = {_key(r): r for r in old.results}
    lines, regressed = [], False
    for r in new.results:
        o = before.get(_key(r))
        if o is None:
            lines.append(f"NEW          {r.test_id}  {r.attack}: TPR {_tpr(r):.4f}, {r.verdict.value}")
            continue
        delta = _tpr(r) - _tpr(o)
        worse = delta > tolerance or rank[r.verdict.value] > rank[o.verdict.value]
        regressed |= worse
        tag = "REGRESSED" if worse else ("improved" if delta < -tolerance else "unchanged")
        lines.append(
            f"{tag:12} {r.test_id}  {r.attack}: TPR {_tpr(o):.4f} -> {_tpr(r):.4f} ({delta:+.4f}), "
            f"{o.verdict.value} -> {r.verdict.value}"
        )
    for key in before.keys() - {_key(r) for r in new.results}:
        lines.append(f"GONE         {key[0]}  {key[1]}")
    return lines, regressed


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when ``compare`` finds a regression)."""
    parser = argparse.ArgumentParser(prog="python -m pytest_privacy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the JSON schema of --privacy-report files")
    cmp = sub.add_parser("compare", help="what got more vulnerable between two --privacy-report files")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--tolerance", type=float, default=0.01, help="TPR increase tolerated (default 0.01)")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(SessionReport.model_json_schema(), indent=2))
        return 0
    try:
        old, new = (SessionReport.model_validate_json(p.read_text()) for p in (args.old, args.new))
    except (OSError, ValueError) as exc:
        print(f"cannot read the reports: {exc}", file=sys.stderr)
        return 2
    lines, regressed = compare(old, new, args.tolerance)
    print("\n".join(lines))
    return 1 if regressed else 0


if __name__ == "__main__":
    raise SystemExit(main())
