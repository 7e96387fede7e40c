"""The built-in writers: implementations of ``pytest_privacy_write_reports`` (see :mod:`.hookspec`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..config import PrivacyConfig
from ..results import SessionReport
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


class StoredRunsWriter:
    """``--privacy-compare`` (against a stored run; ``--privacy-compare-fail`` makes regressions fail
    the run), ``--privacy-autosave``/``--privacy-save`` (store this session's report) and
    ``--privacy-snapshot-update`` (accept this session's most vulnerable records)."""

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        from .compare import compare_reports, parse_criteria
        from .storage import RunStorage

        if not (settings.compare or settings.autosave or settings.save or settings.snapshot_update):
            return
        storage = RunStorage(settings.storage)
        failed = False
        if settings.compare:  # before storing this run: "latest" means the one before it
            old = storage.load(settings.compare)
            criteria = parse_criteria(settings.compare_fail) if settings.compare_fail else []
            comparison = compare_reports(
                old, report, criteria, confidence=settings.confidence, accepted=storage.accepted_vulnerable()
            )
            write_line(f"compared with stored run {settings.compare!r} ({old.created}, commit {old.commit or '-'}):")
            for line in comparison.lines:
                write_line("  " + line)
            failed = comparison.failed and bool(criteria)
        if settings.autosave or settings.save:
            stored = storage.save(report, settings.save)
            write_line(f"privacy run stored as {stored.number}:{stored.name} in {settings.storage}")
        if settings.snapshot_update:
            gates = storage.accept_vulnerable(report)
            write_line(f"most vulnerable records of {gates} gates accepted as the snapshot in {settings.storage}")
        if failed:
            raise FailSession(
                f"privacy regression against stored run {settings.compare!r} (--privacy-compare-fail="
                f"{settings.compare_fail}): see the comparison above"
            )
