"""Every kind of model people bring: one that answers only labels, a loop that trains with
augmentations, a checkpoint trained elsewhere, and a recipe model the vectorised trainer cannot
stack (refused, naming the layer, before anything trains)."""

import numpy as np
import pytest
from helpers import noise_labels

from pytest_privacy import (
    PrivacyInconclusiveError,
    PrivacyLeakError,
    PrivacyTrainer,
    TrainingRecipe,
    assert_auc_below,
    assert_tpr_at_fpr_below,
    training_function,
)
from pytest_privacy.engine.store import ModelStore

pytestmark = pytest.mark.slow


class Memoriser:
    """1-nearest-neighbour: recalls its training labels exactly (exposes its members)."""

    def __init__(self, x, y, classes=4):
        self.x, self.y, self.classes = x.reshape(len(x), -1), y, classes

    def scores(self, xb):
        flat = np.asarray(xb, dtype=np.float32).reshape(len(xb), -1)
        d2 = ((flat[:, None, :] - self.x[None]) ** 2).sum(-1)
        logits = np.zeros((len(flat), self.classes))
        logits[np.arange(len(flat)), self.y[d2.argmin(1)]] = 3.0 / (1.0 + d2.min(1))
        return logits


def labels_only_fn(x, y, *, seed, device):
    memo = Memoriser(x, y)
    return lambda xb: memo.scores(xb).argmax(-1)  # a model that answers labels only


def scores_fn(x, y, *, seed, device):
    return Memoriser(x, y).scores


def test_a_labels_only_model_is_cached_as_labels_and_audited_by_label_only_attacks(tmp_path):
    data = noise_labels(300, 6)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(labels_only_fn, data, n_references=4, seed=0)
    # Only the target trained: references are of no use to a model that answers only labels.
    assert (trainer.models_trained, trainer.models_loaded) == (1, 0) and setup.references is None
    membership = setup.membership_data()
    with pytest.raises(PrivacyLeakError):
        assert_auc_below(setup.target, membership, max_auc=0.6, attack="label_only_gap")
    with pytest.raises(ValueError, match="label_only"):  # a score attack says what to run instead
        assert_tpr_at_fpr_below(setup.target, membership, fpr=0.05, max_tpr=0.2, attack="loss")
    warm = PrivacyTrainer(store=ModelStore(tmp_path))
    again = warm.audit(labels_only_fn, data, n_references=4, seed=0)
    assert (warm.models_trained, warm.models_loaded) == (0, 1)
    x = data[0][setup.points]
    np.testing.assert_array_equal(again.target(x), setup.target(x))  # answered from cached labels
    assert warm.models_trained == 0


def test_a_training_function_declares_its_augmentations_and_lira_queries_match(tmp_path):
    x, y = noise_labels(200, 8)
    x = x.reshape(200, 2, 4)  # [H, W] examples: shifts and flips apply
    plain = training_function()(scores_fn)
    augmented = training_function(augmentations=("flip",))(lambda x, y, *, seed, device: Memoriser(x, y).scores)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(augmented, (x, y), n_references=4, seed=0)
    assert setup.references.augmentations == ("flip",) and setup.references.logits.shape[2] == 2
    assert trainer.audit(plain, (x, y), n_references=4, seed=0).references.logits.shape[2] == 1
    # On a warm cache the target answers every augmented query from its cached logits: no retrain.
    warm = PrivacyTrainer(store=ModelStore(tmp_path))
    cached = warm.audit(augmented, (x, y), n_references=4, seed=0)
    try:
        assert_tpr_at_fpr_below(cached.target, cached.membership_data(), fpr=0.05, max_tpr=0.1)
    except (PrivacyLeakError, PrivacyInconclusiveError):
        pass  # the verdict is not the point here: which models ran is
    assert (warm.models_trained, warm.models_loaded) == (0, 5)
    with pytest.raises(ValueError, match="unknown augmentations"):
        training_function(augmentations=("rotate",))


def test_references_for_a_checkpoint_train_no_target_and_share_the_audit_cache(tmp_path):
    x, y = noise_labels(300, 6)
    is_member = np.random.default_rng(5).random(300) < 0.5
    checkpoint = Memoriser(x[is_member], y[is_member]).scores  # trained elsewhere, on a known split
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    data = trainer.references_for(scores_fn, (x, y), is_member, n_references=4, seed=0)
    assert trainer.models_trained == 4 and data.references.n_references == 4  # no target trained
    np.testing.assert_array_equal(data.is_member, is_member)
    with pytest.raises(PrivacyLeakError):
        assert_tpr_at_fpr_below(checkpoint, data, fpr=0.05, max_tpr=0.1)
    # An audit of the same function, data and seed trains only its target: the references are shared.
    audit = PrivacyTrainer(store=ModelStore(tmp_path))
    audit.audit(scores_fn, (x, y), n_references=4, seed=0)
    assert (audit.models_trained, audit.models_loaded) == (1, 4)
    with pytest.raises(ValueError, match="one entry per data set row"):
        trainer.references_for(scores_fn, (x, y), is_member[:10], n_references=4, seed=0)
    with pytest.raises(ValueError, match="both members and non-members"):
        trainer.references_for(scores_fn, (x, y), np.ones(300, bool), n_references=4, seed=0)


def test_a_recipe_model_the_trainer_cannot_stack_is_refused_before_training():
    from torch import nn

    def with_bn():
        return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))

    trainer = PrivacyTrainer()
    for recipe, match in [
        (TrainingRecipe(model=with_bn, defense="mmd_mixup"), "running statistics .*BatchNorm"),
        (TrainingRecipe(model=with_bn, batch_size=80), "full minibatches"),
    ]:
        with pytest.raises(ValueError, match=match):
            trainer.audit(recipe, noise_labels(100, 6), n_references=2, seed=0)
    assert trainer.models_trained == 0


class _Output(dict):
    """What a Hugging Face classifier returns: a mapping with attribute access (``ModelOutput``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _hf_style_fn(x, y, *, seed, device):
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Linear(x.shape[1], 4)

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, xb):
            return _Output(logits=self.net(xb), hidden_states=None)

    return Classifier()


def test_an_output_with_logits_is_read_as_logits_and_other_outputs_are_named(tmp_path):
    from pytest_privacy.data.querying import query_logits

    data = noise_labels(200, 6)
    setup = PrivacyTrainer(store=ModelStore(tmp_path)).audit(_hf_style_fn, data, n_references=2, seed=0)
    assert setup.references.logits.shape[-1] == 4
    with pytest.raises(TypeError, match=r"returned a tuple of 2 \(Tensor, Tensor\).*object with \.logits"):
        import torch

        query_logits(lambda xb: (torch.zeros(len(xb), 4), torch.zeros(len(xb), 4)), data[0][:5])


def _breaks_when_queried(x, y, *, seed, device):
    def model(xb):
        raise IndexError("index 7 is out of bounds for dimension 0 with size 4")

    return model


def test_an_error_while_querying_is_a_query_error_not_a_training_failure(tmp_path):
    data = noise_labels(200, 6)
    with pytest.raises(Exception, match=r"(?s)querying failed for .*after training.*QueryFailed: querying the model "
                                        r"\(function\) failed on inputs of shape \[200, 6\] and dtype float32: IndexError"):
        PrivacyTrainer(store=ModelStore(tmp_path)).audit(_breaks_when_queried, data, n_references=2, seed=0)
