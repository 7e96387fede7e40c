"""Bring your own training: privacy_train_fn end to end, cached, with clear errors."""

import numpy as np
import pytest
from helpers import NOISE_LABELS_TRAIN_FN_CONFTEST as CONFTEST
from helpers import TRAIN_FN_TESTS as TESTS
from helpers import noise_labels

from pytest_privacy import training_function
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.audit.training_functions import function_identity
from pytest_privacy.data.querying import CachedTarget
from pytest_privacy.engine.store import ModelStore


@pytest.mark.slow
def test_user_training_loop_fails_and_passes_for_real_reasons_and_caches(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fn=TESTS)
    first = pytester.runpytest_subprocess("--privacy-references=4")
    first.assert_outcomes(passed=1, failed=1)
    first.stdout.fnmatch_lines(["*PrivacyLeakError: privacy leak*", "models: 5 trained in *, 0 loaded from cache*"])
    second = pytester.runpytest_subprocess("--privacy-references=4")
    second.assert_outcomes(passed=1, failed=1)  # the same verdicts from cached logits
    second.stdout.fnmatch_lines(["models: 0 trained in *, 5 loaded from cache*"])


@pytest.mark.slow
def test_defining_both_or_neither_is_a_clear_error(pytester):
    pytester.makepyfile("def test_x(membership_data):\n    pass\n")
    neither = pytester.runpytest()
    neither.assert_outcomes(errors=1)
    assert "define a `privacy_recipe` fixture" in neither.stdout.str() and "privacy_train_fn" in neither.stdout.str()
    pytester.makeconftest(
        "import pytest\nfrom pytest_privacy import TrainingRecipe\n"
        "@pytest.fixture\ndef privacy_recipe():\n    return TrainingRecipe()\n"
        "@pytest.fixture\ndef privacy_train_fn():\n    return lambda x, y, *, seed, device: None\n"
        "@pytest.fixture\ndef privacy_dataset():\n    return ([[0.0], [1.0]], [0, 1])\n"
    )
    both = pytester.runpytest()
    both.assert_outcomes(errors=1)
    assert "both `privacy_recipe` and `privacy_train_fn` are defined" in both.stdout.str()


@pytest.mark.slow
def test_function_identity_and_version_key_the_cache(tmp_path):
    def make():  # two function objects with the same name and source
        def train(x, y, *, seed, device):
            return lambda xb: np.tile([0.2, 0.8], (len(xb), 1))

        return train

    train, bumped = make(), training_function(version="2")(make())
    assert function_identity(bumped) != function_identity(train)
    # A re-run loads every model; a bumped version retrains them all.
    data = noise_labels(60, 3, classes=2)
    runs = []
    for fn in (train, train, bumped):
        trainer = PrivacyTrainer(store=ModelStore(tmp_path))
        trainer.audit(fn, data, n_references=2, seed=0)
        runs.append((trainer.models_trained, trainer.models_loaded))
    assert runs == [(3, 0), (0, 3), (3, 0)]


def test_cached_target_answers_audit_points_and_trains_for_others(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    logits = np.eye(4, 2, dtype=np.float32)
    calls = []

    def train():
        calls.append(1)
        return lambda xb: np.tile([[0.0, 5.0]], (len(xb), 1))

    target = CachedTarget(x, logits, train)
    np.testing.assert_array_equal(target(x[[2, 0]]), logits[[2, 0]])
    assert calls == []
    out = target(x + 0.5)  # perturbed inputs need the real model, trained once
    assert calls == [1] and out.shape == (4, 2)
    target(x + 1.5)
    assert calls == [1]


@pytest.mark.slow
def test_audit_function_in_the_core(tmp_path):
    import torch
    from torch import nn

    def train(x, y, *, seed, device):
        torch.manual_seed(seed)
        return nn.Linear(20, 4)  # untrained: cannot leak

    data = noise_labels(200, 20)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(train, data, n_references=4, seed=0)
    assert setup.references.logits.shape == (4, 200, 1, 4) and setup.membership_data().n_members == 100
    with pytest.raises(TypeError, match="training function .*got str"):
        trainer.audit("not a function", data, n_references=4, seed=0)


@pytest.mark.slow
def test_more_references_train_only_the_new_ones(tmp_path):
    import torch
    from torch import nn

    def train(x, y, *, seed, device):
        torch.manual_seed(seed)
        return nn.Linear(20, 4)

    data = noise_labels(200, 20)
    PrivacyTrainer(store=ModelStore(tmp_path)).audit(train, data, n_references=4, seed=0)
    more = PrivacyTrainer(store=ModelStore(tmp_path))
    more.audit(train, data, n_references=6, seed=0)
    assert (more.models_trained, more.models_loaded) == (2, 5)  # the target and 4 references are reused


@pytest.mark.slow
def test_a_training_function_audit_holds_out_rmia_population():
    import torch
    from torch import nn

    from pytest_privacy.attacks.runner import attack_scores

    def train(x, y, *, seed, device):
        torch.manual_seed(seed)
        return nn.Linear(20, 4)

    data = noise_labels(200, 20)
    setup = PrivacyTrainer().audit(train, data, n_references=4, seed=0, population=0.2)
    pop = setup.references.population
    assert pop is not None and len(pop.x) == 40 and len(setup.points) == 160
    assert not np.isin(setup.points, np.flatnonzero(np.isin(data[0][:, 0], pop.x[:, 0]))).any()
    scores, _, _ = attack_scores(setup.target, setup.membership_data(), "rmia")
    assert scores.shape == (160,)


@pytest.mark.slow
def test_seeds_fit_in_31_bits_and_estimators_are_audited_through_predict_proba():
    from sklearn.ensemble import RandomForestClassifier

    from pytest_privacy import attack_scores

    seen = []

    def train(x, y, *, seed, device):
        seen.append(seed)
        # RandomForestClassifier(random_state=...) refuses seeds of 2**32 and more.
        return RandomForestClassifier(n_estimators=10, bootstrap=False, random_state=seed, n_jobs=1).fit(x, y)

    setup = PrivacyTrainer().audit(train, noise_labels(200, 5, classes=2), n_references=4, seed=0)
    assert len(seen) == 5 and all(0 <= s < 2**31 for s in seen) and len(set(seen)) == 5
    data = setup.membership_data()
    lira = attack_scores(setup.target, data, "lira")  # predict_proba, as log-probabilities
    gap = attack_scores(setup.target, data, "label_only_gap")  # predict
    assert lira.scores.shape == gap.scores.shape == (200,) and gap.queries == 200


def test_an_estimator_with_only_a_decision_function_is_read_as_margins():
    from pytest_privacy.data.querying import query_logits

    class Margin:  # a binary linear model, as LinearSVC exposes it
        def decision_function(self, x):
            return x[:, 0] - 0.5

    logits = query_logits(Margin(), np.array([[2.0], [0.0]], dtype=np.float32))
    np.testing.assert_allclose(logits[:, 0], [[-0.75, 0.75], [0.25, -0.25]])
    with pytest.raises(TypeError, match="predict_proba/decision_function"):
        query_logits(object(), np.zeros((2, 1), dtype=np.float32))


@pytest.mark.slow
def test_mmd_baseline_with_a_training_function_is_an_error_before_any_training(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_x(mmd_baseline_model):\n    pass\n")
    result = pytester.runpytest_subprocess("--privacy-references=4")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mmd_baseline_model trains your classifier recipe*pytest_privacy.Baseline*"])
    assert "models:" not in result.stdout.str()  # nothing was trained first


@pytest.mark.slow
def test_a_model_where_a_function_or_factory_belongs_names_the_fix():
    import torch

    from pytest_privacy import TrainingRecipe
    from pytest_privacy.data.querying import query_logits

    with pytest.raises(ValueError, match="nn.Module instance .*zero-argument factory"):
        TrainingRecipe(model=torch.nn.Linear(4, 2))
    with pytest.raises(TypeError, match="training function .*got an nn.Module instance"):
        PrivacyTrainer().audit(torch.nn.Linear(4, 2), noise_labels(20, 4), n_references=2, seed=0)
    for returned, named in ((None, "NoneType"), ({"logits": 1}, r"a dict with keys \['logits'\]")):
        with pytest.raises(TypeError, match=f"the model returned {named}; return a \\[B, C\\]"):
            query_logits(lambda x, r=returned: r, np.zeros((2, 4), dtype=np.float32))


@pytest.mark.slow
def test_target_model_is_the_same_kind_of_object_on_a_cold_and_a_warm_cache(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_kind="""
        from torch import nn
        from pytest_privacy import attack_scores
        from pytest_privacy.data.querying import CachedTarget

        def test_kind(target_model, membership_data):
            assert isinstance(target_model, CachedTarget) and isinstance(target_model.model, nn.Module)
            boundary = attack_scores(target_model, membership_data, "label_only_boundary")
            assert boundary.variant == "white-box gradient search"  # the same attack path on both runs
        """
    )
    cold = pytester.runpytest_subprocess("--privacy-references=4")
    cold.assert_outcomes(passed=1)
    cold.stdout.fnmatch_lines(["models: 5 trained in *, 0 loaded from cache*"])
    warm = pytester.runpytest_subprocess("--privacy-references=4")
    warm.assert_outcomes(passed=1)
    # The warm run loads the logits and trains the target again for .model: counted, not "0 trained".
    warm.stdout.fnmatch_lines(["models: 1 trained in *, 5 loaded from cache*"])


def test_progress_names_the_target_apart_from_the_references(tmp_path):
    """A CI log once read '16/16 models' when 17 trained: the target's own call was not named."""
    from pytest_privacy.engine.store import ModelStore

    lines = []

    def fit(x, y, *, seed, device):
        return lambda xb: np.zeros((len(xb), 4))

    trainer = PrivacyTrainer(store=ModelStore(tmp_path), progress=lambda: _lines(lines))
    trainer.audit(fit, noise_labels(60, 4), n_references=4, seed=0)
    done = [line for line in lines if "done in" in line]
    assert any("training 4 reference models: 4/4 models done" in line for line in done), lines
    assert trainer.models_trained == 5


def _lines(sink):
    from contextlib import nullcontext

    from pytest_privacy.engine.progress import Lines

    return nullcontext(Lines(sink.append))
