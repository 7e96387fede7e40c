"""The Markdown summary (``--privacy-markdown``), for CI step summaries.

Each session appends one section (GitHub's ``$GITHUB_STEP_SUMMARY`` is appended to by every step):
a heading, one line of context, and a table with one row per result.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ..results import (
    AnyResult,
    ComparisonResult,
    DPAuditResult,
    LMAuditResult,
    SessionReport,
    Verdict,
)
from .summary import (
    decided_tpr,
    dp_claim_text,
    dp_power,
    dp_proven,
    lm_measurement,
    session_outcome,
    verdict_label,
)

__all__ = ["append_markdown", "format_markdown"]

HEADING = "## pytest-privacy"
COLUMNS = ("Verdict", "Test", "Attack", "Measured", "Limit", "n")
NO_RESULTS = "no privacy result was recorded in this session"  # when an empty report carries no note


def append_markdown(report: SessionReport, path: str | Path) -> None:
    """Append a Markdown section with ``report``'s verdicts to ``path`` (its folder created if missing).

    The whole section goes in one write on one ``open(path, "a")``, so a reader of the file (or
    another step appending to it) never sees half a table.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = format_markdown(report)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def format_markdown(report: SessionReport) -> str:
    """The Markdown section for ``report``: heading, a line of context, then one table row per result
    (an empty report: the heading and its note). Starts with a blank line, so that it stands apart
    from whatever the file held before, and ends with one."""
    lines = ["", HEADING, ""]
    outcome = session_outcome(report)
    if outcome is not None:
        lines += [f"**Session {outcome[0]}**: " + _foreign(outcome[1]), ""]
    if not report.results:
        lines += [_foreign(report.note or NO_RESULTS), ""]
        return "\n".join(lines) + "\n"
    lines += [_context(report), ""]
    lines += [_row(COLUMNS), _row(["---"] * len(COLUMNS))]
    lines += [_row(_cells(r)) for r in report.results]
    lines += _comparison(report)
    return "\n".join(lines) + "\n\n"


def _comparison(report: SessionReport) -> list[str]:
    """The release-to-release table (``--privacy-compare``), the terminal's columns."""
    from .compare import comparison_header, comparison_rows

    c = report.comparison
    if c is None:
        return []
    outcome = "**failed**" if c.failed else "no regression"
    criteria = f", failing on `{c.criteria}`" if c.criteria else ""
    run = c.against_run or c.against
    lines = ["", _foreign(f"Against stored run {run} ({c.against_created}){criteria}: ") + outcome, ""]
    lines += [_row(comparison_header()), _row(["---"] * len(comparison_header()))]
    lines += [_row([_code(cell) if i == 1 else _foreign(cell) for i, cell in enumerate(row)]) for row in comparison_rows(c)]
    return lines + [_foreign(n) for n in c.notes]


def _context(report: SessionReport) -> str:
    counts = Counter(r.verdict for r in report.results)
    n = len(report.results)
    verdicts = ", ".join(f"{counts[v]} {v.value}" for v in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.MEASURED) if counts[v])
    parts = [f"{n} result{'s' if n != 1 else ''} ({verdicts})"]
    models = f"models: {report.models_trained} trained"
    if report.models_trained:
        models += f" in {report.seconds_training:.1f}s"
    parts.append(f"{models}, {report.models_loaded} loaded from cache")
    run = [f"{key} {report.config[key]}" for key in ("seed", "profile") if report.config.get(key) is not None]
    if run:
        parts.append(", ".join(run))
    return _text("; ".join(parts))


def _cells(r: AnyResult) -> list[str]:
    measured, limit, n = _measurement(r)
    return [f"**{verdict_label(r)}**", _code(r.test_id or "-"), _foreign(f"{r.attack} ({r.variant})"), _text(measured), _text(limit), n]


def _measurement(r: AnyResult) -> tuple[str, str, str]:
    """The headline measurement, the limit it was held to, and the sample size."""
    if isinstance(r, LMAuditResult):
        return lm_measurement(r, symbols="greek")
    if isinstance(r, DPAuditResult):
        return (
            f"{dp_proven(r, symbols='greek')} ({dp_power(r)})",
            f"claim {dp_claim_text(r, symbols='greek')}",
            f"{r.n_canaries} canaries",
        )
    if isinstance(r, ComparisonResult):
        return (
            (
                f"TPR {r.tpr:.4f} vs baseline {r.tpr_baseline:.4f} at FPR {r.fpr:g} "
                f"(difference {r.tpr_diff:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}])"
            ),
            f"difference ≤ {r.margin:g}",
            f"{r.n_members}/{r.n_nonmembers}",
        )
    n = f"{r.n_members}/{r.n_nonmembers}"
    if r.gate == "auc":
        return f"AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}]", f"AUC ≤ {r.max_auc:g}", n
    if r.gate == "epsilon":
        return f"ε ≥ {r.epsilon_low:.3f}", f"ε ≤ {r.max_epsilon:g}", n
    if r.gate == "measure":
        return decided_tpr(r, le=" ≤ ", ge=" ≥ "), "none (a measurement)", n
    return decided_tpr(r, le=" ≤ ", ge=" ≥ "), f"TPR ≤ {r.max_tpr:g} at FPR {r.fpr:g}", n


def _row(cells: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


_NEWLINES = re.compile(r"\r\n|\r|\n")


def _pipes(text: str) -> str:
    # GFM splits a row at every pipe not escaped by a backslash, code spans included; a backslash
    # already before a pipe is doubled too, so that it cannot escape the escaping one.
    return re.sub(r"(\\*)\|", lambda m: m.group(1) * 2 + r"\|", text)


def _text(text: str) -> str:
    """A table cell (or a line) of plain text: pipes escaped, line breaks as ``<br>``."""
    return _NEWLINES.sub("<br>", _pipes(text))


def _foreign(text: str) -> str:
    """A cell (or line) of text that is not this writer's own: attack names and variants (a
    conftest registers them), a stored run's fields (anyone with write access edits them), notes
    quoting test ids. HTML is escaped (``<img>`` renders as text) and brackets too, so no Markdown
    link or image can form; then as :func:`_text`."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _text(re.sub(r"([\\\[\]])", r"\\\1", escaped))


def _code(text: str) -> str:
    """A table cell as inline code (test ids hold ``_``, ``*`` and ``[``): one line, pipes escaped,
    fenced by more backticks than it holds in a row."""
    text = _NEWLINES.sub(" ", text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _pipes(f"{fence}{pad}{text}{pad}{fence}")
