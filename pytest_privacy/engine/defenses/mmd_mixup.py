"""The MMD + mixup defense (Li, Li & Ribeiro, "Membership Inference Attacks and Defenses in
Classification Models", 2021), vectorised across stacked models.

Each epoch: a mixup pass over the training data (``lambda ~ Beta(a, a)``, one per model and
minibatch, partners drawn within the minibatch); then, for every model whose training accuracy
exceeds its validation accuracy by at least ``trigger``, a pass over the same minibatches paired
with class-matched batches from the validation pool, with loss
``weight * MMD^2(softmax f(B_train), stop_grad softmax f(B_val))`` under an RBF kernel (a sum over
``bandwidths``). The validation pool is seen by the defended model: audits never count it as
non-members (the split holds out ``validation_fraction`` of the data for it).

Measured on digits (512-512 MLP, 60 epochs): the default kernel widths (0.1, 0.5, 1) cut LiRA's
AUC from ~0.60 to 0.52 at a test accuracy of 0.80 (undefended 0.97); ``bandwidths=(1.0,)`` keeps
0.97 but leaves AUC at 0.58.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from .base import (
    DefenseContext,
    DefenseSettings,
    EpochLayout,
    NoDefense,
    register_defense,
)

if TYPE_CHECKING:
    import torch

    from ..loss import Batch

__all__ = ["MMDMixup", "class_matched", "mixup_partners", "mmd2"]

_STREAM = 2  # this defense's draws: stream 2 of each model's seed


@register_defense
class MMDMixup(DefenseSettings):
    """Settings of the MMD + mixup defense (``TrainingRecipe(defense=MMDMixup(...))``)."""

    kind: Literal["mmd_mixup"] = "mmd_mixup"
    mixup_alpha: float = Field(1.0, gt=0, description="mixup's Beta(a, a)", strict=True)
    weight: float = Field(3.0, ge=0, description="weight of the MMD^2 loss", strict=True)
    bandwidths: tuple[float, ...] = Field((0.1, 0.5, 1.0), min_length=1, description="RBF kernel widths, summed")
    trigger: float = Field(0.03, ge=0, description="train - validation accuracy gap that triggers MMD", strict=True)
    validation_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of the data kept as MMD validation pool", strict=True
    )

    @property
    def validation_share(self) -> float:
        return self.validation_fraction

    def build(self, stack: DefenseContext) -> _MMDMixupDefense:
        if stack.validation is None or len(stack.validation) == 0:
            raise ValueError("defense 'mmd_mixup' needs a validation pool: pass validation=indices of held-out points.")
        return _MMDMixupDefense(self, stack.rngs(_STREAM), np.asarray(stack.validation, dtype=np.int64), stack.n_classes)

    def describe(self) -> str:
        return (
            f"MMD+mixup: weight {self.weight:g}, RBF widths {list(self.bandwidths)}, trigger {self.trigger:.0%} gap, "
            f"mixup Beta({self.mixup_alpha:g}), validation pool {self.validation_fraction:.0%} of the points"
        )


class _MMDMixupDefense(NoDefense):
    def __init__(self, settings: MMDMixup, rngs: list[np.random.Generator], pool: np.ndarray, n_classes: int) -> None:
        self.settings = settings
        self.rngs = rngs
        self.pool = pool
        self.n_classes = n_classes

    def batch(self, batch: Batch) -> Batch:
        """The mixup pass: each model mixes its own minibatch with a permutation of it."""
        import torch

        xb = batch.x
        bsz = xb.shape[1]
        weight = batch.weight.cpu().numpy()
        # Draws only for models that step: a waiting model's generator stays where it would be if
        # it trained alone (its inert slot mixes nothing).
        lam, partner = zip(*(
            mixup_partners(r, int(w.sum()), bsz, self.settings.mixup_alpha) if on else (1.0, np.arange(bsz))
            for r, w, on in zip(self.rngs, weight, batch.active)
        ))
        lam_t = torch.tensor(lam, dtype=xb.dtype, device=xb.device)
        other = torch.from_numpy(np.stack(partner)).to(xb.device)
        view = (-1,) + (1,) * (xb.ndim - 1)
        x_mix = lam_t.view(view) * xb + (1 - lam_t.view(view)) * torch.gather(
            xb, 1, other.view(*other.shape, *([1] * (xb.ndim - 2))).expand_as(xb)
        )
        own = batch.target_distribution(self.n_classes)
        partners = torch.gather(own, 1, other.unsqueeze(-1).expand_as(own))
        lam_f = lam_t.float().view(-1, 1, 1)
        return batch.with_inputs(x_mix, lam_f * own + (1 - lam_f) * partners)

    def end_epoch(self, stack: DefenseContext, epoch: EpochLayout) -> None:
        """The MMD pass, for models whose train accuracy leads validation by the trigger."""
        import torch

        s, pool, labels = self.settings, self.pool, stack.data.labels_np
        with torch.no_grad():
            predicted = torch.cat([stack.predict_all(xb).argmax(-1) for xb in stack.data.chunks(1024)], dim=1)
        correct = predicted.cpu().numpy() == labels[None, :]
        train_acc = np.array([correct[m, stack.keep[m]].mean() for m in range(stack.n_models)])
        val_acc = correct[:, pool].mean(axis=1)
        triggered = train_acc - val_acc >= s.trigger
        if not triggered.any():
            return
        bsz, pool_labels = stack.batch_size, labels[pool]
        for step in range(max(stack.steps)):
            cols = slice(step * bsz, (step + 1) * bsz)
            active = [bool(t) and step < n for t, n in zip(triggered, stack.steps)]
            if not any(active):
                continue
            ib = epoch.order[:, cols]
            matched = np.stack([  # draws only for models that step (see the mixup pass)
                class_matched(r, labels[row], pool, pool_labels) if on else np.full(row.shape, pool[0])
                for r, row, on in zip(self.rngs, ib, active)
            ])
            ib_t, wb = epoch.order_t[:, cols], epoch.weight_t[:, cols]
            jb_t = torch.from_numpy(matched).to(ib_t.device)
            with stack.amp():
                p_train = torch.softmax(stack.forward(stack.params, stack.data.take(ib_t)).float(), -1)
                p_val = torch.softmax(stack.forward(stack.params, stack.data.take(jb_t)).float(), -1).detach()
                mask = torch.tensor(active, dtype=p_train.dtype, device=p_train.device)
                loss = s.weight * mmd2(p_train, p_val, s.bandwidths, wb, wb) * mask
                grads = stack.autograd.of(loss)
            stack.step(grads, active)


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...], wx: torch.Tensor | None = None,
         wy: torch.Tensor | None = None) -> torch.Tensor:
    """Biased (V-statistic) squared MMD between samples ``x [..., B, D]`` and ``y [..., B', D]``.

    ``k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))`` over ``bandwidths``. Optional weights ``wx [..., B]``
    and ``wy [..., B']`` (0 for padding) make it the MMD between the weighted empirical measures.
    Exactly 0 for identical samples; batched over leading axes.
    """
    import torch

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)
        return sum(torch.exp(-d2 / (2.0 * s * s)) for s in bandwidths)

    def norm(w: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
        if w is None:
            return torch.full(like.shape[:-1], 1.0 / n, dtype=like.dtype, device=like.device)
        return w / w.sum(-1, keepdim=True).clamp_min(1e-12)

    px, py = norm(wx, x.shape[-2], x), norm(wy, y.shape[-2], y)
    quad = lambda p, k, q: torch.einsum("...i,...ij,...j->...", p, k, q)
    return quad(px, kernel(x, x), px) + quad(py, kernel(y, y), py) - 2 * quad(px, kernel(x, y), py)


def mixup_partners(rng: np.random.Generator, n_valid: int, width: int, alpha: float) -> tuple[float, np.ndarray]:
    """A mixup coefficient and, for each of ``width`` slots, the partner slot (within the first
    ``n_valid``, the real examples; padding slots partner themselves)."""
    lam = float(rng.beta(alpha, alpha))
    partner = np.arange(width)
    partner[:n_valid] = rng.permutation(n_valid)
    return lam, partner


def class_matched(rng: np.random.Generator, labels: np.ndarray, pool: np.ndarray, pool_labels: np.ndarray) -> np.ndarray:
    """For each label, a random pool index of the same class (any pool point if the class is absent)."""
    out = np.empty(labels.shape, dtype=np.int64)
    for c in np.unique(labels):
        where = labels == c
        same = pool[pool_labels == c]
        out[where] = rng.choice(same if same.size else pool, size=int(where.sum()))
    return out
