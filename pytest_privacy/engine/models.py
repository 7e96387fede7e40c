"""The models a recipe names, built for one example shape: ``mlp``, ``cnn``, ``resnet``, ``wrn``, or
the user's factory. Every built-in model is a plain ``nn.Module``; the engine stacks M of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of import time
    from torch import nn

    from .recipe import TrainingRecipe

__all__ = ["LayerRun", "build_model", "dry_run", "folded_model"]


def build_model(recipe: TrainingRecipe, example_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Instantiate the recipe's model for inputs of ``example_shape`` (no batch axis)."""
    from torch import nn

    if callable(recipe.model):
        module = recipe.model()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"the recipe's model factory returned {type(module).__name__}, not an nn.Module."
            )
        return module
    if recipe.model == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(example_shape)
        for h in recipe.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(recipe.dropout)] if recipe.dropout else [])
            width = h
        return nn.Sequential(*layers, nn.Linear(width, n_classes))
    if recipe.model == "cnn":
        return _cnn(recipe.hidden, example_shape, n_classes)
    from .resnets import resnet, wide_resnet

    if recipe.model == "resnet":
        return resnet(example_shape, n_classes, depth=recipe.depth or 8, width=recipe.width or 16)
    return wide_resnet(example_shape, n_classes, depth=recipe.depth or 16, k=recipe.width or 4, dropout=recipe.dropout)


def _cnn(channels: tuple[int, ...], shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Conv(3x3 or 3) + ReLU + MaxPool(2) blocks, then a linear head; no batch norm (vectorisable)."""
    from torch import nn

    if len(shape) == 1:  # [L] signal -> [1, L]
        conv, pool, c_in, spatial = nn.Conv1d, nn.MaxPool1d, 1, list(shape)
        head: list[nn.Module] = [nn.Unflatten(1, (1, shape[0]))]
    elif len(shape) == 2:  # [H, W] grayscale -> [1, H, W]
        conv, pool, c_in, spatial = nn.Conv2d, nn.MaxPool2d, 1, list(shape)
        head = [nn.Unflatten(1, (1, shape[0]))]
    elif len(shape) == 3:
        conv, pool, c_in, spatial = nn.Conv2d, nn.MaxPool2d, shape[0], list(shape[1:])
        head = []
    else:
        raise ValueError(f"model='cnn' needs [L], [H, W] or [C, H, W] examples, got {shape}.")
    layers = head
    for c_out in channels:
        layers += [conv(c_in, c_out, 3, padding=1), nn.ReLU()]
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(c_in * math.prod(spatial), n_classes)]
    return nn.Sequential(*layers)


def foldable(recipe: TrainingRecipe) -> bool:
    """Whether the recipe's models can be folded into one network of grouped convolutions: residual
    networks without dropout (whose per-model masks the folded layout does not take)."""
    return recipe.model in ("resnet", "wrn") and not recipe.dropout


def folded_model(recipe: TrainingRecipe, example_shape: tuple[int, ...], n_classes: int, n_models: int) -> nn.Module | None:
    """The recipe's ``n_models`` models folded into one network of grouped convolutions (see
    :mod:`.resnets`), or None where the engine stacks models with vmap instead (see :func:`foldable`)."""
    if not foldable(recipe):
        return None
    import torch

    from .resnets import resnet, wide_resnet

    with torch.random.fork_rng(devices=[]):  # its own weights are never used: leave the global RNG alone
        if recipe.model == "resnet":
            return resnet(example_shape, n_classes, depth=recipe.depth or 8, width=recipe.width or 16, n_models=n_models)
        return wide_resnet(example_shape, n_classes, depth=recipe.depth or 16, k=recipe.width or 4, n_models=n_models)


@dataclass
class LayerRun:
    """What one leaf layer saw in a dry run: its first input's shape and the values it output (per
    example, summed over calls)."""

    input_shape: tuple[int, ...]
    outputs: int


def dry_run(module: nn.Module, example_shape: tuple[int, ...]) -> dict[str, LayerRun]:
    """Run ``module`` once on one zero example, in eval mode (a dry run must not move running
    statistics, nor fail BatchNorm on one example), and report every leaf layer by name."""
    import torch

    from ..data.querying import evaluating

    seen: dict[str, LayerRun] = {}

    def record(name: str) -> object:
        def hook(_: nn.Module, inputs: tuple[object, ...], output: object) -> None:  # returns None: keeps the output
            if not isinstance(output, torch.Tensor):
                return
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            run = seen.setdefault(name, LayerRun(tuple(first.shape[1:]) if first is not None else (), 0))
            run.outputs += output.numel()

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in module.named_modules() if not list(m.children())]
    try:
        with evaluating(module), torch.no_grad():
            module(torch.zeros((1, *example_shape)))
    finally:
        for h in hooks:
            h.remove()
    return seen
