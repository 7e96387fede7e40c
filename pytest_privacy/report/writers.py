"""The built-in writers: implementations of ``pytest_privacy_write_reports`` (see :mod:`.hookspec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

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


class FileWriter:
    """A built-in writer of one output: the setting that asks for it (``setting``, a
    :class:`~pytest_privacy.config.PrivacyConfig` field holding a path) and how to write it. A new
    format is its formatter plus one config field; every writer passes
    ``tests/plugin/test_writer_conformance.py``."""

    setting: ClassVar[str]

    def wanted(self, settings: PrivacyConfig) -> bool:
        """Whether ``settings`` ask for this output."""
        return bool(getattr(settings, self.setting))

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        if self.wanted(settings):
            write_line(self.write(report, getattr(settings, self.setting)))

    def write(self, report: SessionReport, target: str) -> str:
        """Write ``report`` to ``target``; the line the terminal summary shows."""
        raise NotImplementedError


class JsonWriter(FileWriter):
    """``--privacy-report=PATH``: the session report as JSON (empty, with a note, when nothing ran)."""

    setting = "report"

    def write(self, report: SessionReport, target: str) -> str:
        if not report.results:
            report = report.model_copy(update={"note": EMPTY_REPORT})
        write_report(target, report)
        return f"privacy report written to {target}" + (f" (empty: {report.note})" if report.note else "")


class PlotsWriter(FileWriter):
    """``--privacy-plots=DIR``: a log-log ROC plot per attack result."""

    setting = "plots"

    def write(self, report: SessionReport, target: str) -> str:
        from .plots import write_plots

        return f"{len(write_plots(report.results, target))} ROC plots written to {target}"


class HtmlWriter(FileWriter):
    """``--privacy-html=PATH``: one self-contained HTML file (``report/html.py``)."""

    setting = "html"

    def write(self, report: SessionReport, target: str) -> str:
        from .html import write_html

        write_html(report, target)
        return f"privacy HTML report written to {target}"


class MarkdownWriter(FileWriter):
    """``--privacy-markdown=PATH``: a Markdown table of the verdicts, appended (``report/markdown.py``)."""

    setting = "markdown"

    def write(self, report: SessionReport, target: str) -> str:
        from .markdown import append_markdown

        append_markdown(report if report.results else report.model_copy(update={"note": EMPTY_REPORT}), target)
        return f"privacy summary appended to {target}"


def built_in_writers() -> dict[str, FileWriter | StoredRunsWriter]:
    """The built-in writers by plugin name (the terminal summary, this module's own hook, comes first)."""
    return {
        "pytest-privacy-json": JsonWriter(), "pytest-privacy-plots": PlotsWriter(), "pytest-privacy-html": HtmlWriter(),
        "pytest-privacy-markdown": MarkdownWriter(), "pytest-privacy-storage": StoredRunsWriter(),
    }


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

    def wanted(self, settings: PrivacyConfig) -> bool:
        """Whether ``settings`` ask to store, accept or judge anything."""
        return bool(settings.autosave or settings.save is not None or settings.snapshot_update or settings.compare_fail)

    def pytest_privacy_write_reports(self, report: SessionReport, settings: PrivacyConfig, write_line: Callable[[str], None]) -> None:
        from .storage import RunStorage

        if not self.wanted(settings):
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
