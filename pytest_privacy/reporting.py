"""Session report: results recorded by the assert_* helpers, the terminal summary, the JSON file."""

from __future__ import annotations

import datetime
import platform
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .results import AttackResult, ComparisonResult, Result, SessionReport

__all__ = [
    "RESULT_PROPERTY",
    "build_report",
    "clear_results",
    "current_test",
    "format_summary",
    "parse_result",
    "record_result",
    "recorded_results",
    "write_report",
]

# Name under which each result rides on its test's user_properties (junitxml, xdist).
RESULT_PROPERTY = "privacy_result"

current_test: ContextVar[str | None] = ContextVar("pytest_privacy_current_test", default=None)
_RESULTS: list[AttackResult | ComparisonResult] = []
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Result)


def record_result(result: AttackResult | ComparisonResult) -> Any:
    """Add a result to this process's report, tagged with the running test's id when there is one."""
    if result.test_id is None and current_test.get() is not None:
        result = result.model_copy(update={"test_id": current_test.get()})
    _RESULTS.append(result)
    return result


def recorded_results() -> list[AttackResult | ComparisonResult]:
    """Every result recorded in this process so far."""
    return list(_RESULTS)


def clear_results() -> None:
    """Forget recorded results (a new session)."""
    _RESULTS.clear()


def parse_result(text: str) -> AttackResult | ComparisonResult:
    """A result from its JSON (as carried in ``user_properties``)."""
    return _ADAPTER.validate_json(text)


def format_summary(results: list[AttackResult | ComparisonResult]) -> list[str]:
    """One line per result: verdict, test, attack, TPR (interval) at the achieved FPR, limit, AUC,
    epsilon lower bound, sample sizes, seed and time."""
    lines = []
    for r in results:
        tail = f"seed={r.seed}, {r.seconds or 0:.1f}s"
        if isinstance(r, ComparisonResult):
            lines.append(
                f"{r.verdict.value.upper():12} {r.test_id or '-'}  {r.attack} ({r.variant}) at FPR {r.fpr:g}: "
                f"TPR {r.tpr:.4f} vs baseline {r.tpr_baseline:.4f} (difference {r.tpr_diff:+.4f} "
                f"[{r.diff_low:+.4f}, {r.diff_high:+.4f}], margin {r.margin:g}), accuracy {r.accuracy:.3f} vs "
                f"{r.accuracy_baseline:.3f}, n={r.n_members}/{r.n_nonmembers}, {tail}"
            )
            continue
        if r.gate == "auc":
            measured = f"AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}], limit AUC<={r.max_auc:g}"
        else:
            measured = (
                f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f}, "
                f"limit TPR<={r.max_tpr:g}@FPR{r.fpr:g}, AUC {r.auc:.3f}"
            )
        eps = f", eps>={r.epsilon_low:.2f}" if r.epsilon_low is not None else ""
        queries = f", {r.queries:,} queries" if r.queries else ""
        lines.append(
            f"{r.verdict.value.upper():12} {r.test_id or '-'}  {r.attack} ({r.variant}): {measured}{eps}, "
            f"n={r.n_members}/{r.n_nonmembers}, refs={r.n_references}{queries}, {tail}"
        )
    return lines


def build_report(
    results: list[AttackResult | ComparisonResult], config: dict[str, Any], *, models_trained: int = 0,
    models_loaded: int = 0, note: str | None = None,
) -> SessionReport:
    """The versioned report of a run: results, settings, library versions and platform (``note``
    says why a report has no results)."""
    from . import __version__

    torch = sys.modules.get("torch")
    return SessionReport(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        pytest_privacy=__version__,
        torch=getattr(torch, "__version__", None),
        python=platform.python_version(),
        platform=platform.platform(),
        config=config,
        models_trained=models_trained,
        models_loaded=models_loaded,
        results=results,
        note=note,
    )


def write_report(path: str | Path, report: SessionReport) -> None:
    """Write the report as JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(report.model_dump_json(indent=2))
    tmp.replace(path)
