"""The arithmetic the engine trains in: float32, or bf16 autocast where the hardware runs bf16 natively.

bf16 autocast runs matrix products and convolutions in bfloat16 (master weights, optimizer state,
losses, BatchNorm statistics and the models' stored weights stay float32), as
``torch.autocast(device, dtype=torch.bfloat16)`` does in a training loop:

- **CUDA**: always (tensor cores).
- **CPU**: for the built-in convolutional models (``cnn``, ``resnet``, ``wrn``) without a defense,
  on processors with AMX tiles (Intel Xeon from Sapphire Rapids on), where oneDNN's bf16
  convolutions ran a ResNet-8 step 1.9x and a small CNN's 1.4x faster than float32 (measured,
  2 cores, batch 128 / 64; 16 WRN-10-2s with dropout, an epoch: 23 s against 40 s). Elsewhere
  float32: without AMX bf16 convolutions are not faster; MLPs train by a hand-written float32
  backward whose matmuls are too small to gain; a factory's network is the user's own, trained in
  float32 unless the recipe asks for bf16 (models stacked with ``vmap`` would not gain anyway:
  torch does not autocast convolutions, nor linear layers with a bias, under ``vmap`` on a CPU,
  torch 2.13); and DP-SGD's per-example gradients (vmapped) ran 2.7x slower in bf16 (a digits
  CNN: 6.1 s against 2.3 s).

``TrainingRecipe(precision="float32" | "bf16")`` overrides the policy. What it resolves to is part
of every recipe model's cache key (a bf16 model is another model), fixed where the keys are made,
and a training run follows it wherever it runs. Float64 data are never
autocast (torch autocasts float32 only), so the engine's float64 equality tests hold either way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .recipe import TrainingRecipe

__all__ = ["autocast", "training_precision"]


def _cpu_has_amx() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent -> no
    return bool(probe()) if probe is not None else False


def training_precision(recipe: TrainingRecipe, device_type: str) -> str:
    """``"bf16"`` or ``"float32"``: what the recipe's ``precision`` (``"auto"``: the policy above)
    means on ``device_type`` (``"cpu"``, ``"cuda"``)."""
    if recipe.precision != "auto":
        return recipe.precision
    if device_type == "cuda":
        return "bf16"
    convolutional = recipe.model in ("cnn", "resnet", "wrn")  # on a CPU none of them runs under vmap
    if device_type == "cpu" and convolutional and recipe.defense is None and _cpu_has_amx():
        return "bf16"
    return "float32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context a training step runs in for a resolved ``precision``."""
    import torch

    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
