"""The vectorised engine trains exactly what a one-model-at-a-time loop would."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_privacy import (
    TrainingRecipe,
    balanced_keep,
    load_example_dataset,
    train_ensemble,
)
from pytest_privacy.engine.ensemble import train_models
from pytest_privacy.engine.models import build_model
from pytest_privacy.engine.seeds import child_seed, init_seed, model_seeds


@pytest.fixture(scope="module")
def data():
    x, y = load_example_dataset("synthetic", n=300, seed=0)
    return x, y


def _plain_loop(recipe, x, y, keep_row, seed):
    """Reference implementation: one model, torch.optim and torch's schedulers, batches drawn as
    the engine documents (every feature in torch's own spelling, not the engine's)."""
    torch.manual_seed(init_seed(seed))
    model = build_model(recipe, x.shape[1:], int(y.max()) + 1)
    params = list(model.parameters())
    if recipe.weight_decay_on == "weights":
        groups = [
            {"params": [p for p in params if p.dim() >= 2]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params}]
    wd = recipe.weight_decay
    opt = {
        "adam": lambda: torch.optim.Adam(groups, lr=recipe.lr, weight_decay=wd),
        "adamw": lambda: torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=wd),
        "sgd": lambda: torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, weight_decay=wd, nesterov=recipe.nesterov),
    }[recipe.optimizer]()
    idx = np.flatnonzero(keep_row)
    drop_last = bool(list(model.buffers()))  # BatchNorm: full minibatches only
    per_epoch = idx.size // recipe.batch_size if drop_last else -(-idx.size // recipe.batch_size)
    steps = recipe.epochs * per_epoch
    warm = round(recipe.warmup_epochs * per_epoch)
    span = steps - warm
    sched = torch.optim.lr_scheduler
    main = {
        "constant": lambda: sched.LambdaLR(opt, lambda _: 1.0),
        "step": lambda: sched.MultiStepLR(opt, milestones=[int(0.5 * span), int(0.75 * span)], gamma=0.1),
        "cosine": lambda: sched.CosineAnnealingLR(opt, T_max=span),
        "onecycle": lambda: sched.OneCycleLR(opt, max_lr=recipe.lr, total_steps=span, cycle_momentum=False),
    }[recipe.schedule]()
    if warm:
        main = sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=1 / warm, total_iters=warm - 1), main], [warm])
    averaged = params + [b for b in model.buffers() if b.is_floating_point()]
    ema = None
    rng = np.random.default_rng(child_seed(seed, 1))
    for _ in range(recipe.epochs):
        perm = rng.permutation(idx)
        for start in range(0, per_epoch * recipe.batch_size, recipe.batch_size):
            b = perm[start : start + recipe.batch_size]
            opt.zero_grad()
            out = model(torch.from_numpy(x[b]))
            F.cross_entropy(out, torch.from_numpy(y[b]), label_smoothing=recipe.label_smoothing).backward()
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            opt.step()
            main.step()
            if recipe.ema is not None:  # the first step copies; then average weights and statistics
                with torch.no_grad():
                    if ema is None:
                        ema = [t.detach().clone() for t in averaged]
                    else:
                        for average, t in zip(ema, averaged):
                            average.mul_(recipe.ema).add_(t, alpha=1 - recipe.ema)
    if ema is not None:
        with torch.no_grad():
            for average, t in zip(ema, averaged):
                t.copy_(average)
    return model.eval()


def _bn_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))


def _bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 20)), nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(80, 4),
    )


class _OwnConvNet(nn.Module):
    """A user's own 2-D network, not a Sequential: conv, BatchNorm, a residual add, optional dropout."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(4 * 4 * 5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv1(x.view(-1, 1, 4, 5))).relu()
        return self.head(self.drop(h + self.conv2(h)).flatten(1))


def _own_convnet() -> nn.Module:
    return _OwnConvNet()


def _own_convnet_dropout() -> nn.Module:
    return _OwnConvNet(dropout=0.3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, weight_decay=1e-3),
        TrainingRecipe(hidden=(32, 16), epochs=3, batch_size=50, optimizer="sgd", lr=0.05, weight_decay=1e-3),
        TrainingRecipe(model="cnn", hidden=(4, 8), epochs=2, batch_size=32),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, optimizer="sgd", lr=0.05, nesterov=True),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, optimizer="adamw", weight_decay=0.05),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, optimizer="sgd", lr=0.05, weight_decay=5e-2,
                       weight_decay_on="weights"),
        TrainingRecipe(hidden=(32,), epochs=4, batch_size=32, optimizer="sgd", lr=0.1, schedule="step"),
        TrainingRecipe(hidden=(32,), epochs=4, batch_size=32, optimizer="sgd", lr=0.1, schedule="cosine",
                       warmup_epochs=1),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, lr=1e-2, schedule="onecycle"),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, label_smoothing=0.1),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, optimizer="sgd", lr=0.5, grad_clip=0.5),
        TrainingRecipe(hidden=(32,), epochs=3, batch_size=32, ema=0.9),
        TrainingRecipe(model="cnn", hidden=(4,), epochs=2, batch_size=32, label_smoothing=0.1, grad_clip=1.0,
                       schedule="cosine"),
        TrainingRecipe(model=_bn_mlp, epochs=3, batch_size=32, optimizer="sgd", lr=0.05),
        TrainingRecipe(model=_bn_cnn, epochs=1, batch_size=50, ema=0.9, lr=1e-4),
        TrainingRecipe(model=_own_convnet, epochs=2, batch_size=25, optimizer="sgd", lr=0.05, momentum=0.9),
        TrainingRecipe(model="resnet", depth=8, width=4, epochs=1, batch_size=25, optimizer="sgd", lr=0.01,
                       momentum=0.9, nesterov=True, weight_decay=5e-4, weight_decay_on="weights"),
    ],
    ids=["adam", "sgd-momentum", "cnn-1d", "nesterov", "adamw", "decay-weights-only", "step-schedule",
         "warmup-cosine", "onecycle", "label-smoothing", "grad-clip", "ema", "cnn-autograd-smoothing-clip",
         "batchnorm-mlp", "batchnorm-conv-ema", "own-conv2d-batchnorm", "resnet"],
)
def test_ensemble_member_equals_a_plain_pytorch_loop(data, recipe):
    x, y = data
    if recipe.model in ("resnet", "wrn"):
        x = x.reshape(len(x), 4, 5)  # [H, W] images
    keep = balanced_keep(4, len(x), 0)
    keep[1, :7] = False  # unequal training-set sizes: models wait while others finish an epoch
    # vs a CPU loop in float32 (on a CPU with AMX the engine would train conv models in bf16)
    ens = train_models(recipe.model_copy(update={"precision": "float32"}), x, y, keep, model_seeds(7, range(4)), device="cpu")
    for m in (0, 1):
        plain = _plain_loop(recipe, x, y, keep[m], model_seeds(7, [m])[0])
        with torch.no_grad():
            expected = plain(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ens.logits(x, queries=False, device="cpu")[m, :, 0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        TrainingRecipe(hidden=(32,), dropout=0.3, epochs=3, batch_size=32),
        TrainingRecipe(model="wrn", depth=10, width=1, dropout=0.2, epochs=1, batch_size=32, optimizer="sgd", lr=0.05,
                       schedule="cosine", warmup_epochs=0.5, ema=0.99, label_smoothing=0.1),
    ],
    ids=["mlp-dropout", "wrn-bn-dropout-cosine-ema"],
)
def test_random_layers_and_running_statistics_are_each_models_own(recipe):
    """Dropout masks and BatchNorm statistics come from each model's own seed and batches: a model
    trained with three others (one of them waiting on some steps) equals it trained alone."""
    x, y = load_example_dataset("synthetic", n=300, seed=0)
    if recipe.model == "wrn":
        x = np.random.default_rng(0).normal(size=(300, 3, 8, 8)).astype(np.float32)
    keep = balanced_keep(4, len(x), 0)
    keep[1, :7] = False
    together = train_models(recipe, x, y, keep, model_seeds(0, range(4)))
    alone = train_models(recipe, x, y, keep[1:2], model_seeds(0, [1]))
    for k in together.params:
        torch.testing.assert_close(together.params[k][1], alone.params[k][0], rtol=1e-4, atol=1e-5)
    undropped = train_models(recipe.model_copy(update={"dropout": 0.0}), x, y, keep[1:2], model_seeds(0, [1]))
    assert not torch.allclose(undropped.params[next(iter(undropped.params))], alone.params[next(iter(alone.params))])
    logits = together.logits(x, queries=False)  # eval mode: no masks, running statistics
    np.testing.assert_array_equal(logits, together.logits(x, queries=False))
    module = together.model(1)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), logits[1, :, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_users_conv_network_trains_each_model_in_turn_on_a_cpu(data, monkeypatch):
    """A factory's 2-D network with BatchNorm and dropout trains model by model, channels-last, on a
    CPU (under vmap a ResNet-8 factory trained 3.8x slower): each model still equals itself trained
    alone, masks and running statistics included. Plain MLPs and Sequential CNNs keep their paths."""
    from pytest_privacy.engine import stack

    built, differentiated = [], []
    real, real_gradients = stack.ModelByModel, stack.ModelByModel.gradients
    monkeypatch.setattr(stack, "ModelByModel", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    # and model by model it differentiates (one model's activations alive at a time)
    monkeypatch.setattr(real, "gradients", lambda self, p: differentiated.append(len(p)) or real_gradients(self, p))
    x, y = data
    recipe = TrainingRecipe(model=_own_convnet_dropout, epochs=2, batch_size=25, optimizer="sgd", lr=0.05)
    keep = balanced_keep(4, len(x), 0)
    keep[1, :7] = False
    together = train_models(recipe, x, y, keep, model_seeds(0, range(4)))
    alone = train_models(recipe, x, y, keep[1:2], model_seeds(0, [1]))
    assert len(built) == 2 and isinstance(built[0], _OwnConvNet) and len(differentiated) == 2
    for k in together.params:
        torch.testing.assert_close(together.params[k][1], alone.params[k][0], rtol=1e-4, atol=1e-5)
    undropped = train_models(recipe.model_copy(update={"model": _own_convnet}), x, y, keep[1:2], model_seeds(0, [1]))
    assert not torch.allclose(undropped.params["head.weight"], alone.params["head.weight"])
    with torch.no_grad():  # eval mode: no masks, the model's own running statistics
        np.testing.assert_allclose(together.model(1)(torch.from_numpy(x)).numpy(),
                                   together.logits(x, queries=False)[1, :, 0], rtol=1e-4, atol=1e-5)
    built.clear()
    train_models(TrainingRecipe(model=_bn_mlp, epochs=1), x, y, keep, model_seeds(0, range(4)))
    train_models(TrainingRecipe(model="cnn", hidden=(4,), epochs=1), x.reshape(-1, 4, 5), y, keep, model_seeds(0, range(4)))
    assert built == []


class _NoisyConvNet(_OwnConvNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(super().forward(x), 0.5, training=self.training)  # global generator: not per model


def _noisy_convnet() -> nn.Module:
    return _NoisyConvNet()


def test_randomness_in_a_factorys_conv_forward_is_an_error_not_a_difference(data):
    """Model by model, a random op in a factory's forward would draw from torch's global
    generator (no model would equal itself trained alone): refused, as under vmap."""
    x, y = data
    with pytest.raises(RuntimeError, match="randomness"):
        train_models(TrainingRecipe(model=_noisy_convnet, epochs=1, batch_size=25), x, y,
                     balanced_keep(2, len(x), 0), model_seeds(0, range(2)), device="cpu")


@pytest.mark.slow
def test_member_of_16_equals_the_model_trained_alone(data):
    x, y = data
    recipe = TrainingRecipe(hidden=(32,), epochs=4)
    keep = balanced_keep(16, len(x), 1)
    together = train_ensemble(recipe, x, y, keep, seed=3)
    alone = train_models(recipe, x, y, keep[11:12], model_seeds(3, [11]))
    for k in together.params:
        torch.testing.assert_close(together.params[k][11], alone.params[k][0], rtol=1e-5, atol=1e-6)
    # Ensemble.model(m) is a plain nn.Module with the same function
    module = together.model(11)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), together.logits(x)[11, :, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_same_seed_same_logits_bit_for_bit(data):
    x, y = data
    recipe = TrainingRecipe(hidden=(16,), epochs=2)
    keep = balanced_keep(4, len(x), 0)
    a = train_ensemble(recipe, x, y, keep, seed=5).logits(x)
    b = train_ensemble(recipe, x, y, keep, seed=5).logits(x)
    c = train_ensemble(recipe, x, y, keep, seed=6).logits(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.slow
def test_models_learn(data):
    x, y = data
    ens = train_ensemble(TrainingRecipe(hidden=(64,), epochs=20), x, y, balanced_keep(2, len(x), 0), seed=0)
    acc = (ens.logits(x)[:, :, 0].argmax(-1) == y).mean(axis=1)
    assert (acc > 0.8).all()  # the 4-class mixture is ~90% separable; chance is 25%


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,kwargs,recipe,queries",
    [
        ("digits", {"n": 200}, TrainingRecipe(model="cnn", hidden=(4, 8), epochs=1, augmentations=("shift", "flip")), 10),
        ("mnist1d", {"n": 200}, TrainingRecipe(model="cnn", hidden=(4,), epochs=1, augmentations=("shift",)), 3),
        ("digits", {"n": 200}, TrainingRecipe(model="mlp", hidden=(8,), epochs=1, augmentations=("shift",)), 5),
    ],
)
def test_cnn_and_augmented_queries(name, kwargs, recipe, queries):
    x, y = load_example_dataset(name, **kwargs)
    ens = train_ensemble(recipe, x, y, balanced_keep(2, len(x), 0), seed=0)
    out = ens.logits(x)
    assert out.shape == (2, len(x), queries, 10) and np.isfinite(out).all()
    assert ens.logits(x, queries=False).shape == (2, len(x), 1, 10)


@pytest.mark.slow
def test_factory_models_and_their_limits(data):
    x, y = data

    def small() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 4))

    ens = train_ensemble(TrainingRecipe(model=small, epochs=1), x, y, balanced_keep(2, len(x), 0), seed=0)
    assert ens.logits(x).shape == (2, len(x), 1, 4)
    assert "small" in TrainingRecipe(model=small).canonical_json()

    with pytest.raises(ValueError, match="full minibatches"):  # BatchNorm needs a whole batch per model
        train_ensemble(TrainingRecipe(model=_bn_mlp, epochs=1, batch_size=200), x, y, balanced_keep(2, len(x), 0), seed=0)


def test_recipe_validation():
    with pytest.raises(ValueError, match="unknown model"):
        TrainingRecipe(model="transformer")
    with pytest.raises(ValueError, match="augmentations"):
        TrainingRecipe(augmentations=("rotate",))
    a, b = TrainingRecipe(epochs=3), TrainingRecipe(epochs=4)
    assert a.canonical_json() != b.canonical_json() and a.canonical_json() == TrainingRecipe(epochs=3).canonical_json()
    # A typo must not train with the defaults, and a bool is not 1 epoch.
    with pytest.raises(ValueError, match="unknown field 'epoch'. Did you mean 'epochs'.*unknown field 'learning_rate'. Did you mean 'lr'"):
        TrainingRecipe(epoch=5, learning_rate=1.0)
    for bad in ({"epochs": True}, {"epochs": 2.0}, {"batch_size": "64"}, {"hidden": (True,)}, {"lr": float("nan")}):
        with pytest.raises(ValueError):
            TrainingRecipe(**bad)
    assert TrainingRecipe(lr=1, hidden=[64, 32]).hidden == (64, 32)  # an int is a float, a list a tuple


@pytest.mark.slow
def test_unavailable_cuda_is_a_clear_error(data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    x, y = data
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train_ensemble(TrainingRecipe(epochs=1), x, y, balanced_keep(2, len(x), 0), seed=0, device="cuda")


@pytest.mark.parametrize(
    "recipe",
    [
        TrainingRecipe(model="resnet", depth=8, width=4, epochs=2, batch_size=16, optimizer="sgd", momentum=0.9,
                       nesterov=True, schedule="cosine", ema=0.9, augmentations=("crop", "flip"),
                       label_smoothing=0.1, grad_clip=1.0),
        TrainingRecipe(model="wrn", depth=10, width=1, dropout=0.2, epochs=2, batch_size=16,
                       augmentations=("crop", "flip", "noise")),
        TrainingRecipe(model="cnn", hidden=(4,), epochs=2, batch_size=16, augmentations=("shift",)),
        TrainingRecipe(hidden=(8,), dropout=0.1, epochs=2, batch_size=16, optimizer="adamw", schedule="onecycle"),
        TrainingRecipe(model="cnn", hidden=(4,), epochs=2, batch_size=16).with_defense("dp_sgd"),
    ],
    ids=["resnet-folded", "wrn-dropout", "cnn", "mlp-dropout", "cnn-dp-sgd"],
)
def test_training_keeps_every_tensor_on_the_training_device(monkeypatch, recipe):
    """The training loop on the meta device (shapes, no data), as a stand-in for CUDA where none
    is: a tensor made on the CPU by default would raise a device mismatch (a RuntimeError) before
    the end. Only the last step, copying the weights out to the CPU, cannot run on meta tensors;
    the ResNet's fused SGD has no meta kernel, so its update is skipped. (``mmd_mixup`` reads each
    step's real slot counts back to the host, which meta tensors cannot give.)"""
    from pytest_privacy.engine import optimizer, stack
    from pytest_privacy.engine.training_data import TrainingData

    x = np.random.default_rng(0).normal(size=(64, 3, 8, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 64)
    if recipe.optimizer == "sgd":
        monkeypatch.setattr(optimizer.StackedOptimizer, "step", lambda self, grads, active, lrs: None)
    seeds = model_seeds(0, range(2))
    modules = [build_model(recipe, x.shape[1:], 4) for _ in seeds]
    meta = torch.device("meta")
    assert stack.conv_layout(meta) == "folded"  # the GPU's layout for the ResNet
    epochs = []
    with pytest.raises(NotImplementedError, match="meta tensor"):
        stack.train_stack(recipe, modules, balanced_keep(2, 64, 0), seeds,
                          TrainingData.plan(x, y, meta, budget=1 << 30, n_models=2), 4, meta, epochs.append)
    assert epochs == [1] * recipe.epochs  # every epoch ran before the final copy


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data):
    x, y = data
    recipe, keep = TrainingRecipe(hidden=(32,), epochs=2), balanced_keep(4, len(x), 0)
    cpu = train_ensemble(recipe, x, y, keep, seed=1, device="cpu").logits(x, device="cpu")
    gpu = train_ensemble(recipe, x, y, keep, seed=1, device="cuda").logits(x, device="cuda")
    np.testing.assert_allclose(cpu, gpu, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_a_memory_budget_chunks_training_without_changing_any_model(data, monkeypatch):
    from pytest_privacy.engine import ensemble as engine

    x, y = data
    recipe = TrainingRecipe(hidden=(16,), epochs=2)
    keep = balanced_keep(6, len(x), 0)
    whole = train_ensemble(recipe, x, y, keep, seed=1)
    per_model = engine.bytes_per_model(build_model(recipe, x.shape[1:], 4), x.shape[1:], recipe.batch_size)
    chunks = []
    real = engine.train_stack
    monkeypatch.setattr(
        engine, "train_stack", lambda recipe, modules, *a, **kw: chunks.append(len(modules)) or real(recipe, modules, *a, **kw)
    )
    chunked = train_ensemble(recipe, x, y, keep, seed=1, max_memory=2 * per_model)
    assert chunks == [2, 2, 2]
    for k in whole.params:
        torch.testing.assert_close(whole.params[k], chunked.params[k], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cnn_on_images_equals_a_plain_pytorch_loop():
    # 2-D convolutions take the channels-last stacked path (engine/stacked_conv.py).
    x, y = load_example_dataset("digits", n=300)
    recipe = TrainingRecipe(model="cnn", hidden=(4, 8), epochs=2, batch_size=32)
    keep = balanced_keep(4, len(x), 0)
    # vs a CPU loop in float32 (on a CPU with AMX the engine would train the CNN in bf16)
    ens = train_models(recipe.model_copy(update={"precision": "float32"}), x, y, keep, model_seeds(3, range(4)), device="cpu")
    plain = _plain_loop(recipe, x, y, keep[2], model_seeds(3, [2])[0])
    with torch.no_grad():
        expected = plain(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ens.logits(x, queries=False, device="cpu")[2, :, 0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hidden", [(7, 5), ()], ids=["two-hidden", "no-hidden"])
@pytest.mark.parametrize("soft", [False, True], ids=["labels", "soft-targets"])
def test_hand_written_mlp_backward_is_the_derivative_of_the_engine_loss(soft, hidden):
    """The CPU fast path's gradients are autograd's of ``batch_loss`` (the one loss every strategy
    shares), in float64, with padded (zero-weight) rows, for labels and a defense's soft targets,
    with hidden layers and without (the output layer alone: a softmax regression)."""
    from torch.func import functional_call, stack_module_state, vmap

    from pytest_privacy.engine.gradients import HandWrittenMLP, mlp_layers
    from pytest_privacy.engine.loss import Batch, batch_loss

    torch.manual_seed(0)
    modules = [build_model(TrainingRecipe(hidden=hidden), (2, 3), 4).double() for _ in range(3)]
    params, _ = stack_module_state(modules)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    xb, yb = torch.randn(3, 9, 2, 3, dtype=torch.float64), torch.randint(0, 4, (3, 9))
    wb = torch.ones(3, 9, dtype=torch.float64)
    wb[1, 6:] = 0  # a model's last, shorter minibatch
    wb[2] = 0  # a model that waits this step
    targets = torch.softmax(torch.randn(3, 9, 4, dtype=torch.float64), -1) if soft else None
    batch = Batch(xb, yb, wb, (True, True, False), targets)
    out = vmap(lambda p, x: functional_call(modules[0], p, (x,)))(params, xb)
    expected = torch.autograd.grad(batch_loss(out, batch).sum(), list(params.values()))
    layers = mlp_layers(modules[0])
    got = HandWrittenMLP({k: v.detach() for k, v in params.items()}, layers)(batch)
    assert [w for w, _ in layers] == ["1.weight", "3.weight", "5.weight"][: len(hidden) + 1]
    for name, grad in zip(params, expected):
        torch.testing.assert_close(got[name], grad, rtol=1e-10, atol=1e-12)
        assert got[name].is_contiguous()
    assert mlp_layers(nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2))) is None
    assert mlp_layers(build_model(TrainingRecipe(model="cnn", hidden=(4,)), (8,), 2)) is None


@pytest.mark.slow
@pytest.mark.parametrize("model,depth,width", [("resnet", 8, 4), ("wrn", 10, 1)])
def test_both_residual_layouts_train_the_same_models(monkeypatch, model, depth, width):
    """ResNets train per model (channels-last) on a CPU and folded into grouped convolutions on a
    GPU: both layouts give the same models, so the GPU's is checked here on the CPU too."""
    from pytest_privacy.engine import stack

    x = np.random.default_rng(0).normal(size=(120, 3, 8, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 120)
    recipe = TrainingRecipe(model=model, depth=depth, width=width, epochs=2, batch_size=20, optimizer="sgd", lr=0.05,
                            momentum=0.9, nesterov=True, schedule="cosine", ema=0.9, augmentations=("crop", "flip"))
    keep = balanced_keep(4, len(x), 0)
    keep[1, :7] = False  # a model that waits on some steps keeps its running statistics
    assert stack.conv_layout(torch.device("cpu")) == "per_model"
    recipe = recipe.model_copy(update={"precision": "float32"})  # the layouts' equality, not bf16's rounding, is under test
    # One thread: with two, the per-model layout differs from itself at one thread by 6.1e-5 after these 2
    # epochs (the WRN; its reductions split across threads), exactly its distance to the folded layout then;
    # at one thread the layouts differ by 1.2e-7 (measured). The layouts are under test, not the threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_model = train_models(recipe, x, y, keep, model_seeds(2, range(4)), device="cpu")
        monkeypatch.setattr(stack, "conv_layout", lambda device: "folded")
        folded = train_models(recipe, x, y, keep, model_seeds(2, range(4)), device="cpu")
    finally:
        torch.set_num_threads(threads)
    for k in per_model.params:
        torch.testing.assert_close(folded.params[k], per_model.params[k], rtol=1e-4, atol=1e-5)
    counter = next(k for k in per_model.params if k.endswith("num_batches_tracked"))
    assert int(per_model.params[counter][1]) == 2 * (int(keep[1].sum()) // 20)  # its own full batches only


def test_ensemble_model_is_a_trainable_module_of_its_own(data):
    """``Ensemble.model(m)`` copies only the architecture, then takes model m's weights: real CPU
    Parameters that share nothing with the ensemble or with another call's module."""
    x, y = data
    ens = train_models(TrainingRecipe(model="resnet", depth=8, width=4, epochs=1, batch_size=25),
                       x.reshape(len(x), 4, 5), y, balanced_keep(2, len(x), 0), model_seeds(0, range(2)))
    first, again = ens.model(1), ens.model(1)
    assert not first.training
    for (name, p), q in zip(first.named_parameters(), again.parameters()):
        assert isinstance(p, nn.Parameter) and p.requires_grad and p.device.type == "cpu"
        torch.testing.assert_close(p.detach(), ens.params[name][1], rtol=0, atol=0)
        with torch.no_grad():
            p.add_(1.0)  # editing one module's weights leaves the other's and the ensemble's alone
        assert not torch.equal(p, q) and not torch.equal(p.detach(), ens.params[name][1])
    buffers = dict(first.named_buffers())
    assert buffers and all(b.device.type == "cpu" for b in buffers.values())
    torch.testing.assert_close(buffers["stem.1.running_mean"], ens.params["stem.1.running_mean"][1], rtol=0, atol=0)
