"""The built-in writers: implementations of ``pytest_privacy_write_reports`` (see :mod:`.hookspec`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..config import PrivacyConfig
from ..results import SessionReport
from .compare import comparison_lines
from .hookspec import FailSession
from .session_report import write_report
from .summary import format_summary

EMPTY_REPORT = (
    "no privacy result was recorded in this session: no privacy gate ran to its assertion "
    "(deselected, skipped, or erroring before it)"
)


@pytest.hookimpl(tryfirst=True)  # the summary lines come first in the section
def pytest_privacy_write_reports(report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
    """Terminal summary: one line per result, then what was trained and loaded."""
    for line in format_summary(report.results):
        write_line(line)
    if report.models_trained or report.models_loaded:
        where = "cache off" if settings.no_cache else settings.cache_dir or "cache under .pytest_cache"
        write_line(
            f"models: {report.models_trained} trained in {report.seconds_training:.1f}s, "
            f"{report.models_loaded} loaded from cache ({where})"
        )
        for line in report.cache_keys:
            write_line(f"  cache key covers {line}")
    c = report.comparison
    if c is not None:
        criteria = f", failing on {c.criteria}" if c.criteria else ""
        run = f"{c.against_run} ({c.against_why}, " if c.against_run else f"{c.against!r} ("
        write_line(
            f"compared with stored run {run}{c.against_created}, commit {c.against_commit or '-'}){criteria}; "
            f"changes at {c.confidence:.0%}:"
        )
        for line in comparison_lines(c):
            write_line("  " + line)


class JsonWriter:
    """``--privacy-report=PATH``: the session report as JSON (empty, with a note, when nothing ran)."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        if not settings.report:
            return
        if not report.results:
            report = report.model_copy(update={"note": EMPTY_REPORT})
        write_report(settings.report, report)
        write_line(f"privacy report written to {settings.report}" + (f" (empty: {report.note})" if report.note else ""))


class PlotsWriter:
    """``--privacy-plots=DIR``: a log-log ROC plot per attack result."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        if not settings.plots:
            return
        from .plots import write_plots

        written = write_plots(report.results, settings.plots)
        write_line(f"{len(written)} ROC plots written to {settings.plots}")


class HtmlWriter:
    """``--privacy-html=PATH``: one self-contained HTML file (``report/html.py``)."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        if not settings.html:
            return
        from .html import write_html

        write_html(report, settings.html)
        write_line(f"privacy HTML report written to {settings.html}")


class MarkdownWriter:
    """``--privacy-markdown=PATH``: a Markdown table of the verdicts, appended (``report/markdown.py``)."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        if not settings.markdown:
            return
        from .markdown import append_markdown

        append_markdown(report if report.results else report.model_copy(update={"note": EMPTY_REPORT}), settings.markdown)
        write_line(f"privacy summary appended to {settings.markdown}")


def with_comparison(report: SessionReport, settings: PrivacyConfig) -> SessionReport:
    """``report`` with its comparison against ``--privacy-compare``'s stored run attached (before any
    writer runs, and before this run is stored: "latest" is the run before this one), so that every
    writer (terminal, HTML, Markdown, JSON) shows the same comparison."""
    if not settings.compare:
        return report
    from .compare import compare_reports, parse_criteria
    from .storage import RunStorage

    storage = RunStorage(settings.storage)
    run, old, why = storage.baseline(settings.compare)
    comparison = compare_reports(
        old, report, parse_criteria(settings.compare_fail) if settings.compare_fail else [],
        confidence=settings.confidence, accepted=storage.accepted_vulnerable(), against=settings.compare,
        data_changed=settings.compare_data_changed,
    )
    return report.model_copy(update={"comparison": comparison.model_copy(update={"against_run": run.label, "against_why": why})})


class StoredRunsWriter:
    """``--privacy-autosave``/``--privacy-save`` (store this session's report),
    ``--privacy-snapshot-update`` (accept this session's most vulnerable records), and
    ``--privacy-compare-fail`` (fail the session when the comparison found a regression)."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        from .storage import RunStorage

        if not (settings.autosave or settings.save is not None or settings.snapshot_update or settings.compare_fail):
            return
        storage = RunStorage(settings.storage)
        if settings.autosave or settings.save is not None:
            stored = storage.save(report, settings.save)
            write_line(f"privacy run stored as {stored.number}:{stored.name} in {settings.storage}")
        if settings.snapshot_update:
            gates = storage.accept_vulnerable(report)
            write_line(f"most vulnerable records of {gates} gates accepted as the snapshot in {settings.storage}")
        if settings.compare_fail and report.comparison is not None and report.comparison.failed:
            raise FailSession(
                f"privacy regression against stored run {settings.compare!r} (--privacy-compare-fail="
                f"{settings.compare_fail}): see the comparison above"
            )
