"""Release to release through pytest: stored runs, a comparison that fails the session only on a
significant regression, the list command, and criteria typos as usage errors."""

import pytest
from helpers import NOISE_LABELS_CONFTEST

from pytest_privacy.__main__ import main as cli

GATE = """
from pytest_privacy import assert_auc_below

def test_release(target_model, membership_data):
    assert_auc_below(target_model, membership_data, max_auc=1.0)  # records the AUC; never fails
"""


@pytest.mark.slow
def test_a_memorising_release_fails_against_the_stored_regularised_one(pytester, capsys):
    pytester.makepyfile(test_release=GATE)
    pytester.makeconftest(NOISE_LABELS_CONFTEST.replace("epochs=40", "epochs=1"))  # barely trained
    first = pytester.runpytest_subprocess("--privacy-references=4", "--privacy-autosave", "--privacy-save=v1")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*privacy run stored as 1:v1 in .privacy*"])
    same = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-compare=v1", "--privacy-compare-fail=auc:+0.02"
    )
    assert same.ret == 0, same.stdout.str()  # the same model again: no regression
    same.stdout.fnmatch_lines(["*UNCHANGED*t*release*"])
    pytester.makeconftest(NOISE_LABELS_CONFTEST)  # 40 epochs on random labels: memorises
    second = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-autosave", "--privacy-compare", "--privacy-compare-fail=auc:+0.02",
        "--privacy-html=r.html", "--privacy-markdown=s.md",
    )
    assert second.ret == 1
    # Its own gate passed, but the session failed: every report opens with the session's outcome.
    html, markdown = (pytester.path / "r.html").read_text(), (pytester.path / "s.md").read_text()
    assert 'class="outcome failed"' in html and "SESSION FAILED" in html and "privacy regression against" in html
    assert "**Session failed**: a privacy regression against stored run 1:v1" in markdown
    second.stdout.fnmatch_lines([
        "*compared with stored run 1:v1 (the latest stored run*", "*REGRESSED*test_release*AUC*",
        "*privacy regression against stored run*",
    ])
    # CI retries the failed job: the failing run was stored, but it is no baseline, so the retry
    # still compares with v1 and still fails (it once compared with itself: UNCHANGED, exit 0).
    retry = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-autosave", "--privacy-compare", "--privacy-compare-fail=auc:+0.02"
    )
    assert retry.ret == 1
    retry.stdout.fnmatch_lines(["*compared with stored run 1:v1 (the latest that passed; newer failing run(s) 2:*"])
    capsys.readouterr()  # (the pytest runs above printed too)
    assert cli(["list", "--storage", str(pytester.path / ".privacy")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and "v1" in listed[0] and "session passed" in listed[0]
    assert "1 pass" in listed[1] and "session failed" in listed[1]


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
