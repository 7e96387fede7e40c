"""The white-box boundary distance of the label-only attacks (Choquette-Choo et al. 2021) is found by
gradient steps on the input: checked against linear classifiers' analytic distances, and for leaving
every submodule as it found it."""

import numpy as np
import pytest
from helpers import linear_problem

from pytest_privacy.attacks.label_only import boundary_scores_whitebox


@pytest.mark.parametrize("n_classes", [2, 5])
def test_whitebox_distance_matches_the_analytic_linear_distance(n_classes):
    import torch

    w, b, x, y, true, correct = linear_problem(60, 8, n_classes, seed=n_classes)
    model = torch.nn.Linear(8, n_classes).double()  # float64: the flip point is exact to ~1e-15
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w))
        model.bias.copy_(torch.from_numpy(b))
    model.train()
    s = boundary_scores_whitebox(model, x, y)
    np.testing.assert_array_equal(s[~correct], 0.0)
    np.testing.assert_allclose(s[correct], true[correct], rtol=1e-3)
    assert model.training and model.weight.grad is None


def test_whitebox_uses_eval_mode_and_restores_every_submodule():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 3)
    )
    model.train()
    model[0].eval()
    x = np.random.default_rng(3).normal(size=(20, 6)).astype(np.float32)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    model.train()
    model[0].eval()
    first = boundary_scores_whitebox(model, x, y)
    # dropout is off during the search (eval mode), so the answer is deterministic
    np.testing.assert_array_equal(first, boundary_scores_whitebox(model, x, y))
    assert [m.training for m in model] == [False, True, True, True] and model.training
    assert (first > 0).all() and np.isfinite(first).all()


