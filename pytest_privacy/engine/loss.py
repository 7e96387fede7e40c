"""The one training loss of the engine, and the minibatch it is computed on.

Every model, gradient strategy and defense shares it: each model's weighted mean cross-entropy
against a target distribution (one-hot labels, or the soft targets a defense sets, e.g. mixup's
label mixture). The hand-written MLP backward (:mod:`.gradients`) is its exact derivative
``softmax(logits) - targets``; a test checks it against autograd for hard and soft targets, so a
change here that the backward does not follow fails CI instead of training the wrong model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["Batch", "batch_loss"]


@dataclass(frozen=True)
class Batch:
    """One training step of ``M`` stacked models, each on its own minibatch.

    ``x [M, B, ...]`` inputs, ``y [M, B]`` integer labels, ``weight [M, B]`` (0 for padding slots:
    a model with fewer points fills its minibatch with inert ones), ``active[m]`` whether model ``m``
    steps at all, and ``targets [M, B, C]``: soft targets replacing one-hot ``y`` when a defense
    sets them (``None``: the labels).
    """

    x: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    active: tuple[bool, ...]
    targets: torch.Tensor | None = None

    def with_inputs(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> Batch:
        """The same step on other inputs (and soft targets): how a defense changes the loss."""
        return replace(self, x=x, targets=self.targets if targets is None else targets)

    def of_model(self, m: int) -> Batch:
        """Model ``m``'s part of the step, as a one-model batch."""
        one = slice(m, m + 1)
        targets = None if self.targets is None else self.targets[one]
        return Batch(self.x[one], self.y[one], self.weight[one], (self.active[m],), targets)

    def target_distribution(self, n_classes: int) -> torch.Tensor:
        """``targets``, or the one-hot labels ``[M, B, C]`` when no defense set soft ones."""
        import torch.nn.functional as F

        return self.targets if self.targets is not None else F.one_hot(self.y, n_classes).float()


def batch_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Each model's weighted mean cross-entropy ``[M]`` of ``logits [M, B, C]`` on ``batch``."""
    import torch.nn.functional as F

    flat = logits.flatten(0, 1)
    target = batch.y.flatten() if batch.targets is None else batch.targets.flatten(0, 1).to(flat.dtype)
    per_example = F.cross_entropy(flat, target, reduction="none").view_as(batch.weight)
    return (per_example * batch.weight).sum(1) / batch.weight.sum(1).clamp_min(1.0)
