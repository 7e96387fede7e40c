"""A causal language model's training loss, per stacked model: what the engine's fine-tunes and a team's
own stacked loop (:func:`~pytest_privacy.per_model_lm_loss`) minimise."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["lm_loss"]


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each model's causal-LM loss ``[M]`` from logits ``[M, B, T, V]``: the mean negative log-likelihood
    of every real token after a text's first over its minibatch (Hugging Face's ``labels`` loss, padding
    ignored), in float32 at least."""
    import torch.nn.functional as F

    m, b, t, v = logits.shape
    if logits.dtype.itemsize < 4:
        logits = logits.float()
    # Position t predicts token t + 1: the targets shift left, the last position and padding ignored (no
    # slice of the logits, whose backward would fill and copy a tensor of their size).
    targets = F.pad(ids[..., 1:].masked_fill(~mask[..., 1:], -100), (0, 1), value=-100)
    nll = F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1), ignore_index=-100, reduction="none")
    real = (targets != -100).to(nll.dtype)
    return nll.view(m, b, t).sum((1, 2)) / real.sum((1, 2)).clamp_min(1)
