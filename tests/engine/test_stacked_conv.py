"""Correctness: stacked_forward (and its gradients) == each nn.Module run alone (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state

from pytest_privacy import TrainingRecipe
from pytest_privacy.engine.models import build_model
from pytest_privacy.engine.stacked_conv import make_spec, stacked_forward, supports


def cnn(channels: tuple[int, ...], shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The recipe's own CNN: exactly what the engine trains."""
    return build_model(TrainingRecipe(model="cnn", hidden=channels), shape, n_classes)


CASES = [
    # channels, example shape, classes
    ((16, 32), (1, 28, 28), 10),  # the benchmark's images28
    ((16, 32), (28, 28), 10),  # [H, W] with Unflatten head
    ((16, 32), (40,), 10),  # mnist1d-like, Unflatten head
    ((8, 8, 8), (41,), 3),  # odd length, floor pooling
    ((4, 6), (3, 15, 13), 5),  # RGB, odd sizes
    ((4, 4, 4, 4), (1, 5, 6), 4),  # spatial shrinks below 2: later blocks skip the pool
    ((5,), (2, 1, 1), 2),  # 1x1 images: no pooling at all
    ((6,), (7,), 3),
]


def _reference(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor):
    logits, grads = [], []
    for m, model in enumerate(models):
        model.zero_grad()
        out = model(x[m])
        F.cross_entropy(out, y[m]).backward()
        logits.append(out.detach())
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    return torch.stack(logits), {k: torch.stack([g[k] for g in grads]) for k in grads[0]}


@pytest.mark.parametrize("channels,shape,classes", CASES)
@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("method", ["loop", "groups", "groups_chunk3", "auto"])
def test_matches_modules(channels, shape, classes, input_grad, method):
    kwargs = {"method": method}
    if method == "groups_chunk3":
        kwargs = {"method": "groups", "chunk": 3}
    n_models, batch = 4, 7
    models = []
    for m in range(n_models):
        torch.manual_seed(100 + m)
        models.append(cnn(channels, shape, classes).double())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_models, batch, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n_models, batch), generator=g)
    ref_logits, ref_grads = _reference(models, x, y)

    params, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    xs = x.clone().requires_grad_(input_grad)
    spec = make_spec(models[0])
    out = stacked_forward(params, xs, spec, **kwargs)
    assert out.shape == ref_logits.shape
    loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(n_models, batch).mean(1).sum()
    leaves = list(params.values()) + ([xs] if input_grad else [])
    grads = torch.autograd.grad(loss, leaves)
    torch.testing.assert_close(out.detach(), ref_logits, rtol=1e-10, atol=1e-10)
    for k, gk in zip(params, grads):
        torch.testing.assert_close(gk, ref_grads[k], rtol=1e-10, atol=1e-10, msg=k)
    if input_grad:  # gradient w.r.t. the input (exercises the col2im backward of the first conv)
        xr = x.clone().requires_grad_()
        total = sum(F.cross_entropy(models[m](xr[m]), y[m]) for m in range(n_models))
        (gx_ref,) = torch.autograd.grad(total, xr)
        torch.testing.assert_close(grads[-1], gx_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["loop", "groups"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (40,)])
def test_float32_allclose_benchmark_shape(method, shape):
    """The benchmark configuration in float32 with default tolerances."""
    n_models, batch = 16, 64
    models = []
    for m in range(n_models):
        torch.manual_seed(m)
        models.append(cnn((16, 32), shape, 10))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n_models, batch, *shape, generator=g)
    y = torch.randint(0, 10, (n_models, batch), generator=g)
    ref_logits, ref_grads = _reference(models, x, y)
    params, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    out = stacked_forward(params, x, models[0], method=method)
    loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(n_models, batch).mean(1).sum()
    grads = torch.autograd.grad(loss, list(params.values()))
    torch.testing.assert_close(out.detach(), ref_logits, rtol=1e-4, atol=1e-5)
    for k, gk in zip(params, grads):
        torch.testing.assert_close(gk, ref_grads[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize(
    "shape,expected",
    [((1, 28, 28), ("loop", None)), ((3, 32, 32), ("loop", None)), ((1, 14, 14), ("groups", None)),
     ((40,), ("groups", None)), ((160,), ("groups", None)), ((400,), ("loop", None)), ((28, 28), ("loop", None)),
     ((1, 18, 18), ("groups", 12))],
)
def test_choose_method(shape, expected):
    from pytest_privacy.engine.stacked_conv import _swap_relu_pool, choose_method

    model = cnn((16, 32), shape, 10)
    params, _ = stack_module_state([model] * 16)
    x = torch.zeros(16, 64, *shape)
    assert choose_method(_swap_relu_pool(make_spec(model)), params, x) == expected


def test_unsupported():
    assert not supports(nn.Sequential(nn.Conv2d(1, 4, 5, padding=2)))
    assert not supports(nn.Sequential(nn.Conv2d(1, 4, 3)))  # padding 0
    assert not supports(nn.Sequential(nn.MaxPool2d(3)))
    assert not supports(nn.Sequential(nn.BatchNorm2d(4)))
    assert supports(cnn((16, 32), (1, 28, 28), 10))


def test_an_unknown_method_is_a_clear_error():
    model = cnn((2,), (8,), 3)
    params, _ = stack_module_state([model])
    with pytest.raises(ValueError, match="choose auto, loop or groups"):
        stacked_forward(params, torch.zeros(1, 2, 8), make_spec(model), method="im2col")


@pytest.mark.parametrize("method", ["loop", "groups"])
def test_every_tensor_stays_on_the_inputs_device(method):
    """Run on the meta device (shapes only, no data): a tensor made on the CPU by default
    inside the forward (as `_cl_weight` once did) would fail here as it would on CUDA."""
    module = build_model(TrainingRecipe(model="cnn", hidden=(4, 8)), (12, 12), 3)
    params, _ = stack_module_state([module, module])
    params = {k: v.detach().to("meta") for k, v in params.items()}
    out = stacked_forward(params, torch.empty(2, 5, 12, 12, device="meta"), module, method=method)
    assert out.device.type == "meta" and out.shape == (2, 5, 3)
