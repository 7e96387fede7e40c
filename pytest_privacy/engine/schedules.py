"""Learning-rate schedules, per model and per step, as torch's schedulers define them.

A model's position is its step in the main loop, ``epoch * steps_per_epoch + step``, out of
``epochs * steps_per_epoch`` (each model has its own ``steps_per_epoch``: it trains on its own
points). A linear warm-up over ``warmup_epochs`` comes first (``LinearLR`` from ``1 / w`` to 1 over
``w`` steps); then, over the remaining steps ``T``:

- ``constant``: ``lr``;
- ``step``: ``lr * 0.1`` after half of ``T`` and ``lr * 0.01`` after three quarters (``MultiStepLR``);
- ``cosine``: ``lr * (1 + cos(pi * t / T)) / 2`` (``CosineAnnealingLR`` with ``eta_min=0``);
- ``onecycle``: torch's ``OneCycleLR`` defaults (``pct_start=0.3``, cosine up from ``lr / 25`` and down
  to ``lr / 25e4``) for the learning rate only (``cycle_momentum=False``: momentum and Adam's beta1
  stay fixed); it brings its own warm-up, so ``warmup_epochs`` must be 0 with it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recipe import TrainingRecipe

__all__ = ["SCHEDULES", "learning_rate"]

SCHEDULES = ("constant", "step", "cosine", "onecycle")


def learning_rate(recipe: TrainingRecipe, position: int, steps_per_epoch: int) -> float:
    """The learning rate of the step at ``position`` (0-based) of a model with ``steps_per_epoch``."""
    lr, total = recipe.lr, recipe.epochs * steps_per_epoch
    warmup = min(total, round(recipe.warmup_epochs * steps_per_epoch))
    if position < warmup:
        return lr * (position + 1) / warmup
    t, span = position - warmup, max(1, total - warmup)
    if recipe.schedule == "constant":
        return lr
    if recipe.schedule == "step":
        return lr * 0.1 ** ((t >= int(0.5 * span)) + (t >= int(0.75 * span)))
    if recipe.schedule == "cosine":
        return lr * (1 + math.cos(math.pi * min(t, span) / span)) / 2
    # onecycle, as torch.optim.lr_scheduler.OneCycleLR(max_lr=lr, total_steps=span)
    initial, final = lr / 25, lr / 25 / 1e4
    up = float(0.3 * span) - 1
    if t <= up:
        return _cos_anneal(initial, lr, t / up if up > 0 else 1.0)
    return _cos_anneal(lr, final, (t - up) / (span - 1 - up))


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * min(pct, 1.0)) + 1)
