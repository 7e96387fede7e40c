"""Session report: results recorded by the assert_* helpers, the terminal summary, the JSON file."""

from __future__ import annotations

import json
from contextvars import ContextVar
from pathlib import Path

from .results import AttackResult, ComparisonResult

Result = AttackResult | ComparisonResult

__all__ = ["clear_results", "current_test", "format_summary", "record_result", "recorded_results", "write_report"]

current_test: ContextVar[str | None] = ContextVar("pytest_privacy_current_test", default=None)
_RESULTS: list[Result] = []


def record_result(result: Result) -> Result:
    """Add a result to the session report, tagged with the running test's id when there is one."""
    if result.test_id is None and current_test.get() is not None:
        result = result.model_copy(update={"test_id": current_test.get()})
    _RESULTS.append(result)
    return result


def recorded_results() -> list[Result]:
    """Every result recorded in this process so far."""
    return list(_RESULTS)


def clear_results() -> None:
    """Forget recorded results (a new session)."""
    _RESULTS.clear()


def format_summary(results: list[Result]) -> list[str]:
    """One line per result: test, attack, TPR (interval) at the achieved FPR, limit, AUC, verdict."""
    lines = []
    for r in results:
        if isinstance(r, ComparisonResult):
            lines.append(
                f"{r.verdict.value.upper():12} {r.test_id or '-'}  {r.attack} ({r.variant}) at FPR {r.fpr:g}: "
                f"TPR {r.tpr:.4f} vs baseline {r.tpr_baseline:.4f} (difference {r.tpr_diff:+.4f} "
                f"[{r.diff_low:+.4f}, {r.diff_high:+.4f}], margin {r.margin:g}), accuracy {r.accuracy:.3f} vs "
                f"{r.accuracy_baseline:.3f}, n={r.n_members}/{r.n_nonmembers}, seed={r.seed}"
            )
            continue
        if r.gate == "auc":
            measured = f"AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}], limit AUC<={r.max_auc:g}"
        else:
            measured = (
                f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f}, "
                f"limit TPR<={r.max_tpr:g}@FPR{r.fpr:g}, AUC {r.auc:.3f}"
            )
        lines.append(
            f"{r.verdict.value.upper():12} {r.test_id or '-'}  {r.attack} ({r.variant}): {measured}, "
            f"n={r.n_members}/{r.n_nonmembers}, refs={r.n_references}, seed={r.seed}"
        )
    return lines


def write_report(path: str | Path, results: list[Result]) -> None:
    """Write results as JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"results": [r.model_dump(mode="json") for r in results]}, indent=2))
    tmp.replace(path)
