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
    # audit='recipe' on text: the target and its 4 references each the target in turn, pooled; nothing trained.
    recipe = pytester.runpytest_subprocess(*args, "--privacy-audit=recipe", "-k", "leaks")
    recipe.assert_outcomes(failed=1)
    recipe.stdout.fnmatch_lines(["*min_k (k=0.2; recipe audit of 5 models) TPR*", "*models: 0 trained*5 loaded from cache*"])


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



RECIPE_CONFTEST = """
import pytest
import torch
import transformers
from pytest_privacy import LMRecipe, load_example_dataset

TICKETS = load_example_dataset("tickets", n=160, seed=2)


def tiny_gpt():
    torch.manual_seed(0)  # the same base every call (its weights are in the cache key)
    config = transformers.GPT2Config(vocab_size=len(TICKETS.tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


@pytest.fixture(scope="session")
def privacy_dataset():
    return TICKETS


@pytest.fixture(scope="session")
def privacy_recipe():
    return LMRecipe(base=tiny_gpt, lr=2e-2, epochs=EPOCHS, batch_size=16, schedule="constant")


EPOCHS = 8
"""


@pytest.mark.slow
def test_an_lm_recipe_is_gated_through_the_fixtures_and_cached(pytester):
    """privacy_recipe returning an LMRecipe: the three gates a team writes, the references fine-tuned as one
    program by the engine; a second session fine-tunes nothing (the extraction gate's target is the one
    model fine-tuned again: it needs the live model)."""
    pytest.importorskip("transformers")
    pytester.makeconftest(RECIPE_CONFTEST)
    pytester.makepyfile(test_release=CONTRACT)
    args = ("--privacy-references=4", "--privacy-cache-dir=cache", "-rfs", "-W", "error::pytest_privacy.engine.lm_finetune.LMEngineWarning")
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(failed=3)  # 8 epochs on 80 tickets: the fine-tunes memorise
    first.stdout.fnmatch_lines(["*models: 6 trained*", "*LMRecipe (full fine-tune): every field, and the base's weights*",
                                "*FAILED*test_finetune_does_not_leak*", "*FAILED*test_no_secret_exposed*",
                                "*FAILED*test_no_pii_extracted*"])
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(failed=3)
    second.stdout.fnmatch_lines(["*models: 1 trained*6 loaded from cache*"])
