"""Data that do not fit the device stream to it in per-model minibatches: every mode of
``TrainingData`` (resident with epoch-wide or per-step gathers, streamed from a host array or a
memory map) trains the same models, bit for bit, and a memory map is never copied whole."""

import numpy as np
import pytest
import torch

from pytest_privacy import TrainingRecipe, balanced_keep, load_example_dataset
from pytest_privacy.engine import training_data as td
from pytest_privacy.engine.defenses.mmd_mixup import MMDMixup
from pytest_privacy.engine.ensemble import train_models
from pytest_privacy.engine.seeds import model_seeds

RECIPES = {
    "mlp-shift-noise": (
        "digits", TrainingRecipe(hidden=(16,), epochs=2, batch_size=32, augmentations=("shift", "noise"))
    ),
    "cnn-crop-flip": (
        "shapes32", TrainingRecipe(model="cnn", hidden=(4, 8), epochs=1, batch_size=32, augmentations=("crop", "flip"))
    ),
    "resnet-batchnorm-ema": (
        "shapes32",
        TrainingRecipe(model="resnet", depth=8, width=4, epochs=1, batch_size=32, optimizer="sgd", lr=0.05,
                       schedule="cosine", ema=0.9, augmentations=("crop", "flip")),
    ),
    "mmd-defense": ("digits", TrainingRecipe(hidden=(16,), epochs=2, batch_size=32, defense=MMDMixup(trigger=0.0))),
}


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    return load_example_dataset(name, n=160) if name == "shapes32" else load_example_dataset(name, n=200)


def _train(recipe, x, y, *, stream, monkeypatch=None, epoch_gather=None, validation=None):
    keep = balanced_keep(4, len(x), 0)
    if validation is not None:
        keep[:, validation] = False
    if epoch_gather is not None:  # the resident plan, with the epoch-wide gather forced on or off
        real = td.TrainingData.plan
        monkeypatch.setattr(
            td.TrainingData, "plan",
            classmethod(lambda cls, *a, **kw: (lambda d: setattr(d, "epoch_gather", epoch_gather) or d)(real(*a, **kw))),
        )
    return train_models(recipe, x, y, keep, model_seeds(5, range(4)), device="cpu", stream=stream, validation=validation)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_mode_trains_the_same_models(name, monkeypatch, tmp_path):
    dataset, recipe = RECIPES[name]
    x, y = _data(dataset)
    validation = np.arange(len(x) - 40, len(x)) if recipe.defense is not None else None
    resident = _train(recipe, x, y, stream=False, validation=validation)
    stepwise = _train(recipe, x, y, stream=False, monkeypatch=monkeypatch, epoch_gather=False, validation=validation)
    monkeypatch.undo()
    streamed = _train(recipe, x, y, stream=True, validation=validation)
    np.save(tmp_path / "x.npy", x.astype(np.float64))  # a float64 memory map: rows convert as they are read
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    from_map = _train(recipe, mapped, y, stream=None, validation=validation)  # planned by size: resident here
    streamed_map = _train(recipe, mapped, y, stream=True, validation=validation)
    for other in (stepwise, streamed, from_map, streamed_map):
        for k in resident.params:
            torch.testing.assert_close(other.params[k], resident.params[k], rtol=0, atol=0)
    np.testing.assert_array_equal(resident.logits(x), streamed_map.logits(mapped))


def test_data_larger_than_the_budget_stream_and_the_map_is_not_copied(monkeypatch):
    x, y = _data("digits")
    plans = []
    real = td.TrainingData.plan
    monkeypatch.setattr(td.TrainingData, "plan", classmethod(lambda cls, *a, **kw: plans.append(real(*a, **kw)) or plans[-1]))
    recipe = TrainingRecipe(hidden=(16,), epochs=1, batch_size=32)
    keep = balanced_keep(2, len(x), 0)
    roomy = train_models(recipe, x, y, keep, model_seeds(1, range(2)), device="cpu")
    tight = train_models(recipe, x, y, keep, model_seeds(1, range(2)), device="cpu", max_memory=2 * x.nbytes)
    assert [(p.resident, p.epoch_gather) for p in plans] == [(True, True), (False, False)]
    assert plans[1]._host is x and plans[1]._on_device is None  # read row by row, never copied
    for k in roomy.params:
        torch.testing.assert_close(tight.params[k], roomy.params[k], rtol=0, atol=0)


def test_a_streamed_step_reads_only_its_rows_once():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    reads = []

    class Counting(np.ndarray):
        def __getitem__(self, index):
            reads.append(np.asarray(index).copy())
            return np.asarray(self).__getitem__(index)

    data = td.TrainingData(x.view(Counting), np.zeros(20, int), torch.device("cpu"), resident=False, epoch_gather=False)
    index = np.array([[3, 7, 3], [19, 7, 0]])
    out = data.take(index)
    assert out.shape == (2, 3, 2) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), x[index])
    [read] = reads
    np.testing.assert_array_equal(read, [0, 3, 7, 19])  # sorted, each row once


def test_the_noise_scale_is_the_data_std_in_float64():
    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, size=(20_000, 7))).astype(np.float32)
    assert td.data_std(x) == pytest.approx(float(np.std(x.astype(np.float64))), rel=1e-12)
    assert td.data_std(np.ones((5, 3), np.float32)) == 1.0
