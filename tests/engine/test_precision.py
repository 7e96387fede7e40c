"""The engine's arithmetic: bf16 autocast where the hardware runs it natively, float32 elsewhere, and
always the precision the cache key promises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.audit.job import TrainJob
from pytest_privacy.audit.sources import RecipeSource
from pytest_privacy.engine import precision as precision_module
from pytest_privacy.engine.ensemble import train_models
from pytest_privacy.engine.gradients import Autograd, HandWrittenMLP, choose_gradients
from pytest_privacy.engine.precision import training_precision
from pytest_privacy.engine.seeds import balanced_keep, model_seeds

CNN = TrainingRecipe(model="cnn", hidden=(4,), epochs=1, batch_size=32)
RESNET = TrainingRecipe(model="resnet", depth=8, width=4, epochs=1, batch_size=25, optimizer="sgd", lr=0.05)
MLP = TrainingRecipe(hidden=(16,), epochs=1)


@pytest.fixture
def amx(monkeypatch):
    """Set whether this CPU has AMX tiles (the policy's only hardware question)."""

    def set_amx(value: bool) -> None:
        monkeypatch.setattr(precision_module, "_cpu_has_amx", lambda: value)

    return set_amx


def _factory() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(40, 3))


@pytest.mark.parametrize("has_amx", [True, False])
def test_policy_bf16_on_cuda_and_for_conv_models_on_amx_cpus(amx, has_amx):
    amx(has_amx)
    # convs autocast without vmap (a WideResNet with dropout too: it trains model by model on a CPU)
    for recipe in (CNN, RESNET, TrainingRecipe(model="wrn", depth=10, width=1),
                   TrainingRecipe(model="wrn", depth=10, width=1, dropout=0.1)):
        assert training_precision(recipe, "cpu") == ("bf16" if has_amx else "float32")
        assert training_precision(recipe, "cuda") == "bf16"
    # no measured gain (MLPs), the user's own network (float32 unless asked), or slower (DP-SGD's
    # vmapped per-example gradients)
    for recipe in (MLP, TrainingRecipe(model=_factory), CNN.with_defense("dp_sgd"), CNN.with_defense("mmd_mixup")):
        assert training_precision(recipe, "cpu") == "float32"
        assert training_precision(recipe, "cuda") == "bf16"
    for asked in ("float32", "bf16"):  # an explicit choice is kept everywhere
        assert training_precision(CNN.model_copy(update={"precision": asked}), "cpu") == asked
        assert training_precision(MLP.model_copy(update={"precision": asked}), "cuda") == asked


def test_an_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match=r"precision[\s\S]*'auto', 'float32' or 'bf16'"):
        TrainingRecipe(precision="fp16")


@pytest.mark.parametrize("precision", ["bf16", "float32"])
def test_training_steps_run_in_the_precision_asked(monkeypatch, precision):
    """The ResNet's convolutions output bf16 while it trains under bf16 (float32 otherwise), while
    the weights the models keep stay float32 (autocast's master weights)."""
    from pytest_privacy.engine import ensemble

    seen: set[torch.dtype] = set()
    build = ensemble.build_model

    def build_and_watch(*args, **kwargs) -> nn.Module:
        module = build(*args, **kwargs)
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                # training steps only: not the no-grad vmap pass that checks the forward for
                # randomness once (model_by_model.ModelByModel), where torch autocasts no convolution
                layer.register_forward_hook(
                    lambda mod, _, out: seen.add(out.dtype) if mod.training and torch.is_grad_enabled() else None
                )
        return module

    monkeypatch.setattr(ensemble, "build_model", build_and_watch)
    x = np.random.default_rng(0).normal(size=(100, 3, 8, 8)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 100)
    ens = train_models(RESNET.model_copy(update={"precision": precision}), x, y, balanced_keep(2, len(x), 0),
                       model_seeds(0, range(2)), device="cpu")
    assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert {v.dtype for v in ens.params.values() if v.is_floating_point()} == {torch.float32}


def test_the_built_in_resnet_learns_in_bf16():
    """The per-model ResNet path under bf16: other models than float32's (the arithmetic differs),
    that learn as float32's do (both far above chance on points they did not train on)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    x = (rng.normal(size=(200, 3, 8, 8)) + y[:, None, None, None]).astype(np.float32)  # separable by brightness
    keep = balanced_keep(2, len(x), 0)
    recipe = RESNET.model_copy(update={"epochs": 10, "lr": 0.02, "momentum": 0.9})
    fits = {}
    for precision in ("bf16", "float32"):
        ens = train_models(recipe.model_copy(update={"precision": precision}), x, y, keep, model_seeds(0, range(2)), device="cpu")
        logits = ens.logits(x, queries=False)[:, :, 0]
        fits[precision] = ens, [(logits[m].argmax(-1) == y)[~keep[m]].mean() for m in range(2)]  # test accuracy
    (bf16, acc_bf16), (fp32, acc_fp32) = fits["bf16"], fits["float32"]
    assert not all(torch.equal(bf16.params[k], fp32.params[k]) for k in bf16.params)
    assert min(acc_bf16) > 0.9 and min(acc_fp32) > 0.9  # chance: 0.25


def test_the_mlp_backward_written_for_float32_never_trains_bf16():
    from pytest_privacy.engine.models import build_model

    base = build_model(MLP, (8,), 3)
    params = {k: v.detach()[None] for k, v in base.named_parameters()}
    cpu = torch.device("cpu")
    assert isinstance(choose_gradients(params, base, None, cpu), HandWrittenMLP)
    assert isinstance(choose_gradients(params, base, None, cpu, precision="bf16"), Autograd)


def test_the_cache_key_binds_the_precision(amx):
    seed = np.random.SeedSequence(0)
    keep = np.ones(10, bool)

    def key(source: RecipeSource) -> str:
        return source.key("data", keep, seed, "cpu")

    def asking(recipe: TrainingRecipe, precision: str) -> RecipeSource:
        return RecipeSource(recipe.model_copy(update={"precision": precision}))

    amx(True)
    assert RecipeSource(CNN).on("cpu").recipe.precision == "bf16"
    assert RecipeSource(CNN).on("cpu").covers() == "recipe: every TrainingRecipe field, trained in bf16"  # the summary says so
    bf16_key = key(RecipeSource(CNN))
    assert bf16_key == key(asking(CNN, "bf16")) == key(RecipeSource(CNN).on("cpu"))
    assert bf16_key != key(asking(CNN, "float32"))
    assert key(RecipeSource(MLP)) == key(asking(MLP, "float32"))  # MLPs: float32 either way
    amx(False)
    assert key(RecipeSource(CNN)) == key(asking(CNN, "float32")) != bf16_key
    assert RecipeSource(CNN).recipe_json == asking(CNN, "bf16").recipe_json  # the key holds the resolved one


def test_a_job_trains_in_the_precision_its_keys_were_made_with(amx, monkeypatch):
    """The driver fixes the precision (``on``); a worker whose own CPU would choose otherwise
    follows the job, so the stored model is the one its key names."""
    from pytest_privacy.engine import ensemble

    asked = []

    class Stop(Exception):
        pass

    def fake_train_models(recipe, *args, **kwargs):
        asked.append(recipe.precision)
        raise Stop

    monkeypatch.setattr(ensemble, "train_models", fake_train_models)
    x, y = load_example_dataset("synthetic", n=40, seed=0)
    amx(True)
    source = RecipeSource(CNN).on("cpu")
    job = TrainJob(source, x, y, np.ones((1, len(x)), bool), tuple(model_seeds(0, [0])))
    amx(False)  # the worker's CPU has no AMX
    with pytest.raises(Stop):
        source.train(job, [0], progress=None)
    assert asked == ["bf16"]
