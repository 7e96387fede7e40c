"""The trained augmentation attack (Choquette-Choo et al. 2021): a per-class logistic regression from
the augmentation bits of :mod:`.augmentation` to membership, fitted on reference models' IN/OUT
points only, so no target membership is ever used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .._arrays import as_keep, as_labels
from ..queries import LabelQuery
from ..registry import Attack, register_attack
from .augmentation import augmentation_bits, augmented_views
from .oracle import check_nonnegative_int

__all__ = ["BitAttack", "fit_bit_attack"]


@dataclass(frozen=True, eq=False)
class BitAttack:
    """Logistic regressions from augmentation bits to membership, one per class.

    ``classes[k]`` has weights ``coef[k]`` and intercept ``intercept[k]``; any other label (a class
    with too few IN or OUT reference pairs, listed in ``fallback_classes``, or one never seen) uses
    the pooled all-class model ``pooled_coef``, ``pooled_intercept``.
    """

    classes: np.ndarray  # int64 [K]
    coef: np.ndarray  # float64 [K, Q]
    intercept: np.ndarray  # float64 [K]
    pooled_coef: np.ndarray  # float64 [Q]
    pooled_intercept: float
    fallback_classes: tuple[int, ...]
    l2: float

    @property
    def n_bits(self) -> int:
        """Q, the number of augmentation bits per point the attack expects."""
        return int(self.pooled_coef.shape[0])

    def score(self, bits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Membership log-odds ``w_y . bits + b_y`` of the target's bits ``[N, Q]`` (float64 [N])."""
        b = _check_bits(bits, 2, "bits")
        y = as_labels(labels, b.shape[0], None)
        if b.shape[1] != self.n_bits:
            raise ValueError(
                f"bits have {b.shape[1]} columns but the attack was fitted on {self.n_bits}; "
                "query the target with the same d and r as the references."
            )
        w = np.broadcast_to(self.pooled_coef, b.shape).copy()
        c = np.full(b.shape[0], self.pooled_intercept)
        if self.classes.size:
            k = np.clip(np.searchsorted(self.classes, y), 0, self.classes.size - 1)
            own = self.classes[k] == y
            w[own] = self.coef[k[own]]
            c[own] = self.intercept[k[own]]
        return np.einsum("nq,nq->n", b, w) + c


def _check_bits(bits: np.ndarray, ndim: int, name: str) -> np.ndarray:
    """``bits`` (``ndim`` axes, boolean or 0/1) as float64 features."""
    b = np.asarray(bits)
    if b.ndim != ndim:
        want = "[M, N, Q]" if ndim == 3 else "[N, Q]"
        raise ValueError(f"{name} must be {want}, got shape {b.shape}.")
    if b.dtype != np.bool_ and not np.isin(b, (0, 1)).all():
        raise ValueError(f"{name} must be boolean (or 0/1): the output of augmentation_bits.")
    return b.astype(np.float64)


def _fit_logistic(features: np.ndarray, target: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Minimise ``mean log-loss + l2 / 2 * ||w||^2`` (intercept not penalised) with L-BFGS.

    Identical rows are merged with counts first: binary features have at most ``2^Q`` patterns.
    """
    rows, counts = np.unique(np.c_[features, target], axis=0, return_counts=True)
    xf, sign = rows[:, :-1], 2.0 * rows[:, -1] - 1.0
    weight = counts / counts.sum()
    q = xf.shape[1]

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:q], params[q]
        margin = sign * (xf @ w + b)
        value = weight @ np.logaddexp(0.0, -margin) + 0.5 * l2 * (w @ w)
        g = -weight * sign * special.expit(-margin)
        return float(value), np.r_[xf.T @ g + l2 * w, g.sum()]

    res = optimize.minimize(
        loss, np.zeros(q + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-10}
    )
    return res.x[:q].copy(), float(res.x[q])


def fit_bit_attack(
    ref_bits: np.ndarray,
    keep: np.ndarray,
    labels: np.ndarray,
    *,
    l2: float = 1e-2,
    min_examples: int = 10,
) -> BitAttack:
    """Train the augmentation attack on reference models only (no target membership is used).

    ``ref_bits bool [M, N, Q]`` are :func:`augmentation_bits` of M reference models on the N audit
    points, ``keep bool [M, N]`` says which reference trained on which point and ``labels [N]`` are the
    points' labels. Each (reference, point) pair is one example with features = its Q bits and target
    IN (keep) or OUT. One logistic regression per class minimises ``mean log-loss + l2 / 2 ||w||^2``;
    a class with fewer than ``min_examples`` IN or OUT pairs uses a pooled model fitted on all pairs.
    Score the target with ``attack.score(augmentation_bits(target, x, y), y)``.
    """
    bits = _check_bits(ref_bits, 3, "ref_bits")
    n_refs, n_points, q = bits.shape
    if keep is None:
        raise ValueError("keep must say which reference trained on which point, a bool array [M, N].")
    k = as_keep(keep, n_refs, n_points)
    y = as_labels(labels, n_points, None)
    if not (l2 > 0 and math.isfinite(l2)):
        raise ValueError(f"l2 must be positive (it keeps separable bits finite), got {l2!r}.")
    min_examples = max(1, check_nonnegative_int("min_examples", min_examples))

    features = bits.reshape(n_refs * n_points, q)
    target = k.reshape(-1).astype(np.float64)
    pair_labels = np.broadcast_to(y, (n_refs, n_points)).reshape(-1)
    n_in = int(target.sum())
    if n_in == 0 or n_in == target.size:
        raise ValueError(
            f"keep has {n_in} IN and {target.size - n_in} OUT pairs; the attack learns IN vs OUT, so "
            "train references on part of the points only (balanced_keep)."
        )
    pooled_w, pooled_b = _fit_logistic(features, target, l2)

    classes, coefs, intercepts, fallback = [], [], [], []
    for c in np.unique(y):
        sel = pair_labels == c
        c_in = int(target[sel].sum())
        if min(c_in, int(sel.sum()) - c_in) < min_examples:
            fallback.append(int(c))
            continue
        w, b = _fit_logistic(features[sel], target[sel], l2)
        classes.append(int(c))
        coefs.append(w)
        intercepts.append(b)
    return BitAttack(
        classes=np.asarray(classes, dtype=np.int64),
        coef=np.asarray(coefs, dtype=np.float64).reshape(len(classes), q),
        intercept=np.asarray(intercepts, dtype=np.float64),
        pooled_coef=pooled_w,
        pooled_intercept=pooled_b,
        fallback_classes=tuple(fallback),
        l2=float(l2),
    )




def _augmentation_trained(q: LabelQuery) -> tuple[np.ndarray, str]:
    refs = q.references
    if refs is None or refs.predict is None:
        raise ValueError(
            "label_only_augmentation_trained needs reference models it can query: use the "
            "membership_data fixture, or References.from_ensemble(...)."
        )
    d, r = int(q.options.get("d", 1)), int(q.options.get("r", 0))
    # The references' bits on the same copies: [M, N, Q]; no target membership is used to fit.
    views = augmented_views(q.x, d=d, r=r)  # the target is queried on the same copies
    ref_bits = np.stack([refs.predict(v).argmax(-1) == q.y for v in views], axis=2)
    attack = fit_bit_attack(ref_bits, refs.keep, q.y)
    bits = augmentation_bits(q.oracle, q.x, q.y, views=views)
    return attack.score(bits, q.y), f"logistic on {bits.shape[1]} bits, {refs.n_references} references"


register_attack(
    Attack(
        "label_only_augmentation_trained", "label_only", True,
        "per-class logistic model on augmentation bits, fit on the references' IN/OUT points",
        score_labels=_augmentation_trained,
    )
)
