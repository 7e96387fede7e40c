"""The noise attack (Choquette-Choo et al. 2021): members stay correctly classified under more
Gaussian noise than non-members. The score is the fraction of noised copies still correct.
"""

from __future__ import annotations

import math

import numpy as np

from ..queries import LabelQuery, Predict, QueryCounter, as_counter
from ..registry import Attack, register_attack
from .oracle import CHUNK_ELEMENTS, check_nonnegative_int, check_xy

__all__ = ["noise_scores"]


def noise_scores(
    predict: Predict | QueryCounter,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sigma: float = 0.025,
    k: int = 100,
    seed: int = 0,
    data_range: float | None = None,
) -> np.ndarray:
    """Fraction of ``k`` Gaussian-noised copies of each point still classified as ``y`` (float64 [N]).

    The noise is i.i.d. per coordinate with standard deviation ``sigma * data_range``, where
    ``data_range`` defaults to ``x.max() - x.min()`` over the ``x`` passed (so pass it explicitly to
    score subsets of a data set identically). ``k * N`` queries; ``seed`` seeds a numpy Generator.
    """
    xa, ya = check_xy(x, y)
    k = check_nonnegative_int("k", k)
    if k == 0:
        raise ValueError("k must be >= 1 noised copies per point.")
    if xa.shape[0] == 0:
        return np.zeros(0)
    span = float(xa.max() - xa.min()) if data_range is None and xa.size else data_range
    scale = float(sigma) * float(span or 0.0)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(
            f"noise scale sigma * data_range = {sigma!r} * {span!r} must be positive; pass sigma > 0 "
            "and, for constant x, data_range=."
        )
    counter = as_counter(predict)
    rng = np.random.default_rng(seed)
    shape = xa.shape[1:]
    chunk = max(1, CHUNK_ELEMENTS // (k * max(1, xa[0].size)))
    out = np.empty(xa.shape[0], dtype=np.float64)
    for start in range(0, xa.shape[0], chunk):
        xb, yb = xa[start : start + chunk], ya[start : start + chunk]
        noise = rng.standard_normal((xb.shape[0], k, *shape), dtype=np.float32)
        noisy = (xb[:, None] + np.float32(scale) * noise).reshape(-1, *shape)
        labels = counter(noisy).reshape(xb.shape[0], k)
        out[start : start + chunk] = (labels == yb[:, None]).mean(axis=1)
    return out


def _noise(q: LabelQuery) -> tuple[np.ndarray, str]:
    sigma, k = float(q.options.get("sigma", 0.025)), int(q.options.get("k", 100))
    return noise_scores(q.oracle, q.x, q.y, sigma=sigma, k=k, seed=q.seed), f"sigma={sigma:g} of range, k={k}"


register_attack(
    Attack(
        "label_only_noise", "label_only", False, "fraction of Gaussian-noised copies still correct",
        score_labels=_noise,
    )
)
