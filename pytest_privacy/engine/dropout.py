"""Dropout with each model's own masks, for the stacked trainer.

Every dropout layer of the stacked architecture becomes a :class:`MaskedDropout` that multiplies by
a mask buffer; vmap hands each model its slice. The masks are drawn per step from each model's own
generator (stream 4 of its seed) and only for models that step, so a model's masks do not depend on
its chunk-mates: the model equals itself trained alone. In eval mode, or where no mask is set (the
MMD pass, DP-SGD's per-example gradients), the layer passes its input through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .models import dry_run
from .seeds import torch_generators

__all__ = ["MaskedDropout", "PerModelDropout"]


class MaskedDropout(nn.Module):
    """``x * mask`` in training mode when a mask is set (``Bernoulli(1 - p) / (1 - p)``), else ``x``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mask", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.mask is None:
            return x
        return x * self.mask.to(x.dtype)


class PerModelDropout:
    """The masks of one stack's dropout layers, redrawn every step."""

    def __init__(self, layers: list[tuple[str, float, tuple[int, ...]]], seeds: Sequence[np.random.SeedSequence],
                 batch_size: int, device: torch.device) -> None:
        self.layers, self.batch_size, self.device = layers, batch_size, device
        self.generators = torch_generators(seeds, 4)
        self.masks: dict[str, torch.Tensor] = {}

    @classmethod
    def install(
        cls, base: nn.Module, seeds: Sequence[np.random.SeedSequence], batch_size: int,
        example_shape: tuple[int, ...], device: torch.device,
    ) -> PerModelDropout | None:
        """Swap ``base``'s dropout layers for masked ones (None when it has none)."""
        found = [(n, m) for n, m in base.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
        if not found:
            return None
        shapes = {name: run.input_shape for name, run in dry_run(base, example_shape).items()}
        for name, layer in found:
            parent, _, child = name.rpartition(".")
            setattr(base.get_submodule(parent) if parent else base, child, MaskedDropout(layer.p))
        return cls([(n, m.p, shapes[n]) for n, m in found], seeds, batch_size, device)

    def draw(self, active: Sequence[bool]) -> None:
        """This step's masks: ``Bernoulli(1 - p) / (1 - p)`` for each model that steps, ones for the rest."""
        for name, p, shape in self.layers:
            full = (self.batch_size, *shape)
            masks = [
                torch.empty(full).bernoulli_(1 - p, generator=g).div_(1 - p) if on else torch.ones(full)
                for g, on in zip(self.generators, active)
            ]
            self.masks[f"{name}.mask"] = torch.stack(masks).to(self.device)
