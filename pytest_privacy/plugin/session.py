"""The privacy side of a pytest session, as one object (as pytest-benchmark's ``BenchmarkSession``):
it gathers every test's results (from this process's reports, or from every xdist worker's on the
controller) and the model counts, and at the end builds the session report, compares it with a
stored run and hands it to every report writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ..report import from_json, hookspec, writers
from ..report.session_report import build_report
from ..report.summary import junit_properties
from .state import open_store, session_config

__all__ = ["RESULT_PROPERTY", "SESSION", "PrivacySession"]

#: The user property a test's result rides on, whole, from the worker to the controller.
RESULT_PROPERTY = "privacy_result"


@dataclass(eq=False)  # a plugin object: hashed by identity
class PrivacySession:
    """What a session gathered, across xdist workers, and what it does with it. Registered as a
    plugin (its ``pytest_runtest_logreport`` collects); the plugin's hooks call the rest."""

    config: pytest.Config
    results: list[Any] = field(default_factory=list)
    trained: int = 0
    loaded: int = 0
    seconds: float = 0.0
    covers: set[str] = field(default_factory=set)  # what the cache keys cover, per model source
    cleared: int | None = None  # files --privacy-clear-cache deleted
    lines: list[str] = field(default_factory=list)  # for the terminal summary, from the writers
    unreadable: int = 0  # results that could not be read back (the session then fails)

    @pytest.hookimpl(tryfirst=True)  # before junitxml reads the properties (from the teardown report)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take each result off its test's report (on the controller, or in the only process) and
        leave compact junit properties in its place."""
        if hasattr(self.config, "workerinput"):
            return
        kept = []
        for name, value in report.user_properties:
            if name != RESULT_PROPERTY:
                kept.append((name, value))
                continue
            try:
                result = from_json(value)
            except ValueError as exc:  # never an INTERNALERROR that ends the session: name the test
                self.lines.append(f"pytest-privacy: the result of {report.nodeid} could not be read back and is left out: {exc}")
                self.unreadable += 1
                continue
            if report.when == "call":  # every phase's report carries the properties: count them once
                self.results.append(result)
                self.config.hook.pytest_privacy_result(result=result, config=self.config)
            kept += junit_properties(result)  # the whole result, ROC included, is in the JSON report
        report.user_properties = kept

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add one process's model counts (``trained``, ``loaded``, ``seconds``, ``covers``)."""
        self.trained += counts["trained"]
        self.loaded += counts["loaded"]
        self.seconds += counts["seconds"]
        self.covers.update(counts["covers"])

    def write_reports(self, session: pytest.Session) -> None:
        """Build the session report, compare it, and call every ``pytest_privacy_write_reports``
        implementation, each on its own: one that fails is named in the summary and fails the run, and
        the others still write."""
        config = self.config
        settings = session_config(config)
        wanted = settings.compare is not None or any(w.wanted(settings) for w in writers.built_in_writers().values())
        if not (self.results or self.trained or self.loaded or wanted or self.cleared is not None):
            return
        if self.cleared is not None:
            root = open_store(config, settings).root
            self.lines.append(f"cache cleared: {self.cleared} files the store wrote deleted from {root}")
        if self.unreadable:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        report = build_report(
            self.results, settings.model_dump(mode="json"), models_trained=self.trained,
            models_loaded=self.loaded, seconds_training=self.seconds, cache_keys=sorted(self.covers),
        )
        try:
            report = writers.with_comparison(report, settings)
        except Exception as exc:  # the stored run was readable at configure time; say what broke since
            self.lines.append(f"pytest-privacy: the comparison with stored run {settings.compare!r} failed: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        regressed = report.comparison is not None and report.comparison.failed and settings.compare_fail is not None
        failed = session.exitstatus != pytest.ExitCode.OK or regressed
        report = report.model_copy(update={"outcome": "failed" if failed else "passed"})
        arguments = {"report": report, "settings": settings, "config": config, "write_line": self.lines.append}
        for impl in reversed(config.hook.pytest_privacy_write_reports.get_hookimpls()):  # tryfirst ones first
            try:
                impl.function(*[arguments[name] for name in impl.argnames])
            except hookspec.FailSession as exc:  # not a broken writer: a reason to fail the run
                self.lines.append(f"pytest-privacy: {exc}")
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            except Exception as exc:
                self.lines.append(f"pytest-privacy: the report writer {impl.plugin_name!r} failed: {exc!r}")
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def summary(self, terminalreporter: Any) -> None:
        """The ``privacy`` section of the terminal summary: what the writers said (a broken writer in red)."""
        if not self.lines:
            return
        terminalreporter.section("privacy")
        for line in self.lines:
            failed = line.startswith("pytest-privacy: the report writer")
            terminalreporter.write_line(line, red=failed, bold=failed)


SESSION = pytest.StashKey[PrivacySession]()
