"""One stack: ``M`` models of a recipe trained together as one program (the trainer's inner loop).

Each epoch every model draws a fresh permutation of its own points and a query (augmentation) per
point from its own generator; each step takes one minibatch per model (padded with inert slots for
models with fewer points; a model with no minibatch left waits, untouched). The gradient strategy
is chosen once per stack; the defense, if any, shapes each step's batch and acts after each epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .gradients import Autograd, GradientStrategy, choose_gradients
from .keep import child_seed
from .loss import Batch
from .optimizer import StackedOptimizer

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .recipe import TrainingRecipe

__all__ = ["Epoch", "Stack", "forward_all", "train_stack"]


def forward_all(base: nn.Module, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
    """Every stacked model on the same inputs: ``[M, B, C]``."""
    from torch.func import functional_call, vmap

    return vmap(lambda p: functional_call(base, p, (xb,)))(params)


@dataclass(frozen=True)
class Epoch:
    """One epoch's minibatch layout: ``order[m]`` the point indices model ``m`` sees, step by step
    (``batch_size`` columns per step), ``weight[m]`` 1 for real slots, 0 for padding; the tensors
    are the same on the training device, with ``aug_t`` the query (augmentation) of each slot."""

    order: np.ndarray
    weight: np.ndarray
    order_t: torch.Tensor
    weight_t: torch.Tensor
    aug_t: torch.Tensor


@dataclass
class Stack:
    """The training state of one stack of models, and what a defense may use of it.

    ``queries [N, A, ...]`` and ``labels [N]`` are the whole data set on the device (``A`` the
    recipe's augmentations); ``keep [M, N]`` which points each model trains on; ``validation`` the
    held-out pool a defense trains against (or None); ``steps[m]`` model ``m``'s minibatches per epoch.
    """

    recipe: TrainingRecipe
    base: nn.Module
    params: dict[str, torch.Tensor]
    forward: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
    optimizer: StackedOptimizer
    autograd: Autograd
    queries: torch.Tensor
    labels: torch.Tensor
    labels_np: np.ndarray
    n_classes: int
    keep: np.ndarray
    seeds: list[np.random.SeedSequence]
    validation: np.ndarray | None
    steps: list[int]
    device: torch.device

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
        """bf16 autocast on CUDA (matmuls in bf16, master weights and optimizer state in float32)."""
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()

    def predict_all(self, xb: torch.Tensor) -> torch.Tensor:
        """Every model's logits ``[M, B, C]`` on the same inputs (no gradient bookkeeping needed)."""
        return forward_all(self.base, self.params, xb)

    def batches(self, epoch: Epoch, active: Callable[[int], list[bool]]) -> Iterator[Batch]:
        """The epoch's batches in order; ``active(step)`` says which models step."""
        epoch_x = self.queries[epoch.order_t, epoch.aug_t]  # one gather per epoch, then views
        epoch_y = self.labels[epoch.order_t]
        bsz = self.batch_size
        for step in range(max(self.steps)):
            cols = slice(step * bsz, (step + 1) * bsz)
            yield Batch(epoch_x[:, cols], epoch_y[:, cols], epoch.weight_t[:, cols], tuple(active(step)))


def train_stack(
    recipe: TrainingRecipe,
    modules: list[nn.Module],
    keep: np.ndarray,
    seeds: list[np.random.SeedSequence],
    queries: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    device: torch.device,
    tick: Callable[[int], Any],
    validation: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``len(modules)`` models as one stacked program; returns their parameters on the CPU."""
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    base = modules[0]
    params, _ = stack_module_state(modules)
    params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
    forward = vmap(lambda p, xb: functional_call(base, p, (xb,)))
    if any(isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) for m in base.modules()):
        from .stacked_conv import make_spec, stacked_forward, supports

        if supports(base):
            # vmap lowers convolutions to grouped convs and pools a strided layout: slower than
            # the one-model loop on CPU. The channels-last stacked forward is 2x (images) to 4x
            # (1-D signals) faster than that loop for 16 models, with the same math.
            spec = make_spec(base)
            forward = lambda p, xb: stacked_forward(p, xb, spec)
    members = [np.flatnonzero(row) for row in keep]
    stack = Stack(
        recipe, base, params, forward, StackedOptimizer(recipe, params, len(modules)), Autograd(params, forward),
        queries, labels, labels.cpu().numpy(), n_classes, keep, list(seeds), validation,
        [math.ceil(len(idx) / recipe.batch_size) for idx in members], device,
    )
    defense = recipe.defense.build(stack) if recipe.defense is not None else None
    gradients: GradientStrategy = (defense.gradients(stack) if defense else None) or choose_gradients(
        params, base, forward, device
    )
    rngs = stack.rngs(1)
    n_aug = queries.shape[1]
    for _ in range(recipe.epochs):
        epoch = _new_epoch(stack, members, rngs, n_aug)
        for batch in stack.batches(epoch, lambda step: [step < s for s in stack.steps]):
            with stack.amp():
                if defense is not None:
                    batch = defense.batch(batch)
                grads = gradients(batch)
            stack.optimizer.step(grads, batch.active)
        if defense is not None:
            defense.end_epoch(stack, epoch)
        tick(1)
    return {k: v.detach().cpu() for k, v in params.items()}


def _new_epoch(stack: Stack, members: list[np.ndarray], rngs: list[np.random.Generator], n_aug: int) -> Epoch:
    """Per model: a fresh permutation of its own points and a query (augmentation) per point."""
    import torch

    width = max(stack.steps) * stack.batch_size
    order = np.zeros((stack.n_models, width), dtype=np.int64)
    aug = np.zeros_like(order)
    weight = np.zeros(order.shape, dtype=np.float32)
    for m, (idx, rng) in enumerate(zip(members, rngs)):
        perm = rng.permutation(idx)
        order[m, : perm.size] = perm
        weight[m, : perm.size] = 1.0
        if n_aug > 1:
            aug[m, : perm.size] = rng.integers(0, n_aug, size=perm.size)
    dev = stack.device
    return Epoch(
        order, weight, torch.from_numpy(order).to(dev), torch.from_numpy(weight).to(dev), torch.from_numpy(aug).to(dev)
    )
