"""Integer inputs (token ids, categorical codes) stay integer end to end: in the audit data, the
cache key, a training function's data, every query, a Dataset, and the label oracle; a lossy cast to
float32 is an error, never a silent rounding (123456789 -> 123456792)."""

import numpy as np
import pytest
import torch
from torch import nn

from pytest_privacy import (
    MembershipData,
    PrivacyTrainer,
    TrainingRecipe,
    measure_attack,
)
from pytest_privacy.data.querying import query_logits
from pytest_privacy.engine.store import ModelStore

VOCAB, T, N = 50, 6, 240
BIG = 123_456_789  # above 2**24: float32 holds 123456792


def _token_data(seed: int = 0, *, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(N, T)) + offset
    return ids.astype(np.int64), (ids[:, 0] - offset) % 2


class Bag(nn.Module):
    """A token-id text classifier: fails on float inputs (EmbeddingBag needs Long indices)."""

    def __init__(self, offset: int = 0):
        super().__init__()
        self.offset = offset
        self.bag, self.out = nn.EmbeddingBag(VOCAB, 16, mode="mean"), nn.Linear(16, 2)

    def forward(self, ids):
        assert ids.dtype == torch.int64, ids.dtype  # not a float that happens to hold whole numbers
        return self.out(self.bag(ids - self.offset))


def _train_bag(offset: int):
    def train(x, y, *, seed, device):
        assert x.dtype == np.int64 and (x >= offset).all()  # the ids the data set holds, exactly
        torch.manual_seed(seed)
        model = Bag(offset)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        xb, yb = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        return model

    return train


@pytest.mark.parametrize("offset", [0, BIG], ids=["small ids", "ids above 2**24"])
def test_a_token_id_classifier_is_trained_queried_and_cached_on_exact_ids(tmp_path, offset):
    data = _token_data(offset=offset)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(_train_bag(offset), data, n_references=2, seed=0)
    md = setup.membership_data()
    assert md.x.dtype == np.int64 and md.x.min() >= offset  # never rounded through float32
    r = measure_attack(setup.target, md, attack="loss")
    assert r.auc_low > 0.5  # it learned its members from the exact ids (AUC 0.66 at seed 0)
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    again.audit(_train_bag(offset), data, n_references=2, seed=0)
    assert again.models_trained == 0 and again.models_loaded == 3


def test_integer_inputs_stay_integer_in_membership_data_and_queries():
    x, y = _token_data(offset=BIG)
    member = np.arange(N) % 2 == 0
    data = MembershipData(x, y, member)
    assert data.x.dtype == np.int64 and data.x[0, 0] == x[0, 0]
    seen = []
    query_logits(lambda xb: seen.append(xb.copy()) or np.zeros((len(xb), 2)), data.x)
    assert seen[0].dtype == np.int64 and (seen[0] == x).all()


def test_a_built_in_recipe_refuses_ids_float32_would_round_before_training():
    trainer = PrivacyTrainer()
    with pytest.raises(ValueError, match=r"beyond 2\*\*24.*float32 would round"):
        trainer.audit(TrainingRecipe(hidden=(4,), epochs=1), _token_data(offset=BIG), n_references=2, seed=0)
    assert trainer.models_trained == 0
    small = PrivacyTrainer()  # small integer codes are exact in float32: a recipe trains on them
    small.audit(TrainingRecipe(hidden=(4,), epochs=1), _token_data(), n_references=2, seed=0)
    assert small.models_trained == 3


def test_a_dataset_of_integer_items_stays_integer_and_mixed_items_are_an_error():
    from pytest_privacy.audit.dataset import materialise

    x, y = _token_data(offset=BIG)

    class Items:
        def __init__(self, mixed=False):
            self.mixed = mixed

        def __len__(self):
            return N

        def __getitem__(self, i):
            xi = torch.from_numpy(x[i])
            return (xi.float() if self.mixed and i == 3 else xi), int(y[i])

    xs, ys, _ = materialise(Items())
    assert xs.dtype == np.int64 and (xs == x).all()
    with pytest.raises(TypeError, match="item 3: x is float32 but item 0's is int64"):
        materialise(Items(mixed=True))
