"""Adam and SGD over stacked parameters ``[M, ...]``: exactly M separate optimizers, in fused kernels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .recipe import TrainingRecipe

__all__ = ["StackedOptimizer"]


class StackedOptimizer:
    """Adam or SGD (torch's semantics and fused kernels, L2 weight decay) over stacked tensors.

    The fused kernels take lists of tensors, so each model's slice ``p[m]`` is updated in one
    cache-friendly pass (an elementwise update over the whole ``[M, ...]`` stack is ~10x slower on
    CPU: it streams every model through memory once per arithmetic op). ``active[m]`` False leaves
    model ``m`` untouched, step counter included: a model whose epoch has fewer minibatches waits,
    so it stays identical to the same model trained alone.
    """

    def __init__(self, recipe: TrainingRecipe, params: dict[str, torch.Tensor], n_models: int) -> None:
        import torch

        self.recipe = recipe
        self.keys = list(params)
        dev = params[self.keys[0]].device
        # Stacked state with per-model views: both update paths below share the same storage.
        self.m1 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.m2 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.slices = [[params[k][m] for k in self.keys] for m in range(n_models)]
        self.buf1 = [[self.m1[k][m] for k in self.keys] for m in range(n_models)]
        self.buf2 = [[self.m2[k][m] for k in self.keys] for m in range(n_models)]
        self.stacked = ([params[k] for k in self.keys], [self.m1[k] for k in self.keys], [self.m2[k] for k in self.keys])
        self.counts = [0] * n_models  # each model's step count; the tensors below mirror it for Adam
        self.steps = [torch.zeros((), dtype=torch.float32, device=dev) for _ in range(n_models)]
        self.shared = torch.zeros((), dtype=torch.float32, device=dev)

    def step(self, grads: dict[str, torch.Tensor], active: Sequence[bool]) -> None:
        """Update the models where ``active`` with their ``grads`` (keyed like the parameters)."""
        import torch

        r = self.recipe
        models = [m for m, a in enumerate(active) if a]
        # The fused kernels walk raw memory: a gradient whose strides differ from its parameter's
        # (bmm's backward returns transposed ones) would be paired element for element wrongly.
        gathered = [grads[k].contiguous() for k in self.keys]
        first = self.counts[models[0]] == 0
        for m in models:
            self.counts[m] += 1
        together = len(models) == len(active) and len(set(self.counts)) == 1
        with torch.no_grad():
            if together:
                # Every model steps and all share one step count: one fused call over the stacked
                # tensors. The update is elementwise, so this is the per-model update without the
                # per-model list building that dominates small models' steps.
                params, grad_list = self.stacked[0], gathered
                bufs1, bufs2 = self.stacked[1], self.stacked[2]
                self.shared.fill_(self.counts[0])
                step_list = [self.shared] * len(self.keys)
            else:
                params = [t for m in models for t in self.slices[m]]
                grad_list = [g[m] for m in models for g in gathered]
                bufs1 = [b for m in models for b in self.buf1[m]]
                bufs2 = [b for m in models for b in self.buf2[m]]
                for m in models:
                    self.steps[m].fill_(self.counts[m])
                step_list = [self.steps[m] for m in models for _ in self.keys]
            if r.optimizer == "sgd":
                torch._fused_sgd_(
                    params, grad_list, bufs1 if r.momentum else [],
                    weight_decay=r.weight_decay, momentum=r.momentum, lr=r.lr, dampening=0.0,
                    nesterov=False, maximize=False, is_first_step=first,
                )
                return
            torch._fused_adam_(
                params, grad_list, bufs1, bufs2, [], step_list,
                lr=r.lr, beta1=0.9, beta2=0.999, weight_decay=r.weight_decay, eps=1e-8,
                amsgrad=False, maximize=False,
            )
