"""Command line: ``python -m pytest_privacy schema``, ``list`` and ``compare OLD NEW``."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .report.compare import Criterion, compare_reports, comparison_lines, parse_criteria
from .report.storage import RunStorage, StoredRunError
from .results import SessionReport


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when ``compare`` finds a regression)."""
    parser = argparse.ArgumentParser(prog="python -m pytest_privacy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the JSON schema of --privacy-report files")
    lst = sub.add_parser("list", help="the runs stored by --privacy-autosave / --privacy-save")
    lst.add_argument("--storage", default=".privacy", help="where they are stored (default: .privacy)")
    cmp = sub.add_parser("compare", help="what got more vulnerable between two --privacy-report files")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument(
        "--tolerance", type=float, default=0.01,
        help="point-estimate increase of TPR (AUC, epsilon bound) tolerated (default 0.01); see --fail",
    )
    cmp.add_argument(
        "--fail", metavar="CRITERIA",
        help="judge significance instead, as --privacy-compare-fail does: tpr:+0.01,auc:+0.02,eps:+0.5,new-vulnerable:5",
    )
    cmp.add_argument(
        "--allow-missing", action="store_true",
        help="a gate of OLD without a result in NEW (or recorded ambiguously, or on other data) is not a regression",
    )
    cmp.add_argument(
        "--data-changed", action="store_true",
        help="the data changed on purpose: compare gates audited on other data all the same",
    )
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(SessionReport.model_json_schema(), indent=2))
        return 0
    if args.command == "list":
        return _list(args.storage)
    try:
        old, new = (SessionReport.model_validate_json(p.read_text()) for p in (args.old, args.new))
    except (OSError, ValueError) as exc:
        print(f"cannot read the reports: {exc}", file=sys.stderr)
        return 2
    if args.fail:
        try:
            criteria, significant = parse_criteria(args.fail), True
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    else:
        criteria, significant = [Criterion(m, args.tolerance) for m in ("tpr", "auc", "eps")], False
    comparison = compare_reports(
        old, new, criteria, significant=significant, allow_missing=args.allow_missing, against=str(args.old),
        data_changed=args.data_changed,
    )
    print("\n".join(comparison_lines(comparison)))
    return 1 if comparison.failed else 0


def _list(url: str) -> int:
    """Print one line per stored run; a run that cannot be read or trusted is named with what is
    wrong with it, the others are still listed (exit status 1 when any is bad, or none is stored)."""
    try:
        storage = RunStorage(url)
        runs = storage.runs()
    except (OSError, ValueError, ImportError) as exc:
        print(f"cannot read the stored runs under {url}: {exc}", file=sys.stderr)
        return 2
    if not runs:
        where = "does not exist" if not storage.fs.exists(storage.root) else "holds no stored run"
        print(f"no stored runs: {url} {where} (store one with --privacy-autosave or --privacy-save=NAME).", file=sys.stderr)
        return 1
    bad = 0
    for run in runs:
        try:
            report = storage.read(run)
        except StoredRunError as exc:
            bad += 1
            print(f"{run.number:4d}  {run.name}  UNREADABLE: {exc}")
            continue
        verdicts = Counter(r.verdict.value for r in report.results)
        counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "no results"
        outcome = f"  session {report.outcome}" if report.outcome else ""
        print(f"{run.number:4d}  {run.name}  {report.created}  commit {(report.commit or '-')[:10]}  {counts}{outcome}")
    if bad:
        print(f"{bad} of {len(runs)} stored runs cannot be used (see above).", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
