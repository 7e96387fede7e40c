"""One conformance test every registered defense passes, and a toy defense registered from this file
with no edit to the package: named in a recipe, trained by the same trainer, checked by the same test.

Each defense must: be named in a recipe by its kind and by its settings (round-tripping through the
recipe's canonical JSON, which keys the cache, and changing that key); train each model exactly as it
would alone (its draws come from its own seed, only when it steps); be deterministic; change training;
keep weights finite; refuse a misspelt setting; describe itself for the report. Both gradient
strategies run it: the hand-written MLP backward (``model="mlp"``) and autograd (a factory model).
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pytest
import torch
from pydantic import Field, ValidationError
from torch import nn

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.engine.defenses import (
    DEFENSES,
    DefenseSettings,
    NoDefense,
    register_defense,
)
from pytest_privacy.engine.ensemble import train_models
from pytest_privacy.engine.seeds import model_seeds


@register_defense
class ToyLabelSmoothing(DefenseSettings):
    """Label smoothing as a defense: every step trains on ``(1 - s) * onehot + s / C``."""

    kind: Literal["toy_label_smoothing"] = "toy_label_smoothing"
    smoothing: float = Field(0.3, gt=0, lt=1, strict=True)

    def build(self, stack):
        return _Smoothing(self.smoothing, stack.n_classes)


class _Smoothing(NoDefense):
    def __init__(self, smoothing: float, n_classes: int) -> None:
        self.smoothing, self.n_classes = smoothing, n_classes

    def batch(self, batch):
        q = batch.target_distribution(self.n_classes)
        return batch.with_inputs(batch.x, (1 - self.smoothing) * q + self.smoothing / self.n_classes)


def _tanh_mlp() -> nn.Module:  # not the recipe's ReLU MLP: trained through autograd
    return nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 4))


N, POOL = 300, np.arange(270, 300)


def _train(recipe: TrainingRecipe, keep: np.ndarray, seeds):
    x, y = load_example_dataset("synthetic", n=N)
    needs_pool = recipe.defense is not None and recipe.defense.validation_share > 0
    return train_models(recipe, x, y, keep, seeds, validation=POOL if needs_pool else None)


def _kinds() -> list[str]:
    return sorted(DEFENSES)


@pytest.mark.parametrize("kind", _kinds())
def test_a_defense_is_named_in_a_recipe_and_keys_the_cache(kind):
    settings = DEFENSES[kind]()
    by_name, by_settings = TrainingRecipe(defense=kind), TrainingRecipe(defense=settings)
    assert by_name == by_settings and by_name.defense.kind == kind
    again = TrainingRecipe.model_validate(json.loads(by_name.canonical_json()))
    assert again == by_name and type(again.defense) is type(settings)
    assert by_name.canonical_json() != TrainingRecipe().canonical_json()
    assert isinstance(settings.describe(), str) and settings.describe()
    with pytest.raises(ValidationError, match="unknown field"):
        DEFENSES[kind].model_validate({"kind": kind, "no_such_setting": 1})


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", _tanh_mlp], ids=["hand-written-backward", "autograd"])
@pytest.mark.parametrize("kind", _kinds())
def test_a_defended_model_is_its_own_deterministic_and_changed(kind, model):
    if kind == "dp_sgd":
        pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    recipe = TrainingRecipe(model=model, hidden=(16,), epochs=3, batch_size=32, defense=kind)
    keep = np.zeros((2, N), dtype=bool)
    keep[0, :100], keep[1, 100:240] = True, True  # 100 vs 140 points: model 0 waits on some steps
    seeds = model_seeds(0, range(2))
    together = _train(recipe, keep, seeds)
    again = _train(recipe, keep, seeds)
    alone = _train(recipe, keep[:1], seeds[:1])
    plain = _train(recipe.with_defense(None), keep, seeds)
    changed = False
    for k, v in together.params.items():
        assert torch.isfinite(v).all()
        torch.testing.assert_close(again.params[k], v, rtol=0, atol=0)  # deterministic
        torch.testing.assert_close(alone.params[k][0], v[0], rtol=1e-4, atol=1e-5)  # chunk-mates change nothing
        changed |= not torch.allclose(plain.params[k], v, atol=1e-4)
    assert changed, f"defense {kind!r} trained exactly the undefended models"


@pytest.mark.slow
def test_the_toy_defense_does_what_it_says():
    """Label smoothing caps the confidence a model learns: its members' mean top probability is
    below the undefended model's (and near the smoothed target's 1 - s + s / C)."""
    x, y = load_example_dataset("synthetic", n=N)
    keep = np.zeros((1, N), dtype=bool)
    keep[0, :200] = True
    seeds = model_seeds(0, [0])
    recipe = TrainingRecipe(hidden=(64,), epochs=40, batch_size=32)
    smooth = recipe.with_defense(ToyLabelSmoothing(smoothing=0.3))
    confidence = {}
    for name, r in (("plain", recipe), ("smooth", smooth)):
        logits = train_models(r, x, y, keep, seeds).logits(x[:200], queries=False)[0, :, 0]
        confidence[name] = float(torch.softmax(torch.from_numpy(logits), -1).max(-1).values.mean())
    assert confidence["smooth"] < confidence["plain"]
    assert confidence["smooth"] < 1 - 0.3 + 0.3 / 4 + 0.05
