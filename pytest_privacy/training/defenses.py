"""The MMD + mixup defense (Li, Li & Ribeiro, "Membership Inference Attacks and Defenses in
Classification Models", 2021), vectorised across stacked models.

Each epoch: a mixup pass over the training data (``lambda ~ Beta(a, a)``, one per model and
minibatch, partners drawn within the minibatch); then, for every model whose training accuracy
exceeds its validation accuracy by at least ``mmd_trigger``, a pass over the same minibatches
paired with class-matched batches from the validation pool, with loss
``mmd_weight * MMD^2(softmax f(B_train), stop_grad softmax f(B_val))`` under an RBF kernel (a sum
over ``mmd_bandwidths``). The validation pool is seen by the defended model: audits must never
count it as non-members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["class_matched", "dp_noise_multiplier", "mmd2", "mixup_partners"]


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
    quad = lambda p, k, q: torch.einsum("...i,...ij,...j->...", p, k, q)  # noqa: E731
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


def dp_noise_multiplier(epsilon: float, delta: float, sample_rate: float, epochs: int) -> float:
    """Noise multiplier that makes DP-SGD ``(epsilon, delta)``-DP by opacus's RDP accountant."""
    try:
        from opacus.accountants.utils import get_noise_multiplier
    except ImportError:
        raise ImportError(
            "defense='dp_sgd' calibrates its noise with opacus: pip install 'pytest-privacy[dp]'"
        ) from None
    import warnings

    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser, still valid bound
        warnings.simplefilter("ignore", UserWarning)
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, epochs=epochs, accountant="rdp"
            )
        )
