"""Model by model: M stacked models run as M ordinary networks, one after another, channels-last.

How 2-D convolutional networks with state (BatchNorm, dropout) train on a CPU (``stack.conv_layout``):
oneDNN's channels-last convolutions run 1.9-2.7x faster than the grouped ones ``vmap`` or a folded
network lowers them to at a ResNet's channel counts (16-64, 3x3, batch 128), and faster than the
NCHW convolutions a plain loop runs. Each model's parameters, running statistics and dropout masks
are views of the stacked tensors, so BatchNorm's in-place updates land in them.

:meth:`ModelByModel.gradients` also differentiates model by model: each model's forward and backward
run before the next model's forward, so only one model's activations are alive at a time (as in a
plain loop). One autograd graph through all M networks kept all their activations alive, ~M times
the memory, freshly allocated each step: 16 ResNet-8s stepped 1.3-1.5x slower so (measured, CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .loss import Batch, batch_loss

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ModelByModel"]


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    import torch

    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


class ModelByModel:
    """``(params, x [M, B, ...]) -> [M, B, C]``: each model's own network on its own batch, in turn.

    ``buffers()`` gives the stacked running statistics and ``masks()`` this step's stacked dropout
    masks (read at each call). Running model by model would let a random op in the forward
    (``F.dropout``, ``RReLU``) draw from torch's global generator, so no model would equal itself
    trained alone: the first call in each mode (training, eval) also runs the network under ``vmap``
    on two examples (copies of the statistics, no masks, no gradient), whose
    ``randomness="error"`` refuses such ops.
    """

    def __init__(
        self,
        base: nn.Module,
        n_models: int,
        buffers: Callable[[], dict[str, torch.Tensor]],
        masks: Callable[[], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.base, self.n_models = base, n_models
        self.buffers, self.masks = buffers, masks
        self._checked: set[bool] = set()

    def _check_randomness(self, params: dict[str, torch.Tensor], xb: torch.Tensor) -> None:
        import torch
        from torch.func import functional_call, vmap

        if self.base.training in self._checked:
            return
        stats = {k: v.clone() for k, v in self.buffers().items()}
        with torch.no_grad():
            vmap(lambda p, b, x: functional_call(self.base, (p, b), (x,)))(
                {k: v.detach() for k, v in params.items()}, stats, xb[:, :2]
            )
        self._checked.add(self.base.training)

    def _state(self) -> dict[str, torch.Tensor]:
        """This step's stacked running statistics and dropout masks (read once per call)."""
        return {**self.buffers(), **(self.masks() if self.masks else {})}

    def _network(
        self, m: int, own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """Model ``m`` (its parameters ``own``, its slice of ``state``) on its inputs ``x [B, ...]``:
        logits ``[B, C]``."""
        from torch.func import functional_call

        tensors = {k: _channels_last(v) for k, v in own.items()}
        tensors.update({k: v[m] for k, v in state.items()})
        return functional_call(self.base, tensors, (_channels_last(x),))

    def __call__(self, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        import torch

        self._check_randomness(params, xb)
        state = self._state()
        return torch.stack(
            [self._network(m, {k: v[m] for k, v in params.items()}, state, xb[m]) for m in range(self.n_models)]
        )

    def gradients(self, params: dict[str, torch.Tensor]) -> Callable[[Batch], dict[str, torch.Tensor]]:
        """The gradient strategy of this layout (``gradients.GradientStrategy``): each active model's
        forward and backward of :func:`~.loss.batch_loss` in turn, its gradient written into its
        slice of the stacked ones (a waiting model's stays zero, as its zero-weight loss gives)."""
        import torch

        def gradients(batch: Batch) -> dict[str, torch.Tensor]:
            self._check_randomness(params, batch.x)
            grads = {k: torch.zeros_like(v) for k, v in params.items()}
            state = self._state()
            for m in (m for m, on in enumerate(batch.active) if on):
                # model m's parameters as leaves of their own (views of the stacked storage), so the
                # backward stops there instead of building [M, ...] gradients of a select
                own = {k: v.detach()[m].requires_grad_() for k, v in params.items()}
                loss = batch_loss(self._network(m, own, state, batch.x[m]).float()[None], batch.of_model(m))
                for k, g in zip(own, torch.autograd.grad(loss.sum(), list(own.values()))):
                    grads[k][m] = g
            return grads

        return gradients
