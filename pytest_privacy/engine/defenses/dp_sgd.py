"""DP-SGD (Abadi et al. 2016), vectorised across stacked models: each example's gradient clipped
to ``clip``, summed, Gaussian noise ``N(0, (sigma * clip)^2)`` added, divided by the batch size.

``sigma`` comes from opacus's RDP accountant for ``(epsilon, delta)`` at each model's own sampling
rate (``pip install pytest-privacy[dp]``). Batches are shuffled, not Poisson-sampled, so the
guarantee is the usual approximation of DP-SGD practice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from ..seeds import torch_generators
from .base import DefenseContext, DefenseSettings, NoDefense, register_defense

if TYPE_CHECKING:
    import torch

    from ..loss import Batch

__all__ = ["DPSGD", "dp_noise_multiplier"]

_STREAM = 3  # this defense's noise: stream 3 of each model's seed


@register_defense
class DPSGD(DefenseSettings):
    """Settings of DP-SGD (``TrainingRecipe(defense=DPSGD(epsilon=...))``)."""

    kind: Literal["dp_sgd"] = "dp_sgd"
    epsilon: float = Field(8.0, gt=0, description="target epsilon (noise from opacus's RDP accountant)", strict=True)
    delta: float = Field(1e-5, gt=0, lt=1, description="target delta", strict=True)
    clip: float = Field(1.0, gt=0, description="per-example gradient norm bound", strict=True)
    # What opacus calls these (make_private_with_epsilon) where no spelling match finds them.
    field_synonyms: ClassVar[Mapping[str, str]] = {"target_delta": "delta", "max_grad_norm": "clip"}

    @property
    def accountant_epsilon(self) -> float:
        return self.epsilon

    def build(self, stack: DefenseContext) -> _DPSGDDefense:
        return _DPSGDDefense(self, stack)

    def extra_bytes_per_model(self, n_params: int, batch_size: int) -> int:
        return 4 * batch_size * n_params  # per-example gradients: batch_size copies of the parameters

    def describe(self) -> str:
        return f"DP-SGD: ({self.epsilon:g}, {self.delta:g})-DP by the RDP accountant, clip {self.clip:g}"


class _DPSGDDefense(NoDefense):
    def __init__(self, settings: DPSGD, stack: DefenseContext) -> None:
        self.strategy = _PerExampleClipped(settings, stack)

    def gradients(self, stack: DefenseContext) -> _PerExampleClipped:
        return self.strategy


class _PerExampleClipped:
    """The gradient strategy of DP-SGD: per-example gradients (``vmap`` over models and examples)."""

    def __init__(self, settings: DPSGD, stack: DefenseContext) -> None:
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call, grad, vmap

        recipe, base = stack.recipe, stack.base
        # Each model's own multiplier, from its own sampling rate: chunk-mates never change a model.
        rates = [min(1.0, recipe.batch_size / int(n)) for n in stack.keep.sum(axis=1)]
        sigma = {r: dp_noise_multiplier(settings.epsilon, settings.delta, r, recipe.epochs) for r in set(rates)}
        self.noise_scale = torch.tensor([sigma[r] * settings.clip for r in rates], dtype=torch.float32, device=stack.device)
        self.generators = torch_generators(stack.seeds, _STREAM)
        self.settings, self.stack = settings, stack

        def sample_loss(p: dict[str, torch.Tensor], x1: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(base, p, (x1.unsqueeze(0),)), t1.unsqueeze(0))

        self.per_sample = vmap(vmap(grad(sample_loss), in_dims=(None, 0, 0)))

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        import torch

        clip, stack = self.settings.clip, self.stack
        labels = batch.y if batch.targets is None else batch.targets  # per-example loss on the same targets
        g = self.per_sample({k: v.detach() for k, v in stack.params.items()}, batch.x, labels)  # [M, B, ...]
        norms = torch.sqrt(sum(v.flatten(2).pow(2).sum(-1) for v in g.values()))  # [M, B]
        factor = (clip / (norms + 1e-6)).clamp(max=1.0) * batch.weight
        out = {}
        for k, v in g.items():
            summed = torch.einsum("mb,mb...->m...", factor, v)
            # Noise from each model's own generator, only when it steps: chunking never changes a model.
            noise = torch.stack([
                torch.randn(v.shape[2:], generator=gen) if on else torch.zeros(v.shape[2:])
                for gen, on in zip(self.generators, batch.active)
            ]).to(v.device)
            scale = self.noise_scale.view(-1, *[1] * (noise.dim() - 1)).to(noise.dtype)
            out[k] = (summed + scale * noise) / stack.batch_size
        return out


def dp_noise_multiplier(epsilon: float, delta: float, sample_rate: float, epochs: int) -> float:
    """Noise multiplier that makes DP-SGD ``(epsilon, delta)``-DP by opacus's RDP accountant."""
    try:
        from opacus.accountants.utils import get_noise_multiplier
    except ImportError:
        raise ImportError(
            "defense 'dp_sgd' calibrates its noise with opacus: pip install 'pytest-privacy[dp]'"
        ) from None
    import warnings

    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser, still valid bound
        warnings.simplefilter("ignore", UserWarning)
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, epochs=epochs, accountant="rdp"
            )
        )
