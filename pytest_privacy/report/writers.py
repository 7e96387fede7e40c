"""The built-in writers: implementations of ``pytest_privacy_write_reports`` (see :mod:`.hookspec`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..config import PrivacyConfig
from ..results import SessionReport
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
