"""Every built-in report writer keeps the same contract: it writes nothing unless its setting asks
for it, writes its output where the setting says when asked (an empty session included), and says
so in one summary line. A new format passes this test by being a ``FileWriter``."""

import pytest

from pytest_privacy.config import resolve_config
from pytest_privacy.report import writers
from pytest_privacy.report.session_report import build_report
from tests.plugin.test_html_report import session_report

FILE_WRITERS = {name: w for name, w in writers.built_in_writers().items() if isinstance(w, writers.FileWriter)}


@pytest.mark.parametrize("name", sorted(FILE_WRITERS))
@pytest.mark.parametrize("empty", [False, True], ids=["results", "empty session"])
def test_every_file_writer_writes_exactly_what_its_setting_asks_for(tmp_path, name, empty):
    pytest.importorskip("matplotlib")
    writer = FILE_WRITERS[name]
    report = build_report([], {}) if empty else session_report()
    lines: list[str] = []
    writer.pytest_privacy_write_reports(report, resolve_config({}), lines.append)
    assert not lines and not list(tmp_path.iterdir()) and not writer.wanted(resolve_config({}))
    target = tmp_path / ("plots" if writer.setting == "plots" else f"out.{writer.setting}")
    settings = resolve_config({writer.setting: str(target)})
    assert writer.wanted(settings)
    writer.pytest_privacy_write_reports(report, settings, lines.append)
    assert len(lines) == 1 and str(target) in lines[0]
    if writer.setting == "plots":  # a folder of one figure per result: none for an empty session
        assert lines[0].startswith("0 ROC plots") if empty else any(target.glob("*.png"))
    else:
        assert target.is_file() and target.stat().st_size > 0
