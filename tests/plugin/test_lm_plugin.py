"""The issue's contract through pytest: a TextDataset as privacy_dataset and a team's fine-tuning
function give target_model and membership_data; the helpers gate with the LM default attack;
privacy_attack runs the LM attacks and skips the classifier ones; a second session trains nothing."""

import pytest
from helpers import LM_CONFTEST

TESTS = """
from pytest_privacy import assert_tpr_at_fpr_below, measure_attack

def test_finetune_leaks(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.1, max_tpr=0.3)

def test_each_attack(target_model, membership_data, privacy_attack):
    measure_attack(target_model, membership_data, attack=privacy_attack, fpr=0.1)
"""


@pytest.mark.slow
def test_a_fine_tuned_lm_is_gated_through_the_fixtures(pytester):
    from pytest_privacy.attacks import ATTACKS

    pytester.makeconftest(LM_CONFTEST.replace("EPOCHS = 30", "EPOCHS = 12"))
    pytester.makepyfile(test_lm=TESTS)
    args = ("--privacy-references=4", "--privacy-cache-dir=cache", "-rfs")
    first = pytester.runpytest_subprocess(*args)
    lm = [name for name, a in ATTACKS.items() if a.text]
    # ref_base needs privacy_base_model, which this conftest does not define: an error naming it.
    first.assert_outcomes(failed=2, passed=len(lm) - 1, skipped=len(ATTACKS) - len(lm))
    first.stdout.fnmatch_lines([
        "*min_k (k=0.2) TPR*", "*leak proven*", "*fewer epochs*deduplicate*",
        "*define a privacy_base_model*", "*FAILED*test_finetune_leaks*", "*FAILED*test_each_attack?ref_base?*",
        "*SKIPPED*lira audits classifiers; privacy_dataset holds texts*",
    ])
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(failed=2, passed=len(lm) - 1, skipped=len(ATTACKS) - len(lm))
    second.stdout.fnmatch_lines(["*models: 0 trained*5 loaded from cache*"])


CONTRACT = """
from pytest_privacy import assert_canary_exposure_below, assert_no_extraction, assert_tpr_at_fpr_below

def test_finetune_does_not_leak(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=1e-1, max_tpr=0.3)

def test_no_secret_exposed(lm_canary_run):
    assert_canary_exposure_below(lm_canary_run, max_exposure=10.0)

def test_no_pii_extracted(target_model, membership_data):
    assert_no_extraction(target_model, membership_data, max_extracted=0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("epochs, outcome", [(0, "passed"), (25, "failed")], ids=["learnt nothing", "memorised"])
def test_the_three_lm_gates_as_a_team_writes_them(pytester, epochs, outcome):
    pytester.makeconftest(LM_CONFTEST.replace("EPOCHS = 30", f"EPOCHS = {epochs}"))
    pytester.makepyfile(test_release=CONTRACT)
    result = pytester.runpytest_subprocess("--privacy-references=4", "--privacy-markdown=report.md")
    result.assert_outcomes(**{outcome: 3})
    markdown = (pytester.path / "report.md").read_text()
    assert "canary_exposure" in markdown and "pii_extraction" in markdown and "min_k" in markdown
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*leak proven*", "*a secret is exposed*", "*PII extracted*"])

