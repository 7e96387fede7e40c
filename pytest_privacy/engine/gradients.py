"""Gradient strategies: how the stacked trainer turns a :class:`~.loss.Batch` into every model's
gradient of :func:`~.loss.batch_loss`. The trainer chooses one per stack, once
(:func:`choose_gradients`); a defense may bring its own (DP-SGD's per-example clipping).

- :class:`Autograd`: a vmapped (or stacked-conv) forward and one ordinary backward through the
  sum of the M models' losses (each model's parameters reach only its own loss).
- :meth:`ModelByModel.gradients <.model_by_model.ModelByModel.gradients>`: each model's forward and
  backward in turn, for networks that run model by model (convolutional networks with state, CPU).
- :class:`HandWrittenMLP`: the recipe's plain MLP on the CPU, differentiated by hand in a dozen
  batched matmuls (for small models autograd's per-op bookkeeping costs more than the arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .loss import Batch, batch_loss
from .model_by_model import ModelByModel

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Autograd", "GradientStrategy", "HandWrittenMLP", "choose_gradients", "mlp_layers"]

Forward = Callable[["dict[str, torch.Tensor]", "torch.Tensor"], "torch.Tensor"]  # (params, x [M, B, ...]) -> [M, B, C]


class GradientStrategy(Protocol):
    """Every model's gradient of its loss on ``batch``, keyed like the stacked parameters."""

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]: ...


class Autograd:
    """Gradients by autograd through the stacked forward: any architecture, any device."""

    def __init__(self, params: dict[str, torch.Tensor], forward: Forward) -> None:
        self.params = params
        self.forward = forward

    def of(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every model's gradient of ``loss [M]`` (model ``m``'s parameters reach only ``loss[m]``):
        one backward through the sum, ~1.5x faster than ``vmap(grad(...))``."""
        import torch

        return dict(zip(self.params, torch.autograd.grad(loss.sum(), list(self.params.values()))))

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.of(batch_loss(self.forward(self.params, batch.x).float(), batch))


class HandWrittenMLP:
    """The exact gradient of :func:`~.loss.batch_loss` for stacked ``Linear``/``ReLU`` MLPs.

    Profiled: 1.1-1.3 ms of a 16-model step's backward is autograd's bookkeeping, and ``bmm`` here
    returns weight gradients in the parameters' own layout, so the fused optimizer needs no copies.
    """

    def __init__(self, params: dict[str, torch.Tensor], layers: list[tuple[str, str]]) -> None:
        self.params = params
        self.layers = layers

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        import torch

        params, layers = self.params, self.layers
        with torch.no_grad():
            h = batch.x.flatten(2)
            inputs = []
            for w, b in layers[:-1]:
                inputs.append(h)
                h = torch.baddbmm(params[b].unsqueeze(1), h, params[w].transpose(1, 2)).relu_()
            inputs.append(h)
            w, b = layers[-1]
            # The logits class-major, [M, C, B], and ``d`` a [M, B, C] view of them: a CPU softmax
            # over a short last axis (10 classes) runs element by element, over the middle axis
            # vectorised along B (16 x 64 x 10: 6 us against 86 us, ~5% of the step; measured).
            logits_t = torch.baddbmm(params[b].unsqueeze(2), params[w], h.transpose(1, 2))
            # d(batch_loss)/d(logits) = (softmax - targets) * w / sum(w), per model
            d = torch.softmax(logits_t, dim=1).transpose(1, 2)
            if batch.targets is None:
                minus_one = torch.full(batch.y.shape + (1,), -1.0, dtype=d.dtype, device=d.device)
                d.scatter_add_(-1, batch.y.unsqueeze(-1), minus_one)
            else:
                d.sub_(batch.targets.to(d.dtype))
            wb = batch.weight
            d.mul_((wb / wb.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(-1))
            grads = {}
            for j in reversed(range(len(layers))):
                w, b = layers[j]
                grads[w] = torch.bmm(d.transpose(1, 2), inputs[j])
                grads[b] = d.sum(1)
                if j > 0:  # through the layer, then through the ReLU whose output was inputs[j]
                    # (ReLU's own backward kernel: one pass, no boolean mask to build and cast)
                    d = torch.ops.aten.threshold_backward(torch.bmm(d, params[w]), inputs[j], 0)
            return grads


def mlp_layers(base: nn.Module) -> list[tuple[str, str]] | None:
    """``(weight, bias)`` parameter names of ``Sequential([Flatten,] Linear, ReLU, ..., Linear)``
    (the recipe's MLP), or None for any other architecture."""
    from torch import nn

    if type(base) is not nn.Sequential:
        return None
    children = list(base.named_children())
    if children and type(children[0][1]) is nn.Flatten and (children[0][1].start_dim, children[0][1].end_dim) == (1, -1):
        children = children[1:]
    if len(children) % 2 == 0:
        return None
    layers = []
    for i, (name, module) in enumerate(children):
        if i % 2 == 0 and type(module) is nn.Linear and module.bias is not None:
            layers.append((f"{name}.weight", f"{name}.bias"))
        elif i % 2 == 1 and type(module) is nn.ReLU:
            continue
        else:
            return None
    return layers


def choose_gradients(
    params: dict[str, torch.Tensor], base: nn.Module, forward: Forward, device: torch.device, *,
    precision: str = "float32",
) -> GradientStrategy:
    """The fastest exact strategy for this architecture, device and precision: model by model for a
    forward that runs so (:class:`~.model_by_model.ModelByModel`: one model's activations alive at a
    time), the hand-written MLP backward on the CPU in float32 (on CUDA, bf16 autocast and cuBLAS
    make autograd as fast; it knows no autocast), else autograd."""
    if isinstance(forward, ModelByModel):
        return forward.gradients(params)
    layers = mlp_layers(base) if device.type == "cpu" and precision == "float32" else None
    return HandWrittenMLP(params, layers) if layers is not None else Autograd(params, forward)
