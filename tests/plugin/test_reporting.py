"""Reports people read: the summary under xdist, junitxml properties, the JSON report and its CLI."""

import json
import subprocess
import sys

import pytest
from helpers import NOISE_LABELS_CONFTEST as CONFTEST

from pytest_privacy.__main__ import main as cli
from pytest_privacy.results import SessionReport

TESTS = """
import pytest
from pytest_privacy import assert_epsilon_below, assert_tpr_at_fpr_below

def test_leaks(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.1)

def test_unseen(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data.shuffled_membership(1), fpr=0.05, max_tpr=0.2)

def test_epsilon(target_model, membership_data):
    assert_epsilon_below(target_model, membership_data, max_epsilon=0.1)
"""


@pytest.fixture
def run(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gates=TESTS)
    return pytester


@pytest.mark.slow
def test_summary_under_xdist_is_printed_once_with_every_workers_results(run):
    junit = run.path / "junit.xml"
    report = run.path / "report.json"
    result = run.runpytest_subprocess(
        "-n", "2", "--privacy-references=4", f"--junitxml={junit}", f"--privacy-report={report}",
        f"--privacy-plots={run.path / 'plots'}",
    )
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert out.count("= privacy =") == 1
    for line in ["FAIL *test_leaks*eps>=*", "PASS *test_unseen*", "FAIL *test_epsilon*", "models: 5 trained in *"]:
        result.stdout.fnmatch_lines([line])  # xdist decides the order
    xml = junit.read_text()
    # junit carries each result's verdict and headline numbers, not its ROC (that is in the JSON).
    assert xml.count('name="privacy_verdict"') == 3 and 'name="privacy_result"' not in xml and "roc_fpr" not in xml
    assert '<property name="privacy_limit" value="TPR&lt;=0.1@FPR0.05"' in xml
    parsed = SessionReport.model_validate_json(report.read_text())
    assert parsed.schema_version == 1 and len(parsed.results) == 3 and parsed.models_trained == 5
    leak = next(r for r in parsed.results if r.test_id.endswith("test_leaks"))
    assert len(leak.most_vulnerable) == 10 and leak.epsilon_low > 0
    assert leak.roc_fpr[0] == 0 and leak.roc_tpr[-1] == 1 and len(leak.roc_tpr_low) == len(leak.roc_fpr)
    plots = sorted((run.path / "plots").glob("*.png"))
    assert len(plots) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


@pytest.mark.slow
def test_writers_are_hooks_a_conftest_can_add_and_a_failing_one_fails_the_run(pytester):
    pytester.makeconftest(
        CONFTEST + '''
def pytest_privacy_write_reports(report, write_line):
    lines = [f"{r.test_id},{r.attack},{r.verdict.value}" for r in report.results]
    open("privacy.csv", "w").write("\\n".join(lines))
    write_line(f"CSV with {len(lines)} results written")

seen = []

def pytest_privacy_result(result):
    seen.append(result.verdict.value)

def pytest_sessionfinish():
    open("seen.txt", "w").write(",".join(seen))
'''
    )
    pytester.makepyfile(test_gates=TESTS)
    # (A subprocess: in-process pytester runs unload torch afterwards, and torch cannot be imported twice.)
    result = pytester.runpytest_subprocess("--privacy-references=4")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*= privacy =*", "FAIL *test_leaks*", "CSV with 3 results written"])
    # (4 references: the helpers' default attack is rmia_ratio, pytest_privacy.attacks.default)
    assert sorted((pytester.path / "privacy.csv").read_text().split("\n"))[0].endswith("test_epsilon,rmia_ratio,fail")
    assert sorted((pytester.path / "seen.txt").read_text().split(",")) == ["fail", "fail", "pass"]
    # A writer that fails is named, the other writers still write, and a green run turns red.
    pytester.makepyfile(test_gates="def test_nothing(): pass\n")
    pytester.makeconftest("def pytest_privacy_write_reports(report):\n    raise OSError('disk full')\n")
    report = pytester.path / "r.json"
    result = pytester.runpytest(f"--privacy-report={report}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["pytest-privacy: the report writer *conftest.py* failed: OSError('disk full')"])
    assert SessionReport.model_validate_json(report.read_text()).note


def test_plots_without_matplotlib_name_the_extra(monkeypatch):
    import builtins

    from pytest_privacy.report.plots import write_plots

    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins, "__import__",
        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name.startswith("matplotlib") else real_import(name, *a, **k),
    )
    with pytest.raises(ImportError, match=r"pytest-privacy\[plot\]"):
        write_plots([], "unused")


def _report(*results: dict) -> str:
    return SessionReport(
        created="now", pytest_privacy="0", torch=None, python="3", platform="x", config={}, results=list(results)
    ).model_dump_json()


def _result(tpr: float, verdict: str, *, test_id: str = "t::release", gate: str = "tpr_at_fpr", auc: float = 0.6) -> dict:
    return {
        "verdict": verdict, "reason": "-", "fpr": 0.01, "max_tpr": 0.05, "confidence": 0.95, "tpr": tpr,
        "tpr_low": 0, "tpr_high": 1, "fpr_achieved": 0.01, "fpr_low": 0, "fpr_high": 0.02, "threshold": 1.0,
        "tpr_at_fpr": tpr, "n_members": 900, "n_nonmembers": 900, "auc": auc, "auc_low": 0.5, "auc_high": 0.7,
        "kind": "attack", "attack": "lira", "variant": "online", "n_references": 16, "seed": 0, "test_id": test_id,
        "gate": gate,
    }


def test_schema_and_compare_cli(tmp_path, capsys):
    assert cli(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "results" in schema["properties"]

    old, same, worse = tmp_path / "old.json", tmp_path / "same.json", tmp_path / "worse.json"
    old.write_text(_report(_result(0.02, "pass")))
    same.write_text(_report(_result(0.025, "pass")))
    worse.write_text(_report(_result(0.06, "fail")))
    assert cli(["compare", str(old), str(same)]) == 0
    assert "UNCHANGED" in capsys.readouterr().out
    assert cli(["compare", str(old), str(worse)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "pass -> fail" in out
    assert cli(["compare", str(old), str(tmp_path / "missing.json")]) == 2


def test_compare_fails_when_a_gate_is_gone_unless_allowed(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(_report(_result(0.02, "pass"), _result(0.02, "pass", test_id="t::other")))
    new.write_text(_report(_result(0.02, "pass")))
    assert cli(["compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    gone = [line.split() for line in out.splitlines() if line.startswith("GONE")]
    assert gone and gone[0][1].startswith("t::other[") and gone[0][2] == "lira" and "--allow-missing" in out
    assert cli(["compare", str(old), str(new), "--allow-missing"]) == 0
    # An empty new report (every gate deselected) loses every gate.
    new.write_text(_report())
    assert cli(["compare", str(old), str(new)]) == 1


def test_compare_judges_auc_gates_by_auc(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(_report(_result(0.02, "pass", gate="auc", auc=0.55)))
    new.write_text(_report(_result(0.02, "pass", gate="auc", auc=0.60)))  # same TPR, AUC up 0.05
    assert cli(["compare", str(old), str(new)]) == 1
    row = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("REGRESSED")][0]
    assert row[3:6] == ["AUC", "0.5500", "0.6000"]


def test_a_smoke_pass_is_labelled_a_smoke_check(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        from pytest_privacy import MembershipData, assert_tpr_at_fpr_below

        def test_gate():
            rng = np.random.default_rng(0)
            x = rng.normal(size=(2000, 3)).astype(np.float32)
            model = lambda xb: np.c_[xb[:, :1], -xb[:, :1]]  # no signal: a proven PASS
            assert_tpr_at_fpr_below(model, MembershipData(x, np.zeros(2000, int), np.arange(2000) < 1000), fpr=0.05, max_tpr=0.2, attack="loss")
        """
    )
    report = pytester.path / "r.json"
    smoke = pytester.runpytest("--privacy-profile=smoke", f"--privacy-report={report}")
    smoke.stdout.fnmatch_lines(["PASS (smoke) *test_gate*"])
    assert SessionReport.model_validate_json(report.read_text()).results[0].profile == "smoke"
    pytester.runpytest("--privacy-profile=ci").stdout.fnmatch_lines(["PASS         *test_gate*"])


def test_a_session_without_results_writes_an_empty_report_that_says_so(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.lira\ndef test_gate(): pass\n@pytest.mark.label_only\ndef test_other(): pass\n")
    report = pytester.path / "r.json"
    result = pytester.runpytest("--privacy-attacks=lira", f"--privacy-report={report}")
    result.assert_outcomes(passed=1, deselected=1)
    parsed = SessionReport.model_validate_json(report.read_text())
    assert parsed.results == [] and "no privacy result was recorded" in parsed.note
    assert "(empty: no privacy result was recorded" in result.stdout.str()


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "pytest_privacy", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["title"] == "SessionReport"


def test_a_writer_fails_the_session_on_purpose_with_fail_session(pytester):
    pytester.makeconftest(
        "from pytest_privacy.report.hookspec import FailSession\n"
        "def pytest_privacy_write_reports(report, write_line):\n"
        "    raise FailSession('the dashboard says this release regressed')\n"
    )
    pytester.makepyfile(
        "import numpy as np\n"
        "from pytest_privacy import MembershipData, measure_attack\n"
        "def test_x():\n"
        "    rng = np.random.default_rng(0)\n"
        "    x, y = rng.normal(size=(200, 3)).astype('float32'), rng.integers(0, 2, 200)\n"
        "    data = MembershipData(x, y, np.arange(200) % 2 == 0)\n"
        "    measure_attack(lambda xb: np.asarray(xb)[:, :2], data, attack='loss')\n"
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*pytest-privacy: the dashboard says this release regressed*"])
    assert "failed: FailSession" not in result.stdout.str()  # not blamed as a broken writer


def test_junit_names_each_figure_for_what_it_is_and_matches_the_summary():
    import numpy as np

    from pytest_privacy.report.summary import format_summary, junit_properties
    from pytest_privacy.results import AttackResult
    from pytest_privacy.stats.gates import gate

    rng = np.random.default_rng(0)
    member = np.r_[np.ones(900, bool), np.zeros(900, bool)]
    scores = np.r_[rng.normal(2, 1, 900), rng.normal(0, 1, 900)]
    results = [
        AttackResult(**gate(scores, member, fpr=f, max_tpr=0.3).model_dump(), attack="lira",
                     variant="online; family of 2, Holm", n_references=4, seed=0)
        for f in (0.02, 0.2)
    ]
    props = [dict(junit_properties(r)) for r in results]
    assert not set(props[0]) & set(props[1])  # a family's members get distinct names
    for r, p in zip(results, props):
        tag = f"[lira@{r.fpr:g}]"
        line = format_summary([r])[0]
        # the estimate and the certified bounds are the figures the summary line prints, by the same names
        assert f"estimate {p['privacy_tpr_estimate' + tag]} at FPR {r.fpr:g}" in line
        assert f"TPR{p['privacy_tpr_certified' + tag]} certified at FPR{p['privacy_fpr_certified' + tag]}" in line
        assert "privacy_tpr" + tag not in p  # the old name meant the deciding point in one place, the estimate in another
