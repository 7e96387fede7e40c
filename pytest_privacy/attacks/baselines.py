"""Population baselines: threshold attacks on one model's outputs, no references needed.

Each takes logits (or log-probabilities) ``[N, C]`` or ``[N, A, C]`` and labels ``[N]`` and returns
scores ``[N]``, higher = more likely a member, averaged over queries. Float64, stable softmax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ._arrays import as_labels, as_nac
from .registry import Attack, ScoreFn, register_attack

if TYPE_CHECKING:
    from ..data import References

__all__ = ["BASELINES", "confidence_scores", "entropy_scores", "loss_scores", "modified_entropy_scores"]


def _log_probs(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = as_nac(logits, 0, "logits")
    y = as_labels(labels, z.shape[0], z.shape[-1])
    return special.log_softmax(z, axis=-1), y[:, None, None]


def loss_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Negative cross-entropy loss ``log p_y`` (Yeom et al. 2018): members have lower loss."""
    logp, y = _log_probs(logits, labels)
    return np.take_along_axis(logp, y, axis=-1)[..., 0].mean(axis=-1)


def confidence_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Largest predicted probability (Salem et al. 2019): members get confident predictions."""
    logp, _ = _log_probs(logits, labels)
    return np.exp(logp.max(axis=-1)).mean(axis=-1)


def entropy_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Negative prediction entropy: members get peaked predictions."""
    logp, _ = _log_probs(logits, labels)
    return (np.exp(logp) * logp).sum(axis=-1).mean(axis=-1)


def modified_entropy_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Negative modified entropy (Song & Mittal 2021), which also uses the true label.

    ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``, from the stable softmax;
    ``log(1 - p_i)`` is ``log1p(-p_i)`` with ``p_i`` capped below 1, so a wrong class predicted
    with certainty contributes at most ``36.7 p_i`` (its exact term would need a logsumexp per class).
    """
    logp, y = _log_probs(logits, labels)
    p = np.exp(logp)
    log1m = np.log1p(-np.minimum(p, 1 - 1e-16))  # log(1 - p_i) for the wrong classes
    is_y = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(is_y, y, True, axis=-1)
    logp_y = np.take_along_axis(logp, y, axis=-1)[..., 0]
    p_y = np.take_along_axis(p, y, axis=-1)[..., 0]
    wrong = np.where(is_y, 0.0, p * log1m).sum(axis=-1)
    mentr = -(1 - p_y) * logp_y - wrong
    return (-mentr).mean(axis=-1)


BASELINES = {
    "loss": loss_scores,
    "confidence": confidence_scores,
    "entropy": entropy_scores,
    "modified_entropy": modified_entropy_scores,
}


# ------------------------------------------------------------------------------ registration


def _baseline(name: str) -> ScoreFn:
    fn = BASELINES[name]

    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
        return fn(logits, labels), "population threshold"

    return score


for _name, _fn in BASELINES.items():
    register_attack(Attack(_name, "baseline", False, _fn.__doc__.splitlines()[0], _baseline(_name)))  # type: ignore[union-attr]
