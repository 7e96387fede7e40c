"""A user's own loop, written once, trains an audit's models stacked (``@stacked_training``): through
``PrivacyTrainer`` and through pytest, equal to the loop run on each model alone, cached with its
weights, and refused early when it cannot stack."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pytest_privacy import PerModelBatches, per_model_loss, stacked_training
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.data.querying import query_logits
from pytest_privacy.engine.own_loop import StackedModels, seeded_model
from pytest_privacy.engine.store import ModelStore

EPOCHS = 3


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))


def loop(models, batches, *, device):
    """The user's loop: Adam and a step schedule, written for one model."""
    opt = torch.optim.Adam(models.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=len(batches), gamma=0.5)
    for _ in range(EPOCHS):
        for xb, yb in batches:
            opt.zero_grad()
            per_model_loss(F.cross_entropy, models(xb), yb).sum().backward()
            opt.step()
            sched.step()


def _data(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8)).astype(np.float32), rng.integers(0, 3, n)


def test_an_audit_trains_the_loop_stacked_equal_to_each_model_alone_and_caches_weights(tmp_path):
    train = stacked_training(model=net, batch_size=16)(loop)
    x, y = _data()
    store = ModelStore(tmp_path)
    setup = PrivacyTrainer(store=store).audit(train, (x, y), n_references=4, seed=0)
    data = setup.membership_data()
    assert data.references.n_references == 4 and isinstance(setup.target, nn.Module)
    # The target alone: the same loop on one stacked model (its own seed, keep row and step count).
    from pytest_privacy.audit.split import Split

    split = Split.make(len(x), 4, 0)
    seed, keep = split.seeds[-1], split.keep[-1:]
    alone = StackedModels(net, [seed])
    loop(alone, PerModelBatches(x, y, keep, [seed], batch_size=16, steps_per_epoch=int(keep.sum()) // 16), device="cpu")
    np.testing.assert_allclose(
        query_logits(setup.target, x, ()), query_logits(alone.model(0).eval(), x, ()), rtol=1e-4, atol=1e-5
    )
    assert torch.equal(seeded_model(net, seed)[0].weight, StackedModels(net, [seed]).model(0)[0].weight)
    # Warm: every model from the store, weights included, the same logits.
    again = PrivacyTrainer(store=store)
    warm = again.audit(train, (x, y), n_references=4, seed=0)
    assert (again.models_trained, again.models_loaded) == (0, 5)
    np.testing.assert_array_equal(warm.membership_data().references.logits, data.references.logits)
    np.testing.assert_array_equal(query_logits(warm.target, x, ()), query_logits(setup.target, x, ()))


def test_what_cannot_stack_is_refused_before_training(tmp_path):
    x, y = _data()
    big = stacked_training(model=net, batch_size=1000)(loop)
    with pytest.raises(ValueError, match="batch_size=1000.*lower the batch size"):
        PrivacyTrainer(store=ModelStore(tmp_path)).audit(big, (x, y), n_references=2, seed=0)
    dropout = stacked_training(model=lambda: nn.Sequential(nn.Linear(8, 4), nn.Dropout(0.5), nn.Linear(4, 3)), batch_size=16)(loop)
    with pytest.raises(ValueError, match="Dropout"):
        PrivacyTrainer(store=ModelStore(tmp_path)).audit(dropout, (x, y), n_references=2, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        stacked_training(model=net, batch_size=0)
    with pytest.raises(TypeError, match="builds one model"):
        stacked_training(model=net())


CONFTEST = """
import pytest, torch
from torch import nn
from torch.nn import functional as F
from pytest_privacy import load_example_dataset, per_model_loss, stacked_training

def net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

@pytest.fixture(scope="session")
def privacy_dataset():
    return load_example_dataset("digits")

@pytest.fixture(scope="session")
def privacy_train_fn():
    @stacked_training(model=net, batch_size=64)
    def train(models, batches, *, device):
        opt = torch.optim.Adam(models.parameters(), lr=1e-3, fused=True)
        for _ in range(5):
            for xb, yb in batches:
                opt.zero_grad()
                per_model_loss(F.cross_entropy, models(xb), yb).sum().backward()
                opt.step()
    return train
"""


@pytest.mark.slow
def test_a_stacked_loop_gates_through_pytest(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate="""
from pytest_privacy import assert_tpr_at_fpr_below

def test_release(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.01, max_tpr=0.5)
""")
    result = pytester.runpytest_subprocess("--privacy-references=4")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*models: 5 trained*", "*cache key covers stacked training loop*"])
