"""Stored-run settings through pytest: criteria typos, bad names and unusable storage are usage
errors before any test runs (the end-to-end release comparison, with a CI retry, is an integration
scenario: tests/integration/test_scenarios.py)."""

import pytest

GATE = """
from pytest_privacy import measure_attack

def test_release(target_model, membership_data):
    measure_attack(target_model, membership_data)
"""


def test_a_misspelt_criterion_is_a_usage_error(pytester):
    pytester.makepyfile(test_release=GATE)
    result = pytester.runpytest_subprocess("--privacy-compare-fail=tpp:+0.01")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot read the comparison criterion 'tpp:+0.01'*"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--privacy-save=my run"], "letters, digits"),
        (["--privacy-compare=v9"], "no stored run 'v9'"),
        (["--privacy-compare-fail=tpr:+0.01"], "needs --privacy-compare"),
        (["--privacy-autosave", "--privacy-storage=nosuchprotocol://bucket/runs"], "--privacy-storage=nosuchprotocol"),
        (["--privacy-save="], "may not be empty"),
        (["--privacy-save=42"], "reads digits as a run number"),
        (["--privacy-autosave", "--privacy-storage=afile"], "is a file, not a folder"),
        (["--privacy-autosave", "--privacy-storage=afile/runs"], "cannot be written"),  # (root writes read-only folders)
    ],
)
def test_stored_run_settings_are_checked_before_any_test_runs(pytester, args, message):
    pytester.makepyfile(test_release="def test_x():\n    raise AssertionError('must not run')\n")
    (pytester.path / "afile").write_text("not a folder")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
