"""The other side of the factory checks (tests/unit/test_recipe_factory_checks.py): a factory with
dropout layers and batch norm passes the probe and trains, the default dtype left as it was."""

import numpy as np
import torch
from torch import nn

from pytest_privacy import PrivacyTrainer, TrainingRecipe

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(200, 8)).astype(np.float32), np.arange(200) % 3






class _LayerDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.l, self.d, self.bn = nn.Linear(8, 3), nn.Dropout(0.5), nn.BatchNorm1d(8)

    def forward(self, x):
        return self.l(self.d(self.bn(x)))




def test_dropout_layers_and_batchnorm_pass_the_probe():
    trainer = PrivacyTrainer()
    trainer.audit(TrainingRecipe(model=_LayerDropout, epochs=1, batch_size=32), (X, Y), n_references=2, seed=0)
    assert trainer.models_trained == 3
    assert torch.get_default_dtype() == torch.float32
