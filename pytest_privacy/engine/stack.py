"""One stack: ``M`` models of a recipe trained together as one program (the trainer's inner loop).

Each epoch every model draws a fresh permutation of its own points and a query (augmentation) per
point from its own generator; each step takes one minibatch per model (padded with inert slots for
models with fewer points; a model with no minibatch left waits, untouched). The gradient strategy
is chosen once per stack; the defense, if any, shapes each step's batch and acts after each epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .gradients import Autograd, GradientStrategy, choose_gradients
from .loss import Batch
from .model_by_model import ModelByModel
from .models import foldable, folded_model
from .optimizer import StackedOptimizer
from .precision import autocast
from .schedules import learning_rate
from .seeds import child_seed
from .training_data import TrainingData
from .views import TrainViews

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .recipe import TrainingRecipe

__all__ = ["Epoch", "Stack", "conv_layout", "forward_all", "train_stack"]


def forward_all(base: nn.Module, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
    """Every stacked model on the same inputs: ``[M, B, C]``."""
    from torch.func import functional_call, vmap

    return vmap(lambda p: functional_call(base, p, (xb,)))(params)


@dataclass(frozen=True)
class Epoch:
    """One epoch's minibatch layout: ``order[m]`` the point indices model ``m`` sees, step by step
    (``batch_size`` columns per step), ``weight[m]`` 1 for real slots, 0 for padding; the tensors
    are the same on the training device, with ``views_t [M, width, k]`` each slot's random view
    parameters (translation, flip; empty without augmentations)."""

    order: np.ndarray
    weight: np.ndarray
    order_t: torch.Tensor
    weight_t: torch.Tensor
    views_t: torch.Tensor


@dataclass
class Stack:
    """The training state of one stack of models, and what a defense may use of it.

    ``data`` holds the training inputs and labels (on the device, or streamed to it: training draws
    its random views of them per slot, ``views``); ``keep [M, N]`` which points each model trains on; ``validation`` the
    held-out pool a defense trains against (or None); ``steps[m]`` model ``m``'s minibatches per epoch.
    """

    recipe: TrainingRecipe
    base: nn.Module
    params: dict[str, torch.Tensor]
    forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
    optimizer: StackedOptimizer
    autograd: Autograd
    data: TrainingData
    n_classes: int
    keep: np.ndarray
    seeds: list[np.random.SeedSequence]
    validation: np.ndarray | None
    steps: list[int]
    device: torch.device
    buffers: dict[str, torch.Tensor] | None = None  # stacked running statistics (BatchNorm), updated in place
    views: TrainViews | None = None  # the recipe's random training views (augmentations)
    lrs: list[float] = None  # type: ignore[assignment]  # each model's learning rate at this step
    ema: dict[str, torch.Tensor] | None = None  # moving average of weights and statistics, when kept
    _averaged: list[bool] | None = None  # which models the average has started for
    precision: str = "float32"  # "bf16": steps run under bf16 autocast (see .precision)

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    def rngs(self, stream: int) -> list[np.random.Generator]:
        """One numpy generator per model on its own seed's ``stream`` (0 and 1 are the trainer's)."""
        return [np.random.default_rng(child_seed(s, stream)) for s in self.seeds]

    def amp(self) -> contextlib.AbstractContextManager[Any]:
        """The step's autocast: bf16 when the stack trains in bf16 (matmuls and convolutions in bf16;
        master weights, optimizer state and BatchNorm statistics in float32), else none."""
        return autocast(self.precision, self.device)

    def predict_all(self, xb: torch.Tensor) -> torch.Tensor:
        """Every model's logits ``[M, B, C]`` on the same inputs (no gradient bookkeeping needed)."""
        return forward_all(self.base, self.params, xb)

    @contextlib.contextmanager
    def frozen_statistics(self, active: Sequence[bool]) -> Iterator[None]:
        """The block's forward passes update the running statistics of ``active`` models only: a
        model that waits this step keeps its own (as if it had not run at all)."""
        if not self.buffers or all(active):
            yield
            return
        idle = [m for m, on in enumerate(active) if not on]
        saved = {k: v[idle].clone() for k, v in self.buffers.items()}
        try:
            yield
        finally:
            for k, v in saved.items():
                self.buffers[k][idle] = v

    def step(self, grads: dict[str, torch.Tensor], active: Sequence[bool]) -> None:
        """One optimizer step of the ``active`` models: each model's gradient clipped to the
        recipe's norm, its learning rate from the schedule, then its weights' moving average."""
        import torch

        if self.recipe.grad_clip is not None:
            # torch.nn.utils.clip_grad_norm_, per model: the norm over all of its parameters
            norms = torch.sqrt(sum(g.flatten(1).float().pow(2).sum(1) for g in grads.values()))
            factor = (self.recipe.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            grads = {k: g * factor.view(-1, *[1] * (g.dim() - 1)).to(g.dtype) for k, g in grads.items()}
        self.optimizer.step(grads, active, self.lrs)
        if self.ema is not None:
            self._average(active)

    def _average(self, active: Sequence[bool]) -> None:
        """torch's ``AveragedModel(get_ema_multi_avg_fn(decay), use_buffers=True)``, per model: the
        first step copies the weights and running statistics, later ones move the average by
        ``1 - decay`` toward them (BatchNorm's statistics must match the averaged weights)."""
        import torch

        first = [m for m, on in enumerate(active) if on and not self._averaged[m]]
        weight = 1.0 - self.recipe.ema
        live = {**self.params, **{k: v for k, v in (self.buffers or {}).items() if v.is_floating_point()}}
        with torch.no_grad():
            for k, average in self.ema.items():
                if all(active) and not first:
                    average.lerp_(live[k], weight)
                    continue
                for m in (m for m, on in enumerate(active) if on):
                    if m in first:
                        average[m].copy_(live[k][m])
                    else:
                        average[m].lerp_(live[k][m], weight)
        for m in first:
            self._averaged[m] = True

    def set_position(self, epoch: int, step: int) -> None:
        """Each model's learning rate for main-loop ``step`` of ``epoch`` (a model past its last
        minibatch keeps its last rate: it does not step)."""
        r = self.recipe
        if r.schedule == "constant" and not r.warmup_epochs:
            self.lrs = [r.lr] * self.n_models
            return
        self.lrs = [learning_rate(r, epoch * n + min(step, n - 1), n) for n in self.steps]

    def batches(self, epoch: Epoch, active: Callable[[int], list[bool]]) -> Iterator[Batch]:
        """The epoch's batches in order; ``active(step)`` says which models step."""
        rows = self.data.epoch_rows(epoch.order, epoch.order_t)
        epoch_y = self.data.labels_at(epoch.order_t)
        bsz = self.batch_size
        for step in range(max(self.steps)):
            cols = slice(step * bsz, (step + 1) * bsz)
            on = tuple(active(step))
            xb = rows(cols)
            if self.views is not None:
                xb = self.views.apply(xb, epoch.views_t[:, cols], on)
            yield Batch(xb, epoch_y[:, cols], epoch.weight_t[:, cols], on)


def train_stack(
    recipe: TrainingRecipe,
    modules: list[nn.Module],
    keep: np.ndarray,
    seeds: list[np.random.SeedSequence],
    data: TrainingData,
    n_classes: int,
    device: torch.device,
    tick: Callable[[int], Any],
    validation: np.ndarray | None = None,
    *,
    data_std: float = 1.0,
    precision: str = "float32",
) -> dict[str, torch.Tensor]:
    """Train ``len(modules)`` models as one stacked program, in ``precision`` (resolved: ``"float32"``
    or ``"bf16"``); returns their parameters on the CPU, and what the defense measured per model under
    ``extra.`` names."""
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    base = modules[0]
    params, buffers = stack_module_state(modules)
    params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
    buffers = {k: v.detach().to(device) for k, v in buffers.items()}
    from . import stacked_conv
    from .dropout import PerModelDropout

    dropout = PerModelDropout.install(base, seeds, recipe.batch_size, data.example_shape, device)
    # Per-model state, read at each call: the stacked running statistics (BatchNorm's in-place
    # update writes each model's slice) and this step's dropout masks (redrawn every step).
    masks = lambda: dropout.masks if dropout else {}
    forward = vmap(lambda p, xb: functional_call(base, p, (xb,)))
    conv2d = any(isinstance(m, torch.nn.Conv2d) for m in base.modules())
    conv = conv2d or any(isinstance(m, torch.nn.Conv1d) for m in base.modules())
    if foldable(recipe) and conv_layout(device) == "folded":
        folded = folded_model(recipe, data.example_shape, n_classes, len(modules))
        forward = _folded_forward(folded.to(device), buffers)
    elif conv and not buffers and dropout is None and stacked_conv.supports(base):
        # vmap lowers convolutions to grouped convs and pools a strided layout: slower than
        # the one-model loop on CPU. The channels-last stacked forward is 2x (images) to 4x
        # (1-D signals) faster than that loop for 16 models, with the same math.
        spec = stacked_conv.make_spec(base)
        forward = lambda p, xb: stacked_conv.stacked_forward(p, xb, spec)
    elif conv2d and conv_layout(device) == "per_model":
        # Any other 2-D convolutional network on a CPU (the recipe's ResNets, a user's factory
        # with BatchNorm or dropout): each model in turn, channels-last (under vmap a factory
        # ResNet-8 trained 3.8x slower than this, and slower than a plain loop).
        forward = ModelByModel(base, len(modules), lambda: buffers, masks)
    elif buffers or dropout is not None:
        with_state = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
        forward = lambda p, xb: with_state(p, {**buffers, **masks()}, xb)
    members = [np.flatnonzero(row) for row in keep]
    # With running statistics a padded slot would enter the batch's mean and variance: such models
    # train on full minibatches only (the last partial one of an epoch is dropped, as
    # DataLoader(drop_last=True) does), each model exactly as it would alone.
    full_batches_only = bool(buffers)
    steps = [
        max(1, len(idx) // recipe.batch_size) if full_batches_only else math.ceil(len(idx) / recipe.batch_size)
        for idx in members
    ]
    stack = Stack(
        recipe, base, params, forward, StackedOptimizer(recipe, params, len(modules)), Autograd(params, forward),
        data, n_classes, keep, list(seeds), validation, steps, device,
        buffers=buffers or None,
        views=TrainViews.of(recipe.augmentations, data.example_shape, seeds=list(seeds), data_std=data_std),
        precision=precision,
    )
    if recipe.ema is not None:
        averaged = {**params, **{k: v for k, v in buffers.items() if v.is_floating_point()}}
        stack.ema = {k: v.detach().clone() for k, v in averaged.items()}
        stack._averaged = [False] * len(modules)
    defense = recipe.defense.build(stack) if recipe.defense is not None else None
    gradients: GradientStrategy = (defense.gradients(stack) if defense else None) or choose_gradients(
        params, base, forward, device, precision=precision
    )
    rngs = stack.rngs(1)
    smoothing = recipe.label_smoothing
    for e in range(recipe.epochs):
        epoch = _new_epoch(stack, members, rngs)
        for step, batch in enumerate(stack.batches(epoch, lambda step: [step < s for s in stack.steps])):
            stack.set_position(e, step)
            if dropout is not None:
                dropout.draw(batch.active)
            with stack.amp(), stack.frozen_statistics(batch.active):
                if smoothing:  # (1 - s) * onehot + s / C, as F.cross_entropy(label_smoothing=s)
                    batch = batch.with_inputs(batch.x, batch.target_distribution(n_classes) * (1 - smoothing) + smoothing / n_classes)
                if defense is not None:
                    batch = defense.batch(batch)
                grads = gradients(batch)
            stack.step(grads, batch.active)
        if defense is not None:
            defense.end_epoch(stack, epoch)
        tick(1)
    final = {**params, **buffers, **(stack.ema or {})}
    out = {k: v.detach().cpu() for k, v in final.items()}
    # what the defense measured (DP-SGD's canary scores), beside the weights under an "extra." prefix
    out.update({f"extra.{k}": torch.from_numpy(v) for k, v in (defense.extras() if defense else {}).items()})
    return out


def conv_layout(device: torch.device) -> str:
    """How a stack trains 2-D convolutional networks with state (BatchNorm, dropout) on ``device``:
    ``"per_model"`` (each model's network in turn, channels-last: the faster on a CPU, see
    :class:`~.model_by_model.ModelByModel`) or, for the recipe's ResNets elsewhere, ``"folded"`` (one network of
    grouped convolutions: one kernel per layer for all models, for a GPU)."""
    return "per_model" if device.type == "cpu" else "folded"


def _folded_forward(
    folded: nn.Module, buffers: dict[str, torch.Tensor]
) -> Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]:
    """``(params, x [M, B, ...]) -> [M, B, C]`` through the folded network: the stacked parameters
    and running statistics reshaped (views, so BatchNorm's updates land in the stacked buffers)."""
    from torch.func import functional_call

    from .resnets import folded_shapes, folded_state

    shapes = folded_shapes(folded)
    counters = [k for k in buffers if k.endswith("num_batches_tracked")]

    def forward(params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        state = folded_state(shapes, params, buffers)
        out = functional_call(folded, state, (xb,))
        for k in counters:  # BatchNorm counts its batches per model (a waiting model's count is restored)
            buffers[k] += 1
        return out

    return forward


def _new_epoch(stack: Stack, members: list[np.ndarray], rngs: list[np.random.Generator]) -> Epoch:
    """Per model: a fresh permutation of its own points and a random view (augmentation) per point."""
    import torch

    width = max(stack.steps) * stack.batch_size
    order = np.zeros((stack.n_models, width), dtype=np.int64)
    views = np.zeros((stack.n_models, width, stack.views.width if stack.views else 0), dtype=np.int64)
    weight = np.zeros(order.shape, dtype=np.float32)
    for m, (idx, rng) in enumerate(zip(members, rngs)):
        perm = rng.permutation(idx)
        used = min(perm.size, stack.steps[m] * stack.batch_size)  # full minibatches only, with BatchNorm
        order[m, :used] = perm[:used]
        weight[m, :used] = 1.0
        if stack.views is not None:
            views[m, :used] = stack.views.draw(rng, perm.size)[:used]
    dev = stack.device
    return Epoch(
        order, weight, torch.from_numpy(order).to(dev), torch.from_numpy(weight).to(dev), torch.from_numpy(views).to(dev)
    )
