"""Asking a model (logits, the white-box boundary search) leaves every submodule in the mode it was in."""

import numpy as np


def test_querying_a_module_leaves_every_submodule_in_its_own_mode():
    import torch
    from torch import nn

    from pytest_privacy.attacks.label_only import boundary_scores_whitebox
    from pytest_privacy.data.querying import query_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model.train()
    model[1].eval()  # the user froze batch norm while training the rest
    x, y = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32), np.zeros(5, dtype=int)
    query_logits(model, x)
    boundary_scores_whitebox(model, x, y)
    assert model.training and model[0].training and not model[1].training
