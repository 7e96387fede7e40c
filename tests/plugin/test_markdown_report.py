"""The Markdown summary (``--privacy-markdown``): a section appended per session, one table row per result."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import synthetic_conftest

from pytest_privacy import (
    MembershipData,
    PrivacyInconclusiveWarning,
    PrivacyLeakError,
    assert_auc_below,
    assert_dp_claim_holds,
    assert_epsilon_below,
    assert_no_more_vulnerable_than,
    assert_tpr_at_fpr_below,
)
from pytest_privacy.report import recording
from pytest_privacy.report.markdown import append_markdown
from pytest_privacy.report.session_report import build_report

N, D, C = 600, 12, 4


class Memoriser:
    """A 1-nearest-neighbour classifier (as in tests/unit/test_attack_conformance.py): it answers
    its training points' labels exactly, so the loss attack exposes its members."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __call__(self, xb: np.ndarray) -> np.ndarray:
        d2 = ((np.asarray(xb, dtype=np.float32)[:, None, :] - self.x[None]) ** 2).sum(-1)
        logits = np.zeros((len(xb), C))
        logits[np.arange(len(xb)), self.y[d2.argmin(1)]] = 3.0 / (1.0 + d2.min(1))
        return logits


def blind(xb: np.ndarray) -> np.ndarray:
    """Logits that depend on the point only, never on membership: nothing to find."""
    return np.asarray(xb, dtype=np.float32)[:, :1] * np.arange(C)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.integers(0, C, N)  # random labels: only memorising fits them
    is_member = np.arange(N) % 2 == 0
    return Memoriser(x[is_member], y[is_member]), MembershipData(x, y, is_member)


def _gates(toy, *, test_id: str = "tests/test_gates.py::test_release", profile: str = "ci") -> list:
    """Real results of every kind: leaking gates fail, blind ones pass."""
    model, data = toy
    with recording(test_id, profile=profile) as results:
        with pytest.raises(PrivacyLeakError):
            assert_tpr_at_fpr_below(model, data, fpr=0.05, max_tpr=0.2, attack="loss")
        assert_tpr_at_fpr_below(blind, data, fpr=0.05, max_tpr=0.4, attack="loss")
        with pytest.raises(PrivacyLeakError):
            assert_auc_below(model, data, max_auc=0.6, attack="loss")
        assert_auc_below(blind, data, max_auc=0.7, attack="loss")
        with pytest.raises(PrivacyLeakError):
            assert_epsilon_below(model, data, max_epsilon=0.1, attack="loss")
        with pytest.raises(PrivacyLeakError):
            assert_no_more_vulnerable_than(model, blind, data, fpr=0.05, attack="loss")
        rng = np.random.default_rng(1)
        canaries = SimpleNamespace(scores=rng.normal(size=2000), included=rng.random(2000) < 0.5, description="toy canaries")
        assert_dp_claim_holds(canaries, epsilon=1.0, delta=1e-5)
        with pytest.warns(PrivacyInconclusiveWarning):  # 300 non-members cannot certify an FPR of 0.001
            assert_tpr_at_fpr_below(blind, data, fpr=1e-3, max_tpr=0.01, attack="loss", on_inconclusive="warn")
    return results


def _report(results, **kwargs):
    return build_report(results, {"seed": 0, "profile": "ci"}, **kwargs)


def _rows(text: str) -> list[list[str]]:
    """The tables' body rows, split at the pipes GFM splits at (those no backslash escapes)."""
    rows = [line for line in text.splitlines() if line.startswith("|") and not line.startswith(("| Verdict |", "| --- |"))]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def test_one_row_per_result_with_its_verdict_and_headline(toy, tmp_path):
    results = _gates(toy)
    path = tmp_path / "summary.md"
    append_markdown(_report(results, models_trained=3, models_loaded=2, seconds_training=1.5), str(path))
    text = path.read_text(encoding="utf-8")
    assert text.lstrip("\n").startswith("## pytest-privacy\n")
    assert "8 results (4 fail, 1 inconclusive, 3 pass); models: 3 trained in 1.5s, 2 loaded from cache; seed 0, profile ci" in text
    rows = _rows(text)
    assert [row[0] for row in rows] == ["**" + r.verdict.value.upper() + "**" for r in results]
    assert [row[0] for row in rows] == [
        "**FAIL**", "**PASS**", "**FAIL**", "**PASS**", "**FAIL**", "**FAIL**", "**PASS**", "**INCONCLUSIVE**"
    ]
    assert all(len(row) == 6 and row[1] == "`tests/test_gates.py::test_release`" for row in rows)
    tpr_fail, tpr_pass, auc_fail, auc_pass, eps, comparison, dp, undecided = rows
    assert tpr_fail[2] == f"loss ({results[0].variant})"
    assert tpr_fail[3].startswith("TPR ≥ ") and "certified at FPR ≤ " in tpr_fail[3]
    assert tpr_pass[3].startswith(f"TPR ≤ {results[1].tpr_high:.4f} certified at FPR ≤ 0.05")
    assert tpr_fail[4] == "TPR ≤ 0.2 at FPR 0.05" and tpr_fail[5] == f"{N // 2}/{N // 2}"
    assert auc_fail[3] == f"AUC {results[2].auc:.3f} [{results[2].auc_low:.3f}, {results[2].auc_high:.3f}]"
    assert auc_fail[4] == "AUC ≤ 0.6" and auc_pass[4] == "AUC ≤ 0.7"
    assert eps[3] == f"ε ≥ {results[4].epsilon_low:.3f}" and eps[4] == "ε ≤ 0.1"
    assert comparison[3].startswith(f"TPR {results[5].tpr:.4f} vs baseline {results[5].tpr_baseline:.4f}")
    assert comparison[4] == "difference ≤ 0"
    assert dp[2] == "one_run_canaries (toy canaries)" and dp[3].startswith("ε ≥ ")
    assert dp[4] == "claim ε ≤ 1 at δ 1e-05" and dp[5] == "2000 canaries"
    r = results[7]
    assert undecided[3] == f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f}"


def test_a_smoke_pass_says_smoke_and_a_fail_does_not(toy, tmp_path):
    model, data = toy
    with recording("t::smoke", profile="smoke") as results:
        assert_tpr_at_fpr_below(blind, data, fpr=0.05, max_tpr=0.4, attack="loss")
        with pytest.raises(PrivacyLeakError):
            assert_tpr_at_fpr_below(model, data, fpr=0.05, max_tpr=0.2, attack="loss")
    path = tmp_path / "summary.md"
    append_markdown(_report(results), path)
    assert [row[0] for row in _rows(path.read_text(encoding="utf-8"))] == ["**PASS (smoke)**", "**FAIL**"]


def test_appending_twice_keeps_both_sections(toy, tmp_path):
    model, data = toy
    path = tmp_path / "nested" / "dirs" / "summary.md"  # created when missing
    with recording("t::first") as first:
        assert_auc_below(blind, data, max_auc=0.7, attack="loss")
    with recording("t::second") as second, pytest.raises(PrivacyLeakError):
        assert_auc_below(model, data, max_auc=0.6, attack="loss")
    append_markdown(_report(first), str(path))
    append_markdown(_report(second), str(path))
    text = path.read_text(encoding="utf-8")
    assert text.count("## pytest-privacy") == 2
    first_at, second_at = text.index("`t::first`"), text.index("`t::second`")
    assert first_at < text.rindex("## pytest-privacy") < second_at
    assert [row[:2] for row in _rows(text)] == [["**PASS**", "`t::first`"], ["**FAIL**", "`t::second`"]]


def test_pipes_and_newlines_in_cells_are_escaped(toy, tmp_path):
    _, data = toy
    with recording("tests/t.py::test_gate[a|b\nc]") as results:
        assert_auc_below(blind, data, max_auc=0.7, attack="loss")
    path = tmp_path / "summary.md"
    append_markdown(_report(results), path)
    text = path.read_text(encoding="utf-8")
    [row] = _rows(text)
    assert len(row) == 6 and row[1] == r"`tests/t.py::test_gate[a\|b c]`"
    assert sum(line.startswith("|") for line in text.splitlines()) == 3  # header, rule, one row


def test_an_empty_report_writes_the_heading_and_its_note(tmp_path):
    path = tmp_path / "summary.md"
    append_markdown(_report([], note="no privacy gate ran to its assertion"), path)
    append_markdown(_report([]), path)  # no note: it still says why there is no table
    text = path.read_text(encoding="utf-8")
    assert text.count("## pytest-privacy") == 2 and "|" not in text
    assert "## pytest-privacy\n\nno privacy gate ran to its assertion\n" in text
    assert "## pytest-privacy\n\nno privacy result was recorded in this session\n" in text


@pytest.mark.slow
def test_markdown_option_appends_a_table_of_the_sessions_verdicts(pytester):
    pytester.makeconftest(synthetic_conftest(n=200, hidden=16, epochs=2))
    pytester.makepyfile(
        test_gates="""
        from pytest_privacy import assert_auc_below

        def test_auc(target_model, membership_data):
            assert_auc_below(target_model, membership_data, max_auc=0.99, attack="loss", on_inconclusive="warn")
        """
    )
    summary = pytester.path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    result = pytester.runpytest_subprocess("--privacy-markdown=summary.md", "--privacy-references=2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= privacy =*", "privacy summary appended to summary.md"])
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n") and text.count("## pytest-privacy") == 1
    assert "1 result (" in text and "trained" in text and "seed 0, profile ci" in text
    [row] = _rows(text)
    assert row[0] in ("**PASS**", "**INCONCLUSIVE**") and row[1] == "`test_gates.py::test_auc`"
    assert row[2].startswith("loss (") and row[3].startswith("AUC ") and row[4] == "AUC ≤ 0.99"


def test_the_release_comparison_follows_the_verdicts_as_a_table():
    from pytest_privacy.report.compare import (
        compare_reports,
        comparison_header,
        parse_criteria,
    )
    from pytest_privacy.report.markdown import format_markdown
    from tests.plugin.test_html_report import session_report

    report = session_report()
    text = format_markdown(report)
    header = "| " + " | ".join(comparison_header()) + " |"
    assert header in text and "**failed**" not in text  # the comparison in session_report has no regression
    rows = text[text.index(header):].splitlines()[2:2 + len(report.results)]
    assert [r.split(" | ")[0] for r in rows] == ["| NEW"] + ["| UNCHANGED"] * (len(report.results) - 1)
    worse = report.comparison.model_copy(update={"failed": True})
    assert "**failed**" in format_markdown(report.model_copy(update={"comparison": worse}))
    assert compare_reports(report, report, parse_criteria("tpr:+0")).failed is False


def test_html_and_links_from_attack_names_and_stored_runs_are_escaped():
    """A conftest's attack name, a variant and a stored run's ``created`` (anyone with write access
    to the storage edits it) reach $GITHUB_STEP_SUMMARY: none may render as HTML, a link or an image."""
    from pytest_privacy.report.compare import compare_reports, parse_criteria
    from pytest_privacy.report.markdown import format_markdown
    from tests.plugin.test_html_report import session_report

    report = session_report()
    evil = "<img src=x onerror=alert(1)>![pixel](https://evil.example/p.png)[click](https://evil.example)"
    results = [r.model_copy(update={"attack": evil, "variant": evil}) if hasattr(r, "variant") else r for r in report.results]
    old = report.model_copy(update={"created": "<script>alert(1)</script>", "results": results})
    new = report.model_copy(update={
        "results": results, "comparison": compare_reports(old, report, parse_criteria("tpr:+0.01")).model_copy(
            update={"against_created": old.created}),
    })
    text = re.sub(r"(`+).*?\1", "", format_markdown(new))  # code spans render literally: look outside them
    assert "<img" not in text and "<script" not in text
    assert not re.search(r"(?<!\\)!?(?<!\\)\[[^\]]*(?<!\\)\]\(", text), "a Markdown link or image can form"
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;script&gt;" in text


def test_the_session_outcome_opens_the_section_in_the_words_of_the_exit_status():
    from pytest_privacy.report.markdown import format_markdown
    from tests.plugin.test_html_report import session_report

    report = session_report()
    failed = report.model_copy(update={"outcome": "failed", "config": {**report.config, "inconclusive": "fail"}})
    text = format_markdown(failed)
    assert text.index("**Session failed**") < text.index("| Verdict |")
    n_fail = sum(r.verdict.value == "fail" for r in report.results)
    assert f"{n_fail} gate(s) proved a leak" in text
    assert "**Session passed**" in format_markdown(report.model_copy(update={"outcome": "passed"}))
    assert "**Session" not in format_markdown(report)  # an older report that does not know its outcome
