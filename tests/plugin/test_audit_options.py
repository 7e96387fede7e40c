"""How an audit is run, through pytest: ``--privacy-references=auto`` / ``n_references="auto"`` /
``--privacy-profile=adaptive`` (the first look trains 4 references, more only while a gate is
inconclusive, the result says how many and why) and ``--privacy-audit=recipe`` (every model the
target in turn, pooled); bad values are usage errors."""

import pytest
from helpers import synthetic_conftest

GATES = """
import pytest
from pytest_privacy import assert_tpr_at_fpr_below, assert_epsilon_below

@pytest.mark.privacy(n_references="auto")
def test_auto(target_model, membership_data):
    r = assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.1, max_tpr=0.99, attack="lira")
    assert "auto references: 4 after looks at 4 (decided)" in r.variant and r.n_references == 4

@pytest.mark.privacy(n_references="auto")
def test_undecidable_stops_at_the_first_look(target_model, membership_data):
    # Too few non-members to certify FPR 0.001 and too few members to bound TPR by 0.011: no number
    # of references can decide, so none are trained beyond the first look (it once trained 64).
    r = assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.001, max_tpr=0.011, attack="lira",
                                on_inconclusive="warn")
    assert r.verdict.value == "inconclusive" and r.n_references == 4
    assert "looks at 4 (more references cannot decide" in r.variant and "non-members cannot certify" in r.variant

@pytest.mark.privacy(n_references="auto")
def test_epsilon_uses_the_fixed_look(target_model, membership_data):
    assert assert_epsilon_below(target_model, membership_data, max_epsilon=100.0).n_references == 16
"""


@pytest.mark.slow
def test_auto_references_train_what_the_verdict_needs(pytester):
    pytester.makeconftest(synthetic_conftest(n=200, hidden=16, epochs=2))
    pytester.makepyfile(test_gates=GATES)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    # 16 references and the target for the epsilon gate's fixed look, trained once: the auto gates
    # reuse them (the undecidable one stops at 4; it once trained 64 and the run 65 models).
    result.stdout.fnmatch_lines(["*models: 17 trained*"])


@pytest.mark.parametrize("value", ["3", "0", "abc", "-4"])
def test_a_bad_reference_count_is_a_usage_error(pytester, value):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess(f"--privacy-references={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*n_references*"])


def test_the_adaptive_profile_means_auto(pytester):
    pytester.makepyfile(test_x="""
def test_x(privacy_config):
    assert privacy_config.n_references == "auto"
""")
    pytester.runpytest_subprocess("--privacy-profile=adaptive").assert_outcomes(passed=1)


RECIPE_GATE = """
import pytest
from pytest_privacy import assert_tpr_at_fpr_below

def test_recipe(target_model, membership_data):
    r = assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.99)
    assert r.audit == "recipe" and r.n_models == 5 and r.n_members + r.n_nonmembers == 5 * 200
"""


@pytest.mark.slow
def test_audit_recipe_from_the_command_line_pools_every_model(pytester):
    pytester.makeconftest(synthetic_conftest(n=200, hidden=16, epochs=2))
    pytester.makepyfile(test_recipe=RECIPE_GATE)
    result = pytester.runpytest_subprocess("--privacy-audit=recipe", "--privacy-references=4", "--privacy-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*audit: recipe of 5 models*"])
    assert '"audit": "recipe"' in (pytester.path / "r.json").read_text()
    bad = pytester.runpytest_subprocess("--privacy-audit=recipes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_a_recipe_audit_with_two_references_is_a_usage_error_saying_what_it_needs(pytester):
    pytester.makepyfile(test_x="def test_x():\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest_subprocess("--privacy-audit=recipe", "--privacy-references=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*audit='recipe' needs at least 4 references*--privacy-references=4 or more*"])
    assert "balanced_keep" not in result.stderr.str()
