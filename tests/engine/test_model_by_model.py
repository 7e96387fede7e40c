"""Model-by-model training (engine/model_by_model.py): the per-model forward and backward give the
same gradients and running statistics as one autograd graph through all models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn
from torch.func import stack_module_state

from pytest_privacy.engine.gradients import Autograd, choose_gradients
from pytest_privacy.engine.loss import Batch
from pytest_privacy.engine.model_by_model import ModelByModel

M, B = 3, 6


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    ).double()


def _stack() -> tuple[nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    modules = [_net() for _ in range(M)]
    params, buffers = stack_module_state(modules)
    return modules[0], {k: v.detach().requires_grad_() for k, v in params.items()}, buffers


def _batch(soft: bool) -> Batch:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(M, B, 2, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (M, B), generator=g)
    weight = torch.ones(M, B, dtype=torch.float64)
    weight[2, 4:] = 0.0  # padding slots weigh nothing
    targets = torch.softmax(torch.randn(M, B, 3, generator=g, dtype=torch.float64), -1) if soft else None
    return Batch(x, y, weight, (True, False, True), targets)


@pytest.mark.parametrize("soft", [False, True])
def test_model_by_model_gradients_equal_one_graph_through_all_models(soft: bool) -> None:
    """Each active model's gradient and running statistics equal those of one backward through the
    sum of all models' losses (float64); a waiting model gets a zero gradient and no statistics
    update (the one-graph forward, which runs it, updates them: the trainer restores those)."""
    base, params, buffers = _stack()
    joint_buffers = {k: v.clone() for k, v in buffers.items()}
    batch = _batch(soft)
    by_model = ModelByModel(base, M, lambda: buffers)
    joint = Autograd(params, ModelByModel(base, M, lambda: joint_buffers))(batch)
    grads = choose_gradients(params, base, by_model, torch.device("cpu"))(batch)
    for k, g in grads.items():
        for m in (0, 2):
            torch.testing.assert_close(g[m], joint[k][m], rtol=1e-10, atol=1e-12)
        assert not g[1].any()
    for k, v in buffers.items():
        torch.testing.assert_close(v[[0, 2]], joint_buffers[k][[0, 2]], rtol=1e-12, atol=0)
    _, _, untouched = _stack()
    for k, v in buffers.items():
        assert torch.equal(v[1], untouched[k][1])
    assert grads["4.weight"][0].abs().sum() > 0  # the comparison is not of zeros


def test_model_by_model_refuses_randomness_in_the_forward() -> None:
    """A random op in the forward would draw from torch's global generator model after model; the
    gradient strategy refuses it, as the forward does."""
    base, params, buffers = _stack()
    base = nn.Sequential(*base, nn.Dropout(0.5)).double()  # Dropout as a layer: no per-model masks given
    with pytest.raises(RuntimeError, match="randomness"):
        ModelByModel(base, M, lambda: buffers).gradients(params)(_batch(False))
