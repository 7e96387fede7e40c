"""A user's own training loop, written once, driving M stacked models.

The contract of ``engine/own_loop.py`` under test: the loop run on ``StackedModels`` of
M models equals M separate runs of the same loop, one model each, with the same seeds
and the same minibatches; and a one-model run equals a plain PyTorch loop
(``nn.Module``, ``torch.nn.utils.clip_grad_norm_``, ``F.cross_entropy``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_privacy.engine.own_loop import (
    PerModelBatches,
    StackedModels,
    per_model_loss,
    seeded_model,
)
from pytest_privacy.engine.seeds import balanced_keep, init_seed, model_seeds

M, N, D, C = 4, 64, 6, 3
BATCH, EPOCHS = 8, 3

# Float64 throughout: the stacked and the separate runs do the same arithmetic in a
# different order (batched matmuls and reductions over [M, ...] against per-model
# ones), so they differ by rounding alone, ~1e-16 relative per operation. Over the few
# dozen steps here it stays near that (measured worst: 2e-16 absolute); 1e-10 leaves
# room for other BLAS builds and for Adam, which divides by the root of tiny second
# moments (with BatchNorm, 1e-11 was measured), and is still ~1e6 times smaller than
# the change one different minibatch or one unclipped step makes.
RTOL, ATOL = 1e-10, 1e-12


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, C)
    )


def mlp_bn() -> nn.Module:
    return nn.Sequential(
        nn.Linear(D, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, C)
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D))  # float64: the models are cast to float64 too
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y, balanced_keep(M, N, seed=1)


def user_loop(
    models: StackedModels,
    batches: PerModelBatches,
    optimizer: str,
    *,
    clip: float = 0.5,
) -> list[torch.Tensor]:
    """The user's loop, written once for any number of stacked models. Returns each
    step's pre-clipping gradient norms (to check that clipping did act). AdamW runs
    torch's fused kernel, Adam and SGD its default per-tensor path."""
    params = models.parameters()
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3
        )
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.05, fused=True)
    else:
        opt = torch.optim.Adam(params, lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS * len(batches))
    norms = []
    models.train()
    for _ in range(EPOCHS):
        for xb, yb in batches:
            opt.zero_grad()
            loss = per_model_loss(F.cross_entropy, models(xb), yb)
            # Disjoint parameters: each model's gradient is its own loss's.
            loss.sum().backward()
            norms.append(models.clip_grad_norm_(clip))
            opt.step()
            sched.step()
    return norms


def stacked_state(models: StackedModels) -> dict[str, torch.Tensor]:
    return {**models.params(), **models.stacked_buffers()}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "adam"])
def test_loop_on_stacked_models_equals_separate_runs(data, optimizer: str) -> None:
    x, y, keep = data
    seeds = model_seeds(7, range(M))
    stacked = StackedModels(mlp, seeds).double()
    batches = PerModelBatches(x, y, keep, seeds, batch_size=BATCH)
    norms = user_loop(stacked, batches, optimizer)
    assert len(batches) == N // 2 // BATCH
    assert any((n > 0.5).any() for n in norms) and any(
        (n < 0.5).any() for n in norms
    )  # clipping acted on some models
    together = stacked_state(stacked)
    for m in range(M):
        alone = StackedModels(mlp, [seeds[m]]).double()
        own = PerModelBatches(
            x, y, keep[[m]], [seeds[m]], batch_size=BATCH, steps_per_epoch=len(batches)
        )
        user_loop(alone, own, optimizer)
        for k, v in stacked_state(alone).items():
            torch.testing.assert_close(
                together[k][m], v[0], rtol=RTOL, atol=ATOL, msg=f"model {m}, {k}"
            )
    # Training moved the models from their initial weights (the test is not vacuous).
    start = StackedModels(mlp, seeds).double()
    assert not torch.allclose(
        start.params()["0.weight"], together["0.weight"], atol=1e-3
    )


def test_a_plain_sequential_runs_the_engines_stacked_forward(data, monkeypatch) -> None:
    """A Sequential of linear/ReLU layers runs the recipe engine's stacked forward (batched
    matmuls, no vmap: 20% faster here) and gives what vmap gives."""
    from pytest_privacy.engine import stacked_conv

    calls = []
    real = stacked_conv.stacked_forward
    monkeypatch.setattr(
        stacked_conv, "stacked_forward", lambda *a: calls.append(1) or real(*a)
    )
    x, _, _ = data
    stacked = StackedModels(mlp, model_seeds(0, range(M))).double()
    xt = torch.from_numpy(x)
    out = stacked.forward_shared(xt)
    assert calls == [1]
    from torch.func import functional_call, vmap

    expected = vmap(lambda p: functional_call(stacked._base, p, (xt,)))(stacked.params())
    torch.testing.assert_close(out, expected, rtol=RTOL, atol=ATOL)


def trains_as_alone(
    data, factory: Callable[[], nn.Module], seed: int, counter: str, check: tuple[int, ...]
) -> StackedModels:
    """Train M stacked ``factory`` models with BatchNorm and check models ``check`` against
    each trained alone, running statistics included; then model(m) against the stack in
    eval mode. Returns the stack."""
    x, y, keep = data
    seeds = model_seeds(seed, range(M))
    stacked = StackedModels(factory, seeds).double()
    batches = PerModelBatches(x, y, keep, seeds, batch_size=BATCH)
    user_loop(stacked, batches, "sgd")
    together = stacked_state(stacked)
    assert int(together[counter][check[-1]]) == EPOCHS * len(batches)
    for m in check:
        alone = StackedModels(factory, [seeds[m]]).double()
        user_loop(
            alone, PerModelBatches(x, y, keep[[m]], [seeds[m]], batch_size=BATCH), "sgd"
        )
        for k, v in stacked_state(alone).items():
            torch.testing.assert_close(
                together[k][m], v[0], rtol=RTOL, atol=ATOL, msg=f"model {m}, {k}"
            )
    xt = torch.from_numpy(x)
    stacked.eval()
    torch.testing.assert_close(
        stacked.model(check[-1])(xt),
        stacked.forward_shared(xt)[check[-1]],
        rtol=RTOL,
        atol=ATOL,
    )
    return stacked


def test_batchnorm_trains_per_model(data) -> None:
    """Running statistics are per model: the stack equals each model trained alone,
    statistics included."""
    trains_as_alone(data, mlp_bn, 3, "1.num_batches_tracked", (0, 3))


class ConvBN(nn.Module):
    """A 2-D convolutional network with BatchNorm on the [D] = [1, 2, 3] inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * D, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(x.view(-1, 1, 2, 3))).relu().flatten(1))


def test_a_conv_network_on_a_cpu_runs_model_by_model_and_equals_separate_runs(
    data, monkeypatch
) -> None:
    """On a CPU a 2-D convolutional network runs each model in turn, channels-last (the
    first call in each mode also probes it under vmap, to refuse randomness), and still
    equals each model trained alone, BatchNorm statistics included (the statistics'
    batch counter shows the probe leaves them alone)."""
    from pytest_privacy.engine import model_by_model

    calls = []
    real = model_by_model.ModelByModel

    def counted(base, n_models, *rest):
        forward = real(base, n_models, *rest)
        return lambda params, x: calls.append(n_models) or forward(params, x)

    monkeypatch.setattr(model_by_model, "ModelByModel", counted)
    trains_as_alone(data, ConvBN, 5, "bn.num_batches_tracked", (0, 2))
    steps = EPOCHS * (N // 2 // BATCH)
    # the stack's training steps and its eval call run M models each; the alone runs one
    assert calls.count(M) == steps + 1 and calls.count(1) == 2 * steps


def test_one_stacked_model_equals_a_plain_pytorch_loop(data) -> None:
    """The stacked arithmetic is torch's own: model m equals a plain nn.Module trained
    by a plain loop (torch's clip_grad_norm_, cross-entropy and AdamW) on model m's
    minibatches."""
    x, y, keep = data
    seeds = model_seeds(11, range(M))
    stacked = StackedModels(mlp, seeds).double()
    batches = PerModelBatches(x, y, keep, seeds, batch_size=BATCH)
    user_loop(stacked, batches, "adamw")
    m = 2
    model = seeded_model(mlp, seeds[m]).double()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS * len(batches))
    order = PerModelBatches(
        x, y, keep[[m]], [seeds[m]], batch_size=BATCH, steps_per_epoch=len(batches)
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(EPOCHS):
        for idx in order.iter_indices():
            b = torch.from_numpy(idx[0])
            opt.zero_grad()
            F.cross_entropy(model(xt[b]), yt[b]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
    for k, v in model.named_parameters():
        torch.testing.assert_close(
            stacked.params()[k][m], v, rtol=RTOL, atol=ATOL, msg=k
        )


def test_model_m_is_the_factory_alone_under_its_seed() -> None:
    seeds = model_seeds(5, range(3))
    before = torch.random.get_rng_state()
    stacked = StackedModels(mlp, seeds)
    assert torch.equal(
        torch.random.get_rng_state(), before
    )  # the caller's global generator is untouched
    for m, s in enumerate(seeds):
        alone = seeded_model(mlp, s)
        torch.manual_seed(init_seed(s))  # by hand, as the module docstring says a model is built
        by_hand = mlp()
        for k, v in alone.state_dict().items():
            assert torch.equal(stacked.params()[k][m], v), (m, k)
            assert torch.equal(by_hand.state_dict()[k], v), (m, k)
    assert not torch.equal(
        stacked.params()["0.weight"][0], stacked.params()["0.weight"][1]
    )
    # A model's weights depend on its own seed only, not on its stack-mates.
    again = StackedModels(mlp, [seeds[2], seeds[0]])
    assert torch.equal(again.params()["4.bias"][0], stacked.params()["4.bias"][2])


def test_model_m_predicts_as_the_stacked_forward(data) -> None:
    x, y, keep = data
    seeds = model_seeds(1, range(M))
    stacked = StackedModels(mlp, seeds)
    xb = torch.randn(M, 5, D)
    out = stacked(xb)
    assert out.shape == (M, 5, C)
    for m in range(M):
        model = stacked.model(m)
        assert isinstance(model, nn.Sequential) and model.training
        torch.testing.assert_close(model(xb[m]), out[m], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        stacked.model(-1)(xb[0]),
        stacked.forward_shared(xb[0])[-1],
        rtol=1e-6,
        atol=1e-6,
    )
    copy = stacked.model(0)
    with torch.no_grad():
        copy[0].weight.zero_()  # a copy: the stack is not changed through it
    assert stacked.params()["0.weight"][0].abs().sum() > 0
    assert not stacked.eval().model(1).training
    with pytest.raises(IndexError):
        stacked.model(M)


def test_sampler_gives_each_model_its_members_once_per_epoch(data) -> None:
    x, y, keep = data
    seeds = model_seeds(2, range(M))
    batches = PerModelBatches(x, y, keep, seeds, batch_size=BATCH)
    epochs = [
        np.stack(list(batches.iter_indices()), axis=1) for _ in range(2)
    ]  # [M, steps, B] each
    for order in epochs:
        assert order.shape == (M, N // 2 // BATCH, BATCH)
        for m in range(M):
            assert sorted(order[m].ravel()) == list(
                np.flatnonzero(keep[m])
            )  # every member once, nothing else
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh order each epoch
    xb, yb = next(iter(batches))
    assert (
        xb.shape == (M, BATCH, D)
        and yb.shape == (M, BATCH)
        and xb.dtype == torch.float64
    )
    # The same model alone gets the same batches: its order comes from its seed only.
    again = PerModelBatches(x, y, keep, seeds, batch_size=BATCH)
    first = np.stack(list(again.iter_indices()), axis=1)
    alone = PerModelBatches(x, y, keep[[2]], [seeds[2]], batch_size=BATCH)
    np.testing.assert_array_equal(
        np.stack(list(alone.iter_indices()), axis=1)[0], first[2]
    )


def test_sampler_with_unequal_member_counts_drops_each_models_tail(data) -> None:
    x, y, _ = data
    keep = np.zeros((3, N), dtype=bool)
    keep[0, :20], keep[1, 20:45], keep[2, 45:] = (
        True,
        True,
        True,
    )  # 20, 25 and 19 points
    batches = PerModelBatches(x, y, keep, model_seeds(0, range(3)), batch_size=6)
    assert len(batches) == 19 // 6 == 3  # the fewest full minibatches any model has
    order = np.stack(list(batches.iter_indices()), axis=1).reshape(3, -1)
    for m in range(3):
        assert len(set(order[m])) == 18 and set(order[m]) <= set(
            np.flatnonzero(keep[m])
        )


SHARED = mlp()  # a factory returning this one instance builds no fresh models


def _dropout_net() -> nn.Module:
    return nn.Sequential(nn.Linear(D, 8), nn.Dropout(0.2), nn.Linear(8, C))


def _cumulative_bn() -> nn.Module:
    return nn.Sequential(
        nn.Linear(D, 8), nn.BatchNorm1d(8, momentum=None), nn.Linear(8, C)
    )


@pytest.mark.parametrize(
    ("factory", "error", "match"),
    [
        (lambda: "not a model", TypeError, "returned str, not an nn.Module"),
        (mlp(), TypeError, "not a model instance"),
        (lambda shared=SHARED: shared, TypeError, "same module twice"),
        (_dropout_net, ValueError, r"layer '1' \(Dropout\).*privacy_train_fn"),
        (_cumulative_bn, ValueError, r"layer '1' \(BatchNorm1d\).*numeric momentum"),
        (lambda: nn.ReLU(), ValueError, "without parameters"),
    ],
)
def test_stacked_models_refuses_bad_factories(
    factory: Callable[[], object], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        StackedModels(factory, model_seeds(0, range(2)))


def test_bad_inputs_are_named() -> None:
    seeds = model_seeds(0, range(2))
    x, y = np.zeros((10, D)), np.zeros(10, dtype=np.int64)
    keep = balanced_keep(2, 10, 0)
    with pytest.raises(TypeError, match="model_seeds"):
        StackedModels(mlp, [0, 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="forward_shared"):
        StackedModels(mlp, seeds)(torch.zeros(3, 4, D))
    with pytest.raises(ValueError, match="one row per point"):
        PerModelBatches(x, y[:9], keep, seeds, batch_size=2)
    for bad in (keep[0], keep[:, :9], keep.astype(int)):
        with pytest.raises(
            ValueError, match=r"keep must be a bool array \[M, N\].*balanced_keep"
        ):
            PerModelBatches(x, y, bad, seeds, batch_size=2)
    with pytest.raises(ValueError, match="one per model"):
        PerModelBatches(x, y, keep, seeds[:1], batch_size=2)
    with pytest.raises(ValueError, match="lower batch_size"):
        PerModelBatches(x, y, keep, seeds, batch_size=6)
    with pytest.raises(
        ValueError, match=r"steps_per_epoch must be an integer in \[1, 2\]"
    ):
        PerModelBatches(x, y, keep, seeds, batch_size=2, steps_per_epoch=3)
    with pytest.raises(TypeError, match="SeedSequence"):
        PerModelBatches(x, y, keep, [1, 2], batch_size=2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="model axis"):
        per_model_loss(
            F.cross_entropy, torch.zeros(2, 3, C), torch.zeros(3, 3, dtype=torch.long)
        )


def test_randomness_in_a_custom_forward_is_an_error_not_a_difference() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(D, C)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(self.fc(x), 0.5, training=True)

    stacked = StackedModels(Noisy, model_seeds(0, range(2)))
    with pytest.raises(RuntimeError, match="randomness"):
        stacked(torch.zeros(2, 3, D))

    class NoisyConv(ConvBN):  # random in training mode only; run model by model on a CPU
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(super().forward(x), 0.5, training=self.training)

    stacked = StackedModels(NoisyConv, model_seeds(0, range(2))).eval()
    stacked(torch.zeros(2, 3, D))  # eval mode: nothing random
    with pytest.raises(RuntimeError, match="randomness"):
        stacked.train()(torch.zeros(2, 3, D))
