"""A recipe factory the vectorised trainer cannot run is named before anything trains, with the
cause and the fix, not with a raw torch or vmap message after training started."""

import numpy as np
import pytest
import torch.nn.functional as F
from torch import nn

from pytest_privacy import PrivacyTrainer, TrainingRecipe

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(200, 8)).astype(np.float32), np.arange(200) % 3


class _FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(8, 3)

    def forward(self, x):
        return self.l(F.dropout(x, 0.5, training=self.training))


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru, self.l = nn.GRU(2, 4, batch_first=True), nn.Linear(4, 3)

    def forward(self, x):
        return self.l(self.gru(x.reshape(len(x), 4, 2))[0][:, -1])




@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: nn.Sequential(nn.Linear(8, 3)).double(), "0.weight is float64.*drop .double"),
        (lambda: nn.Sequential(nn.Linear(8, 3, device="meta")), "0.weight is on the meta device"),
        (_FunctionalDropout, "draws random numbers outside an nn.Dropout layer.*Use nn.Dropout"),
        (_Recurrent, r"the layer gru \(GRU\) has no batching rule.*privacy_train_fn"),
    ],
    ids=["float64", "meta", "F.dropout", "GRU"],
)
def test_what_the_stacked_trainer_cannot_run_is_named_before_training(factory, message):
    trainer = PrivacyTrainer()
    with pytest.raises(ValueError, match=message):
        trainer.audit(TrainingRecipe(model=factory, epochs=1, batch_size=32), (X, Y), n_references=2, seed=0)
    assert trainer.models_trained == 0


