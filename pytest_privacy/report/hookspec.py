"""Hooks pytest-privacy calls, for other plugins (and conftest files) to implement.

Register nothing: pytest finds implementations in any plugin or ``conftest.py`` by name, e.g.::

    def pytest_privacy_write_reports(report, write_line):
        (Path("privacy.csv")).write_text("\\n".join(f"{r.test_id},{r.verdict.value}" for r in report.results))
        write_line("privacy CSV written to privacy.csv")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

__all__ = ["FailSession", "pytest_privacy_result", "pytest_privacy_write_reports"]

import pytest

if TYPE_CHECKING:
    from ..config import PrivacyConfig
    from ..results import AnyResult, SessionReport


@pytest.hookspec
def pytest_privacy_result(result: AnyResult, config: pytest.Config) -> None:
    """A privacy result arrived: called as each test's report arrives, on the xdist controller (or in
    the only process), once per result of the test."""


@pytest.hookspec
def pytest_privacy_write_reports(
    report: SessionReport, settings: PrivacyConfig, config: pytest.Config, write_line: Callable[[str], None]
) -> None:
    """Write the session's results out (a file, a dashboard), once at the end of the session, on the
    xdist controller or in the only process, with every worker's results in ``report``.

    ``write_line`` adds a line to the ``privacy`` section of the terminal summary. The built-in
    writers (summary lines, ``--privacy-report`` JSON, ``--privacy-plots``) are implementations of
    this hook too. A writer that raises is named in the summary and fails the run: a report that was
    asked for and not written must not pass unnoticed. A writer that wrote what it had to and found a
    reason to fail the session (the release-to-release comparison found a regression) raises
    :class:`FailSession`: its message is shown as is and the run fails, with no writer blamed.
    """


class FailSession(Exception):
    """Raised by a ``pytest_privacy_write_reports`` implementation to fail the session on purpose."""
