"""The plugin through pytest itself (pytester): options, markers, fixtures, verdicts, report."""

import json
import sys
import textwrap

import pytest
from helpers import NOISE_LABELS_CONFTEST as CONFTEST
from helpers import synthetic_conftest


def test_help_markers_and_fixtures_are_documented(pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    assert "membership-inference privacy gates" in help_text
    for option in (
        "profile", "attacks", "device", "seed", "references", "inconclusive", "report", "executor",
        "ray-gpus-per-task", "ray-cpus-per-task", "ray-max-retries",
    ):
        assert f"--privacy-{option}" in help_text and f"privacy_{option.replace('-', '_')}" in help_text
    markers = pytester.runpytest("--markers").stdout.str()
    for marker in ("privacy(**overrides)", *(f"{suite}(*attacks):" for suite in ("lira", "rmia", "baseline", "label_only", "mmd_baseline"))):
        assert f"@pytest.mark.{marker}" in markers
    fixtures = pytester.runpytest("--fixtures").stdout.str()
    for name, doc in [
        ("target_model", "model under test"),
        ("membership_data", "MembershipData"),
        ("reference_models", "Reference models"),
        ("privacy_config", "mark.privacy"),
        ("privacy_trainer", "memoises"),
        ("privacy_attack", "selected attacks"),
        ("mmd_baseline_model", "MMD+mixup defense"),
    ]:
        assert name in fixtures and doc in fixtures, name


@pytest.mark.slow
def test_gates_fail_and_pass_for_real_reasons_end_to_end(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_gate=textwrap.dedent(
            """
            import pytest
            from pytest_privacy import assert_tpr_at_fpr_below

            @pytest.mark.lira
            def test_memorising_model(target_model, membership_data):
                assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.1)

            @pytest.mark.lira
            def test_labels_it_never_saw(target_model, membership_data):
                data = membership_data.shuffled_membership(seed=1)
                assert_tpr_at_fpr_below(target_model, data, fpr=0.05, max_tpr=0.2)

            def test_too_few_points_for_this_fpr(target_model, membership_data):
                assert_tpr_at_fpr_below(target_model, membership_data, fpr=1e-3, max_tpr=0.05)
            """
        )
    )
    report = pytester.path / "privacy.json"
    result = pytester.runpytest_subprocess(
        "--privacy-references=8", "--privacy-inconclusive=xfail", f"--privacy-report={report}"
    )
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    out = result.stdout.str()
    assert "PrivacyLeakError: privacy leak: TPR at FPR 0.05 must be <= 0.1" in out
    assert "lira (online, fixed variance) TPR" in out and "what to try" in out
    result.stdout.fnmatch_lines([
        "*= privacy =*",
        # Each line shows the bound that decided: a PASS never prints a rate above its limit.
        "FAIL *test_memorising_model*TPR>=0.* certified at FPR<=0.0*, limit TPR<=0.1@FPR0.05*",
        "PASS *test_labels_it_never_saw*TPR<=0.* certified at FPR<=0.05 (estimate 0.* at FPR 0.05), limit TPR<=0.2@FPR0.05*",
        "models: 9 trained in *, 0 loaded from cache*",
    ])
    # Off a terminal (a CI log) training shows progress as lines, not a bar that prints nothing.
    result.stdout.fnmatch_lines(["pytest-privacy: training 9 models: 40/40 epochs done in *s"])
    results = json.loads(report.read_text())["results"]
    assert [r["verdict"] for r in results] == ["fail", "pass", "inconclusive"]
    assert results[0]["test_id"].endswith("test_memorising_model") and results[0]["n_references"] == 8


@pytest.mark.slow
def test_missing_recipe_is_a_clear_error(pytester):
    pytester.makepyfile("def test_x(target_model):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert "define a `privacy_recipe` fixture" in result.stdout.str()
    assert "fixture 'privacy_recipe' not found" not in result.stdout.str()


SELECTION_TESTS = """
import pytest

@pytest.mark.lira
def test_lira(): pass

@pytest.mark.baseline
def test_baseline(): pass

@pytest.mark.baseline("confidence")
def test_confidence_only(): pass

@pytest.mark.label_only
def test_label_only(): pass

def test_unmarked(): pass

def test_each(privacy_attack): pass
"""


def _ran(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[1].split(" ")[0] for line in result.outlines if " PASSED" in line}


@pytest.mark.slow
def test_attacks_option_selects_by_attack_names_and_suites_alike(pytester):
    from pytest_privacy.attacks import ATTACKS, suite_attacks

    pytester.makepyfile(SELECTION_TESTS)
    n_items = 5 + len(ATTACKS)
    # A suite keeps its tests and every attack of it; an attack name keeps the tests that run it.
    result = pytester.runpytest("--privacy-attacks=lira,loss", "-v")
    lira = [f"test_each[{a}]" for a in suite_attacks("lira")]
    expected = {"test_lira", "test_baseline", "test_unmarked", "test_each[loss]", *lira}
    assert _ran(result) == expected  # test_confidence_only runs confidence alone: not selected
    result.assert_outcomes(passed=len(expected), deselected=n_items - len(expected))
    # The README's example and a single label-only attack used to collect nothing of their suites.
    result = pytester.runpytest("--privacy-attacks=label_only_gap", "-v")
    assert _ran(result) == {"test_label_only", "test_unmarked", "test_each[label_only_gap]"}
    result = pytester.runpytest("--privacy-attacks=confidence", "-v")
    assert _ran(result) == {"test_baseline", "test_confidence_only", "test_unmarked", "test_each[confidence]"}
    # Every registered attack of a suite is in it (lira_global is a baseline, the trained
    # augmentation attack a label-only one).
    result = pytester.runpytest("--privacy-attacks=baseline,label_only", "-v")
    assert {"test_each[lira_global]", "test_each[label_only_augmentation_trained]"} <= _ran(result)


@pytest.mark.slow
def test_a_selection_that_drops_every_privacy_test_is_a_usage_error(pytester):
    pytester.makepyfile(SELECTION_TESTS)
    result = pytester.runpytest("--privacy-attacks=mmd_baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--privacy-attacks=mmd_baseline selects none of the" in result.stderr.str()
    # xdist workers cannot raise a usage error: the run fails with the same message instead.
    result = pytester.runpytest_subprocess("--privacy-attacks=mmd_baseline", "-n", "2", "-p", "xdist")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--privacy-attacks=mmd_baseline selects none of the*"])
    assert pytester.runpytest("--privacy-attacks=nope").ret == pytest.ExitCode.USAGE_ERROR


def test_suite_marker_arguments_must_be_attacks_of_that_suite(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.baseline('lira')\ndef test_x(): pass\n")
    result = pytester.runpytest("--privacy-attacks=lira")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "@pytest.mark.baseline takes names of its attacks" in result.stderr.str()


@pytest.mark.slow
def test_markers_select_suites_for_the_privacy_attack_fixture(pytester):
    from pytest_privacy.attacks import suite_attacks

    pytester.makepyfile(SELECTION_TESTS)
    result = pytester.runpytest("-m", "label_only", "-v")
    assert _ran(result) == {"test_label_only", *(f"test_each[{a}]" for a in suite_attacks("label_only"))}


def test_config_precedence_marker_over_cli_over_ini_over_profile(pytester):
    pytester.makeini("[pytest]\nprivacy_seed = 2\nprivacy_references = 6\nprivacy_profile = full\n")
    pytester.makepyfile(
        """
        import pytest

        def test_ini_and_cli(privacy_config):
            assert (privacy_config.seed, privacy_config.n_references, privacy_config.profile) == (1, 6, "full")

        @pytest.mark.privacy(seed=3, n_references=8)
        def test_marker(privacy_config):
            assert (privacy_config.seed, privacy_config.n_references) == (3, 8)

        @pytest.mark.privacy(profile="smoke", n_references=None)
        def test_marker_profile(privacy_config):
            assert privacy_config.profile == "smoke" and privacy_config.n_references == 6
        """
    )
    pytester.runpytest("--privacy-seed=1").assert_outcomes(passed=3)


def test_executor_from_ini_env_and_cli_in_that_order(pytester, monkeypatch):
    pytester.makeini("[pytest]\nprivacy_executor = ray\nprivacy_ray_gpus_per_task = 0.25\n")
    pytester.makepyfile(
        """
        import os

        def test_executor(privacy_config):
            assert privacy_config.executor == os.environ["EXPECTED"]
            assert privacy_config.ray_gpus_per_task == 0.25 and privacy_config.ray_max_retries == 3
        """
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray is not installed ...
    monkeypatch.setenv("EXPECTED", "local")
    monkeypatch.setenv("PYTEST_PRIVACY_EXECUTOR", "local")  # ... and the environment overrides the ini
    pytester.runpytest().assert_outcomes(passed=1)
    monkeypatch.setenv("PYTEST_PRIVACY_EXECUTOR", "ray")
    result = pytester.runpytest("--privacy-executor=local")  # the command line overrides both
    result.assert_outcomes(passed=1)
    missing = pytester.runpytest()
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "pip install 'pytest-privacy[ray]'" in missing.stderr.str()


def test_marker_sets_inconclusive_policy_and_confidence_for_one_test(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from pytest_privacy import MembershipData, assert_tpr_at_fpr_below

        def _data():
            rng = np.random.default_rng(0)
            x, y = rng.normal(size=(200, 3)).astype(np.float32), rng.integers(0, 2, 200)
            return MembershipData(x, y, np.arange(200) < 100)

        def model(x):
            return np.zeros((len(x), 2))

        @pytest.mark.privacy(inconclusive="skip", confidence=0.9)
        def test_marked():
            # 100 non-members cannot resolve FPR 1e-3: INCONCLUSIVE, skipped by the marker
            assert_tpr_at_fpr_below(model, _data(), fpr=1e-3, max_tpr=0.02, attack="loss")

        def test_session_policy():
            assert_tpr_at_fpr_below(model, _data(), fpr=1e-3, max_tpr=0.02, attack="loss")
        """
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest("--privacy-inconclusive=xfail", f"--privacy-report={report}")
    result.assert_outcomes(skipped=1, xfailed=1)
    confidences = [r["confidence"] for r in json.loads(report.read_text())["results"]]
    assert sorted(confidences) == [0.9, 0.95]


def test_invalid_settings_are_usage_errors(pytester):
    result = pytester.runpytest("--privacy-references=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "n_references must be even" in result.stderr.str()
    result = pytester.runpytest("--privacy-inconclusive=fial")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "inconclusive" in result.stderr.str()
    for option, says in [
        ("--privacy-device=gpu", "device must be auto, cpu, cuda or cuda:N"),
        ("--privacy-device=CPU", "device must be auto, cpu, cuda or cuda:N"),
        ("--privacy-seed=-1", "seed: Input should be greater than or equal to 0"),
    ]:
        result = pytester.runpytest(option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR and says in result.stderr.str(), option
    pytester.makeini("[pytest]\nprivacy_no_cache = maybe\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "expected true/false" in result.stderr.str()


def test_a_typo_in_a_marker_policy_is_an_error_never_an_xfail(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.privacy(inconclusive="fial")
        def test_policy(privacy_config): pass

        @pytest.mark.privacy(n_refrences=8)
        def test_field(privacy_config): pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*inconclusive: Input should be 'fail', 'warn', 'skip' or 'xfail'*", "*Did you mean 'n_references'*"])


def test_a_toy_attack_registered_from_a_conftest_is_selected_run_and_reported(pytester):
    # No edit to the package: the conftest registers an attack; its suite marker, --privacy-attacks,
    # the privacy_attack fixture and the summary all know it.
    pytester.makeconftest(
        """
        import numpy as np
        from pytest_privacy import Attack, register_attack

        def top_logit(logits, labels, refs, pop=None):
            return logits[:, 0].max(-1), "largest logit"

        register_attack(Attack("toy_top_logit", "baseline", False, "the largest logit", top_logit))
        """
    )
    pytester.makepyfile(
        """
        import numpy as np
        from pytest_privacy import MembershipData, assert_auc_below

        def test_each(privacy_attack):
            rng = np.random.default_rng(0)
            x, member = rng.normal(size=(400, 3)).astype(np.float32), np.arange(400) < 200
            model = lambda xb: np.c_[xb[:, :1], -xb[:, :1]]  # members and non-members alike
            assert_auc_below(model, MembershipData(x, np.zeros(400, int), member), max_auc=0.6, attack=privacy_attack)
        """
    )
    result = pytester.runpytest_subprocess("--privacy-attacks=toy_top_logit", "-v")
    result.assert_outcomes(passed=1, deselected=len(__import__("pytest_privacy").attacks.ATTACKS))
    result.stdout.fnmatch_lines(["*test_each?toy_top_logit? PASSED*", "PASS *test_each?toy_top_logit?*toy_top_logit (largest logit): AUC *"])


def test_cuda_without_cuda_is_a_usage_error(pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = pytester.runpytest_subprocess("--privacy-device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "CUDA is not available here" in result.stderr.str()


@pytest.mark.slow
def test_xdist_workers_train_on_their_share_of_the_cores(pytester, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # as a user's shell would have it
    pytester.makeconftest(synthetic_conftest(n=100, hidden=8, epochs=1))
    pytester.makepyfile(
        """
        import os
        import torch

        def test_threads(privacy_trainer):
            assert torch.get_num_threads() == max(1, os.cpu_count() // 2)

        def test_other(privacy_trainer):
            assert torch.get_num_threads() == max(1, os.cpu_count() // 2)
        """
    )
    pytester.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=2)


def test_progress_lines_give_done_rate_and_eta():
    from pytest_privacy.engine.progress import LineProgress

    lines = []
    with LineProgress(4, "training 17 models", unit="epoch", every=0.0, write=lines.append) as bar:
        for _ in range(4):
            bar.update(1)
    assert [line.split(":")[1].strip() for line in lines] == ["training 17 models"] * 4
    assert lines[0].startswith("pytest-privacy: training 17 models: 1/4 epochs (25%), ") and "ETA" in lines[0]
    assert "4/4 epochs done in" in lines[-1]
