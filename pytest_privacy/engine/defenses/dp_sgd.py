"""DP-SGD (Abadi et al. 2016), vectorised across stacked models: each example's gradient clipped
to ``clip``, summed, Gaussian noise ``N(0, (sigma * clip)^2)`` added, divided by the batch size.

``sigma`` comes from opacus's RDP accountant for ``(epsilon, delta)`` at each model's own sampling
rate (``pip install pytest-privacy[dp]``). Batches are shuffled, not Poisson-sampled, so the
guarantee is the usual approximation of DP-SGD practice.

**White-box canaries** (``canaries=k``, set by ``dp_canary_run(kind="gradient")``): ``k`` Dirac gradient
canaries per model, each on one of the ``k`` coordinates of the parameters the data's clipped gradients
move least at the start (a probe of 256 of the model's own points; on random coordinates the data's
gradients drowned the canaries: a run with its noise forgotten passed a claim of eps = 2), each included
with probability 1/2. An included canary joins each step's sum with the model's sampling rate (Poisson
sampling: the mechanism the accountant bounds) as one more example whose clipped gradient is ``clip``
times that coordinate's unit vector; each canary's score is the privatized sum (clipped gradients plus
noise, before the division by the batch size) at its coordinate, added up over every step: the white-box
score of the one-run audits (Steinke, Nasr & Jagielski 2023), where an included canary stands about
``epochs * clip`` above an absent one. The score never reads at which steps a canary joined: an auditor
who knew them would test the mechanism without its subsampling, which the accountant's epsilon counts on
(measured: an honest eps = 2 run then "proved" eps >= 2.3-3.0).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..seeds import child_seed, torch_generators
from .base import DefenseContext, DefenseSettings, NoDefense, register_defense

if TYPE_CHECKING:
    import torch

    from ..loss import Batch

__all__ = ["DPSGD", "dp_noise_multiplier"]

_STREAM = 3  # this defense's noise: stream 3 of each model's seed
_CANARY_STREAM = 6  # its white-box canaries' coordinates, inclusions and steps
_PROBE = 256  # training points per model that say which coordinates the data moves least


@register_defense
class DPSGD(DefenseSettings):
    """Settings of DP-SGD (``TrainingRecipe(defense=DPSGD(epsilon=...))``)."""

    kind: Literal["dp_sgd"] = "dp_sgd"
    epsilon: float = Field(8.0, gt=0, description="target epsilon (noise from opacus's RDP accountant)", strict=True)
    delta: float = Field(1e-5, gt=0, lt=1, description="target delta", strict=True)
    clip: float = Field(1.0, gt=0, description="per-example gradient norm bound", strict=True)
    canaries: int = Field(
        0, ge=0, strict=True,
        description="white-box Dirac gradient canaries for a one-run audit (dp_canary_run(kind='gradient') sets it)",
    )
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
        planted = f", {self.canaries} gradient canaries" if self.canaries else ""
        return f"DP-SGD: ({self.epsilon:g}, {self.delta:g})-DP by the RDP accountant, clip {self.clip:g}{planted}"


class _DPSGDDefense(NoDefense):
    def __init__(self, settings: DPSGD, stack: DefenseContext) -> None:
        self.strategy = _PerExampleClipped(settings, stack)

    def gradients(self, stack: DefenseContext) -> _PerExampleClipped:
        return self.strategy

    def extras(self) -> dict[str, np.ndarray]:
        """The white-box canaries' scores and inclusions ``[M, k]`` (none without canaries)."""
        c = self.strategy.canaries
        return {} if c is None else {"dp_canary_scores": c.scores.copy(), "dp_canary_included": c.included.copy()}


class _GradientCanaries:
    """Each model's Dirac gradient canaries (see the module docstring): coordinates and inclusions from the
    model's own seed (stream ``_CANARY_STREAM``), and at every step each included canary joins the sum with
    the model's sampling rate (Poisson sampling, the mechanism the accountant bounds), drawn from the same
    stream: the score never reads when it joined."""

    def __init__(self, k: int, stack: DefenseContext, activity: Any, rates: list[float]) -> None:
        sizes = [int(v[0].numel()) for v in stack.params.values()]
        total = sum(sizes)
        if k > total:
            raise ValueError(f"DPSGD(canaries={k}) is more than the model's {total} parameters: one coordinate each.")
        self.offsets = np.cumsum([0, *sizes])
        self.names = list(stack.params)
        self.rngs, self.coordinates = [], []
        self.included = np.zeros((len(stack.seeds), k), dtype=bool)
        quiet = activity(_PROBE)  # [M, P]: how much the data's clipped gradients move each coordinate at the start
        for m, seed in enumerate(stack.seeds):
            rng = np.random.default_rng(child_seed(seed, _CANARY_STREAM))
            # The k coordinates the data moves least (ties in random order): there the data's own gradients,
            # which add to every score whatever the canaries, drown a canary least. Chosen before training,
            # from the data alone: the inclusions never enter the choice.
            shuffled = rng.permutation(total)
            self.coordinates.append(shuffled[np.argsort(quiet[m][shuffled], kind="stable")[:k]])
            self.included[m] = rng.random(k) < 0.5
            self.rngs.append(rng)
        self.rates = rates  # each model's sampling rate: the one its noise is calibrated for
        # Where each model's canaries sit, found once (every step plants and scores at the same places):
        # per parameter, (name, positions in the canary list, flat offsets in the parameter).
        self.slots = [self._where(c) for c in self.coordinates]
        self.scores = np.zeros((len(stack.seeds), k), dtype=np.float64)

    def joining(self, m: int) -> np.ndarray:
        """Which of model ``m``'s canaries join its sum this step: included, and drawn with the sampling rate."""
        return (self.rngs[m].random(self.included.shape[1]) < self.rates[m]) & self.included[m]

    def _where(self, coordinates: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(parameter name, positions in the canary list, flat offsets in that parameter)`` per parameter."""
        out = []
        block = np.searchsorted(self.offsets, coordinates, side="right") - 1
        for b in np.unique(block):
            hit = np.flatnonzero(block == b)
            out.append((self.names[b], hit, coordinates[hit] - self.offsets[b]))
        return out


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
        self.canaries = _GradientCanaries(settings.canaries, stack, self._activity, rates) if settings.canaries else None

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        import torch

        clip, stack = self.settings.clip, self.stack
        labels = batch.y if batch.targets is None else batch.targets  # per-example loss on the same targets
        g = self.per_sample({k: v.detach() for k, v in stack.params.items()}, batch.x, labels)  # [M, B, ...]
        norms = torch.sqrt(sum(v.flatten(2).pow(2).sum(-1) for v in g.values()))  # [M, B]
        factor = (clip / (norms + 1e-6)).clamp(max=1.0) * batch.weight
        summed = {k: torch.einsum("mb,mb...->m...", factor, v) for k, v in g.items()}
        self._plant(summed, batch.active)
        out = {}
        for k, v in g.items():
            # Noise from each model's own generator, only when it steps: chunking never changes a model.
            noise = torch.stack([
                torch.randn(v.shape[2:], generator=gen) if on else torch.zeros(v.shape[2:])
                for gen, on in zip(self.generators, batch.active)
            ]).to(v.device)
            scale = self.noise_scale.view(-1, *[1] * (noise.dim() - 1)).to(noise.dtype)
            out[k] = summed[k] + scale * noise
        self._score(out, batch.active)
        return {k: v / stack.batch_size for k, v in out.items()}

    def _activity(self, probe: int) -> np.ndarray:
        """``[M, P]``: each coordinate's total absolute clipped gradient over up to ``probe`` of each model's
        own training points, at the models' starting weights."""
        import torch

        stack = self.stack
        rows = []
        for m, seed in enumerate(stack.seeds):
            members = np.flatnonzero(stack.keep[m])
            rng = np.random.default_rng(child_seed(child_seed(seed, _CANARY_STREAM), 1))  # the probe's own draws
            rows.append(rng.choice(members, size=min(probe, len(members)), replace=False))
        width = min(len(r) for r in rows)
        index = torch.from_numpy(np.stack([r[:width] for r in rows])).to(stack.device)
        x, y = stack.data.take(index), stack.data.labels_at(index)
        with torch.no_grad():
            g = self.per_sample({k: v.detach() for k, v in stack.params.items()}, x, y)
            norms = torch.sqrt(sum(v.flatten(2).pow(2).sum(-1) for v in g.values()))
            factor = (self.settings.clip / (norms + 1e-6)).clamp(max=1.0)
            moved = torch.cat([torch.einsum("mb,mbp->mp", factor, v.flatten(2).abs()) for v in g.values()], dim=1)
        return moved.double().cpu().numpy()

    def _plant(self, summed: dict[str, torch.Tensor], active: tuple[bool, ...]) -> None:
        """Add each canary joining this step to its model's clipped sum (``clip`` at its coordinate)."""
        c = self.canaries
        for m, flat, slots in self._canary_slots(summed, active):
            joins = c.joining(m)
            for name, positions, offsets in slots:
                flat[name][m, offsets[joins[positions]]] += self.settings.clip

    def _score(self, private: dict[str, torch.Tensor], active: tuple[bool, ...]) -> None:
        """Add the privatized sum at every canary's coordinate to its score, at every step the model takes."""
        c = self.canaries
        for m, flat, slots in self._canary_slots(private, active):
            for name, positions, offsets in slots:
                c.scores[m, positions] += flat[name][m, offsets].double().cpu().numpy()

    def _canary_slots(self, tensors: dict[str, torch.Tensor], active: tuple[bool, ...]) -> Iterator[tuple[int, dict[str, torch.Tensor], Any]]:
        """``(m, tensors flattened per model, model m's canary slots)`` for each model taking this step;
        nothing without canaries. Planting and scoring read the same slots."""
        if self.canaries is None:
            return
        flat = {k: v.view(v.shape[0], -1) for k, v in tensors.items()}
        for m in (m for m, on in enumerate(active) if on):
            yield m, flat, self.canaries.slots[m]


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
