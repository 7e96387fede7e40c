"""Label-only membership inference (Choquette-Choo et al., "Label-Only Membership Inference
Attacks", 2021): the model answers every query with a label and nothing else.

Members are not only classified correctly more often than non-members (the *gap* baseline), they
also stay correct further away: under translations and rotations, under Gaussian noise, and up to
a larger distance to the decision boundary. Each attack here turns one of those into a score per
audit point, higher = more likely a member.

The model is a labels oracle ``predict(x [B, *example_shape] float32) -> labels [B] int``. Attacks
accept a raw callable or a :class:`QueryCounter` (they wrap a raw one), so callers can read how many
examples were sent. Inputs follow the repo's layout: ``[N, L]`` 1-D signals, ``[N, H, W]`` grayscale
images, ``[N, C, H, W]`` channels-first images. Numpy in, numpy out; torch is imported only by the
white-box boundary attack, when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage, optimize, special

from ..data import check_inputs, check_labels
from ..queries import shift, spatial_axes
from ..querying import CachedTarget, evaluating, is_module
from ._arrays import as_keep, as_labels
from .registry import Attack, LabelQuery, register_attack

if TYPE_CHECKING:
    import torch

__all__ = [
    "BitAttack",
    "QueryCounter",
    "augmentation_bits",
    "augmented_views",
    "augmentation_scores",
    "boundary_scores_blackbox",
    "boundary_scores_whitebox",
    "fit_bit_attack",
    "gap_scores",
    "n_augmentations",
    "noise_scores",
]

Predict = Callable[[np.ndarray], Any]
# Elements per internal chunk of noised or perturbed copies (float32: 16 MiB), bounds memory.
_CHUNK_ELEMENTS = 1 << 22
# HopSkipJump's geometric step search gives up after this many halvings (a factor of ~1e-9).
_MAX_HALVINGS = 30


# --------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------


class QueryCounter:
    """A labels oracle that batches, validates and counts the queries sent to ``predict``.

    ``predict`` maps a float32 batch ``[B, *example_shape]`` to integer labels ``[B]``. If it returns
    a 2-D array ``[B, C]`` (``C >= 2`` scores, logits or probabilities) the label is its argmax over
    classes, so a scoring model can be audited as if it released labels only. Torch tensors are
    converted with ``.detach().cpu().numpy()``.

    ``queries`` is the number of examples sent so far (not the number of calls). Every attack in this
    module accepts a ``QueryCounter`` in place of a raw callable and adds its queries to it.
    """

    def __init__(self, predict: Predict, *, batch_size: int = 4096) -> None:
        if isinstance(predict, QueryCounter):
            raise TypeError("predict is already a QueryCounter; pass it to the attack directly.")
        if not callable(predict):
            raise TypeError(f"predict must be a callable x -> labels, got {type(predict).__name__}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.predict = predict
        self.batch_size = int(batch_size)
        self.queries = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Labels ``int64 [B]`` for the batch ``x [B, *example_shape]``, queried in chunks of at most
        ``batch_size`` examples."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim < 2:
            raise ValueError(
                f"a query must be a batch [B, *example_shape], got shape {x.shape}; "
                "add a leading batch axis (x[None]) for a single example."
            )
        out = np.empty(x.shape[0], dtype=np.int64)
        for start in range(0, x.shape[0], self.batch_size):
            batch = np.ascontiguousarray(x[start : start + self.batch_size])
            raw = self.predict(batch)
            self.queries += batch.shape[0]
            out[start : start + batch.shape[0]] = _labels(raw, batch.shape[0])
        return out

    def __repr__(self) -> str:
        return f"QueryCounter({self.predict!r}, batch_size={self.batch_size}, queries={self.queries})"


def _labels(raw: Any, n: int) -> np.ndarray:
    """Validate one batch of oracle output and return ``int64 [n]`` labels."""
    if hasattr(raw, "detach"):  # a torch tensor, without importing torch
        raw = raw.detach().cpu().numpy()
    out = np.asarray(raw)
    if out.dtype == np.bool_:
        out = out.astype(np.int64)
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise ValueError(f"predict returned dtype {out.dtype}; it must return integer class labels.")
    if np.issubdtype(out.dtype, np.floating) and np.isnan(out).any():
        raise ValueError(
            "predict returned NaN; the model produced NaN outputs on these inputs: fix the model "
            "(or its input scaling) before auditing it."
        )
    if out.ndim == 2 and out.shape[0] == n and out.shape[1] >= 2:
        out = out.argmax(axis=1)
    if out.shape != (n,):
        raise ValueError(
            f"predict returned shape {out.shape} for a batch of {n} examples; it must return one "
            f"integer label per example, shape ({n},), or scores [{n}, C] with C >= 2 (their argmax "
            "is taken)."
        )
    if np.issubdtype(out.dtype, np.floating):
        if not np.isfinite(out).all() or (out != np.round(out)).any():
            raise ValueError(
                "predict returned non-integer labels; return class indices (e.g. logits.argmax(1)), "
                "not probabilities of one class."
            )
    return out.astype(np.int64)


def _as_counter(predict: Predict | QueryCounter) -> QueryCounter:
    return predict if isinstance(predict, QueryCounter) else QueryCounter(predict)


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate audit inputs and labels exactly as :class:`~pytest_privacy.data.MembershipData` does."""
    xa = check_inputs(x)
    return xa, check_labels(y, xa.shape[0])


def _check_nonnegative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return int(value)


def _max_radius(x: np.ndarray, max_radius: float | None) -> float:
    """``max_radius``, or by default the diameter of the data's bounding box:
    ``sqrt(example size) * (x.max() - x.min())``."""
    if max_radius is not None:
        if not max_radius > 0 or not math.isfinite(max_radius):
            raise ValueError(f"max_radius must be a positive finite number, got {max_radius!r}.")
        return float(max_radius)
    span = float(x.max() - x.min()) if x.size else 0.0
    if not span > 0:
        raise ValueError("x has zero range, so there is no default max_radius; pass max_radius=.")
    return math.sqrt(x[0].size) * span


# --------------------------------------------------------------------------------------------
# Gap and augmentation attacks
# --------------------------------------------------------------------------------------------


def gap_scores(predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gap attack (Yeom et al. 2018): 1.0 if ``x`` is classified as ``y``, else 0.0 (float64 [N]).

    The baseline every label-only attack must beat; one query per point.
    """
    xa, ya = _check_xy(x, y)
    return (_as_counter(predict)(xa) == ya).astype(np.float64)


def _check_augmentations(example_shape: tuple[int, ...], d: int, r: int) -> tuple[int, int, tuple[int, ...]]:
    d = _check_nonnegative_int("d", d)
    r = _check_nonnegative_int("r", r)
    axes = spatial_axes(len(example_shape))
    if not axes:
        raise ValueError(
            f"augmentations need [N, L], [N, H, W] or [N, C, H, W] inputs, got example shape {example_shape}."
        )
    if r and len(axes) < 2:
        raise ValueError(
            "rotations need images [N, H, W] or [N, C, H, W]; 1-D signals [N, L] support "
            "translations only: pass r=0."
        )
    return d, r, axes


def n_augmentations(example_shape: tuple[int, ...], *, d: int = 1, r: int = 0) -> int:
    """Queries per point Q of :func:`augmentation_bits`: ``1 + 2 * d * n_spatial_axes + 2 * r``
    (``4d + 1 + 2r`` for images, ``2d + 1`` for 1-D signals)."""
    d, r, axes = _check_augmentations(tuple(example_shape), d, r)
    return 1 + 2 * d * len(axes) + 2 * r


def _augmented_views(x: np.ndarray, d: int, r: int, axes: tuple[int, ...]) -> Iterator[np.ndarray]:
    """The original, then for each spatial axis shifts by +1, -1, ..., +d, -d (zero fill), then
    rotations by the nonzero angles of ``linspace(-r, r, 2r + 1)`` degrees."""
    yield x
    for axis in axes:
        for step in range(1, d + 1):
            yield shift(x, axis + 1, step)
            yield shift(x, axis + 1, -step)
    for angle in np.linspace(-r, r, 2 * r + 1):
        if angle != 0:
            yield ndimage.rotate(x, float(angle), axes=(axes[0] + 1, axes[1] + 1), reshape=False, order=1)


def augmented_views(x: np.ndarray, *, d: int = 1, r: int = 0) -> list[np.ndarray]:
    """The Q augmented copies of ``x`` that :func:`augmentation_bits` queries, in its column order."""
    xa = check_inputs(x)
    d, r, axes = _check_augmentations(xa.shape[1:], d, r)
    return list(_augmented_views(xa, d, r, axes))


def augmentation_bits(
    predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray, *, d: int = 1, r: int = 0,
    views: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Correctness of each augmented copy of each point, ``bool [N, Q]``.

    Copies, in this order (column 0 is the original): translations along one spatial axis at a time
    by ``1..d`` pixels in each direction, zero fill (``4d`` for images, ``2d`` for 1-D signals), then
    for images and ``r > 0`` rotations by ``linspace(-r, r, 2r + 1)`` degrees except 0
    (``scipy.ndimage.rotate``, bilinear, same size, zero fill). ``Q = n_augmentations(...)``; with
    ``d=1, r=0`` the copies are exactly ``make_queries(x, ["shift"])``.

    Note: Choquette-Choo et al. translate by ``(i, j)`` with ``|i| + |j| = d``; this uses axis-aligned
    shifts up to ``d`` (the same count, ``4d + 1``; identical for ``d = 1``).

    ``views``: the copies, when the caller already built them with ``augmented_views(x, d=d, r=r)``
    (building rotations is the expensive part).
    """
    xa, ya = _check_xy(x, y)
    counter = _as_counter(predict)
    views = augmented_views(xa, d=d, r=r) if views is None else views
    return np.stack([counter(view) == ya for view in views], axis=1)


def augmentation_scores(
    predict: Predict | QueryCounter, x: np.ndarray, y: np.ndarray, *, d: int = 1, r: int = 0
) -> np.ndarray:
    """Fraction of the augmented copies of :func:`augmentation_bits` classified correctly
    (float64 [N]): the untrained ("threshold") augmentation attack."""
    return augmentation_bits(predict, x, y, d=d, r=r).mean(axis=1, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The trained augmentation attack: per-class logistic regression on the bits
# --------------------------------------------------------------------------------------------


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
    min_examples = max(1, _check_nonnegative_int("min_examples", min_examples))

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


# --------------------------------------------------------------------------------------------
# Noise robustness
# --------------------------------------------------------------------------------------------


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
    xa, ya = _check_xy(x, y)
    k = _check_nonnegative_int("k", k)
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
    counter = _as_counter(predict)
    rng = np.random.default_rng(seed)
    shape = xa.shape[1:]
    chunk = max(1, _CHUNK_ELEMENTS // (k * max(1, xa[0].size)))
    out = np.empty(xa.shape[0], dtype=np.float64)
    for start in range(0, xa.shape[0], chunk):
        xb, yb = xa[start : start + chunk], ya[start : start + chunk]
        noise = rng.standard_normal((xb.shape[0], k, *shape), dtype=np.float32)
        noisy = (xb[:, None] + np.float32(scale) * noise).reshape(-1, *shape)
        labels = counter(noisy).reshape(xb.shape[0], k)
        out[start : start + chunk] = (labels == yb[:, None]).mean(axis=1)
    return out


# --------------------------------------------------------------------------------------------
# Distance to the decision boundary: white-box (gradients)
# --------------------------------------------------------------------------------------------


def boundary_scores_whitebox(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_radius: float | None = None,
    steps: int = 30,
    overshoot: float = 0.02,
    top_k: int = 10,
    bisection_steps: int = 30,
    batch_size: int = 256,
) -> np.ndarray:
    """L2 distance from each point to the model's decision boundary, by gradients (float64 [N]).

    ``model`` is a torch ``nn.Module`` mapping ``x`` to logits ``[B, C]``. DeepFool (Moosavi-Dezfooli
    et al. 2016): at most ``steps`` linearised steps, each to the nearest of the ``top_k`` highest
    other classes' linearised boundaries ``z_j - z_y = 0``, scaled by ``1 + overshoot`` until the
    label flips; then ``bisection_steps`` of bisection on the segment from ``x`` to the flipped point.
    The score is the length of the perturbation of the flipped end of the bisection: an upper bound
    on the distance (exact up to bisection for a linear model). Unconstrained: no clipping to a data
    range.

    Misclassified points score 0 (they are already on the wrong side: distance 0). A point whose
    search finds no flip (e.g. zero gradients) scores ``max_radius``, and every score is capped at
    ``max_radius``, by default the diameter of the data's bounding box,
    ``sqrt(example size) * (x.max() - x.min())``.

    Runs on the module's device and dtype, with gradients only for the search steps (the
    parameters' ``.grad`` is untouched); the model is put in eval mode and every submodule's
    train/eval mode is restored afterwards.
    """
    import torch

    xa, ya = _check_xy(x, y)
    radius = _max_radius(xa, max_radius) if xa.size else 1.0
    steps = _check_nonnegative_int("steps", steps)
    bisection_steps = _check_nonnegative_int("bisection_steps", bisection_steps)
    if _check_nonnegative_int("top_k", top_k) < 1 or _check_nonnegative_int("batch_size", batch_size) < 1:
        raise ValueError("top_k and batch_size must be >= 1.")
    if not overshoot >= 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot!r}.")

    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    out = np.empty(xa.shape[0], dtype=np.float64)
    with evaluating(model), torch.no_grad():
        for start in range(0, xa.shape[0], batch_size):
            xb = torch.as_tensor(xa[start : start + batch_size], device=device, dtype=dtype)
            yb = torch.as_tensor(ya[start : start + batch_size], device=device)
            dist = _deepfool(model, xb, yb, steps, float(overshoot), int(top_k), bisection_steps)
            out[start : start + batch_size] = dist.cpu().numpy()
    return np.where(np.isnan(out), radius, np.minimum(out, radius))


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    z = model(x)
    if z.ndim != 2 or z.shape[0] != x.shape[0] or z.shape[1] < 2:
        raise ValueError(f"model must return logits [B, C] with C >= 2, got shape {tuple(z.shape)}.")
    return z


def _deepfool(
    model: torch.nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    overshoot: float,
    top_k: int,
    bisection_steps: int,
) -> torch.Tensor:
    """Distances (float64 [B]) for one batch: 0 if misclassified, NaN where no flip was found."""
    import torch

    n = x0.shape[0]
    dist = torch.full((n,), float("nan"), dtype=torch.float64, device=x0.device)
    z0 = _logits(model, x0)
    if ((y < 0) | (y >= z0.shape[1])).any():
        raise ValueError(f"labels must lie in [0, {z0.shape[1]}) for a model with {z0.shape[1]} classes.")
    dist[z0.argmax(1) != y] = 0.0
    r_tot = torch.zeros_like(x0)
    active = z0.argmax(1) == y
    flipped = torch.zeros(n, dtype=torch.bool, device=x0.device)
    k = min(top_k, z0.shape[1] - 1)
    for it in range(steps + 1):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xa = (x0[idx] + (1 + overshoot) * r_tot[idx]).requires_grad_(True)
        ya = y[idx]
        with torch.enable_grad():
            z = _logits(model, xa)
            done = z.argmax(1) != ya
            flipped[idx[done]] = True
            active[idx[done]] = False
            if it == steps or bool(done.all()):
                break
            keep = ~done
            z, ya, sub = z[keep], ya[keep], idx[keep]
            own = torch.nn.functional.one_hot(ya, z.shape[1]).bool()
            cand = z.masked_fill(own, float("-inf")).topk(k, dim=1).indices  # [b, k]
            f = z.gather(1, cand) - z.gather(1, ya[:, None])  # < 0 while correct
            grads = [
                torch.autograd.grad(f[:, j].sum(), xa, retain_graph=j < k - 1)[0][keep] for j in range(k)
            ]
        w = torch.stack(grads, dim=1).flatten(2)  # [b, k, D]
        f = f.detach()
        norm = w.norm(dim=2)
        ratio = f.abs() / norm
        ratio[~torch.isfinite(ratio) | (norm <= 0)] = float("inf")
        best = ratio.argmin(1)
        rows = torch.arange(best.numel(), device=x0.device)
        stuck = ~torch.isfinite(ratio[rows, best])
        step = (f.abs()[rows, best] / norm[rows, best] ** 2)[:, None] * w[rows, best]
        step = step.reshape(-1, *x0.shape[1:])
        r_tot[sub[~stuck]] += step[~stuck]
        active[sub[stuck]] = False  # zero gradient: no direction to move in

    idx = flipped.nonzero().squeeze(1)
    if idx.numel():
        base, ya = x0[idx], y[idx]
        delta = (1 + overshoot) * r_tot[idx]
        view = (-1,) + (1,) * (x0.ndim - 1)
        lo = torch.zeros(idx.numel(), dtype=x0.dtype, device=x0.device)
        hi = torch.ones_like(lo)
        for _ in range(bisection_steps):
            mid = (lo + hi) / 2
            bad = _logits(model, base + mid.view(view) * delta).argmax(1) != ya
            hi = torch.where(bad, mid, hi)
            lo = torch.where(bad, lo, mid)
        point = base + hi.view(view) * delta
        dist[idx] = (point.double() - base.double()).flatten(1).norm(dim=1)
    return dist


# --------------------------------------------------------------------------------------------
# Distance to the decision boundary: black-box (HopSkipJump)
# --------------------------------------------------------------------------------------------


class _Oracle:
    """Adversarial-or-not queries on flattened float64 points, charged per point."""

    def __init__(self, counter: QueryCounter, shape: tuple[int, ...], y: np.ndarray) -> None:
        self.counter, self.shape, self.y = counter, shape, y
        self.used = np.zeros(y.shape[0], dtype=np.int64)

    def adversarial(self, points: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``points [len(idx), ..., D]`` for points ``idx``: returns (pred != y, the float32-rounded
        points actually sent, as float64)."""
        sent = points.astype(np.float32)
        per_point = int(np.prod(points.shape[1:-1], dtype=np.int64)) if points.ndim > 2 else 1
        labels = self.counter(sent.reshape(-1, *self.shape)).reshape(points.shape[:-1])
        self.used[idx] += per_point
        y = self.y[idx].reshape((-1,) + (1,) * (points.ndim - 2))
        return labels != y, sent.astype(np.float64)


def _bisect(oracle: _Oracle, x0: np.ndarray, far: np.ndarray, idx: np.ndarray, n_steps: int) -> np.ndarray:
    """Bisection on the segments ``x0 -> far`` (``far`` adversarial): the adversarial end after
    ``n_steps`` halvings, as the exact float32 points queried (or ``far``)."""
    lo = np.zeros(idx.size)
    hi = np.ones(idx.size)
    best = far.copy()
    for _ in range(n_steps):
        mid = (lo + hi) / 2
        bad, sent = oracle.adversarial(x0 + mid[:, None] * (far - x0), idx)
        hi = np.where(bad, mid, hi)
        lo = np.where(bad, lo, mid)
        best[bad] = sent[bad]
    return best


def boundary_scores_blackbox(
    predict: Predict | QueryCounter,
    x: np.ndarray,
    y: np.ndarray,
    *,
    max_queries: int = 1000,
    seed: int = 0,
    max_radius: float | None = None,
    init_evals: int = 20,
    max_evals: int = 200,
    gamma: float = 1.0,
    tol: float = 1e-3,
    n_starts: int = 3,
    init_tries: int = 20,
) -> np.ndarray:
    """L2 distance from each point to the decision boundary with labels only (float64 [N]).

    HopSkipJump (Chen et al. 2020), untargeted, L2, vectorised across points:

    1. starts: for each of the ``n_starts`` other classes whose nearest audit point (L2, by the
       oracle's labels) is closest, bisect the segment from the point to that audit point onto the
       boundary and keep the closest crossing (a multi-class boundary has local minima; several
       starts avoid most); where no audit point is labelled differently, start from uniform noise in
       ``[x.min(), x.max()]`` that the oracle misclassifies (at most ``init_tries`` draws);
    2. iterate ``t = 1, 2, ...``: estimate the boundary's normal at the current boundary point from
       the labels of ``min(init_evals * sqrt(t), max_evals)`` random unit perturbations of radius
       ``dist / D * gamma`` (D = example size; mean-subtracted signs), step along it by
       ``dist / sqrt(t)``, halving (at most 30 times) until the step lands on the wrong side, and
       bisect back towards the point; a point whose step never lands stops there.

    Bisections stop at a relative precision of ``min(tol, gamma / D^1.5)`` of the segment. Every
    reported distance is that of a point the oracle labelled differently from ``y``, so it is an
    upper bound of the true distance. The oracle is assumed deterministic.

    Budget: at most ``max_queries`` queries are spent per point (its own first prediction included;
    a start taken from another audit point uses that point's prediction, which is shared), so the
    total is at most ``N * max_queries``. A point stops iterating as soon as its remaining budget
    cannot pay for a whole iteration and scores the smallest distance found so far.

    Misclassified points score 0 (distance 0). A point for which no misclassified start was found
    scores ``max_radius``, and every score is capped at it (default: the diameter of the data's
    bounding box, ``sqrt(D) * (x.max() - x.min())``). Unconstrained: no clipping to a data range.
    """
    xa, ya = _check_xy(x, y)
    counter = _as_counter(predict)
    n = xa.shape[0]
    if n == 0:
        return np.zeros(0)
    if not (gamma > 0 and 0 < tol < 1):
        raise ValueError(f"gamma must be > 0 and tol in (0, 1), got {gamma!r}, {tol!r}.")
    radius = _max_radius(xa, max_radius)
    shape = xa.shape[1:]
    dim = int(np.prod(shape))
    theta = gamma / dim**1.5
    n_bisect = max(1, math.ceil(math.log2(1.0 / min(tol, theta))))
    max_queries = _check_nonnegative_int("max_queries", max_queries)
    if max_queries < 1 + n_bisect:
        raise ValueError(
            f"max_queries={max_queries} cannot pay for the first prediction and one bisection "
            f"({1 + n_bisect} queries); raise it (HopSkipJump needs hundreds)."
        )
    init_evals = max(1, _check_nonnegative_int("init_evals", init_evals))
    n_starts = max(1, _check_nonnegative_int("n_starts", n_starts))
    max_evals = max(init_evals, _check_nonnegative_int("max_evals", max_evals))
    rng = np.random.default_rng(seed)

    oracle = _Oracle(counter, shape, ya)
    x0 = xa.reshape(n, dim).astype(np.float64)
    pred = counter(xa)
    oracle.used += 1
    scores = np.full(n, np.inf)
    scores[pred != ya] = 0.0
    todo = np.flatnonzero(pred == ya)

    # 1. Starting points: for each of up to n_starts other predicted classes, the nearest audit
    #    point predicted as that class (bisected onto the boundary, the closest crossing kept);
    #    where there is none, uniform noise that the oracle misclassifies.
    classes = np.unique(pred)
    cand = np.full((n, n_starts), -1)
    sq = (x0**2).sum(axis=1)
    for s in range(0, todo.size, 1024):
        rows = todo[s : s + 1024]
        d2 = sq[rows, None] + sq[None, :] - 2.0 * x0[rows] @ x0.T
        near = np.empty((rows.size, classes.size))
        arg = np.empty((rows.size, classes.size), dtype=np.int64)
        for ci, c in enumerate(classes):
            cols = np.flatnonzero(pred == c)
            a = d2[:, cols].argmin(axis=1)
            near[:, ci], arg[:, ci] = d2[np.arange(rows.size), cols[a]], cols[a]
        near[classes[None, :] == ya[rows, None]] = np.inf
        order = np.argsort(near, axis=1, kind="stable")[:, :n_starts]
        ok = np.isfinite(np.take_along_axis(near, order, axis=1))
        cand[rows, : order.shape[1]] = np.where(ok, np.take_along_axis(arg, order, axis=1), -1)

    boundary = np.full((n, dim), np.nan)
    for rank in range(n_starts):
        rows = todo[(cand[todo, rank] >= 0) & (max_queries - oracle.used[todo] >= n_bisect)]
        if rows.size == 0:
            break
        found = _bisect(oracle, x0[rows], x0[cand[rows, rank]], rows, n_bisect)
        dist = np.linalg.norm(found - x0[rows], axis=1)
        closer = dist < scores[rows]
        boundary[rows[closer]], scores[rows[closer]] = found[closer], dist[closer]

    lo_val, hi_val = float(xa.min()), float(xa.max())
    noise_start = np.full((n, dim), np.nan)
    for _ in range(init_tries):
        need = todo[(cand[todo, 0] < 0) & np.isnan(noise_start[todo, 0])]
        need = need[max_queries - oracle.used[need] > n_bisect]
        if need.size == 0:
            break
        bad, sent = oracle.adversarial(rng.uniform(lo_val, hi_val, (need.size, dim)), need)
        noise_start[need[bad]] = sent[bad]
    rows = todo[~np.isnan(noise_start[todo, 0])]
    if rows.size:
        boundary[rows] = _bisect(oracle, x0[rows], noise_start[rows], rows, n_bisect)
        scores[rows] = np.linalg.norm(boundary[rows] - x0[rows], axis=1)
    todo = todo[~np.isnan(boundary[todo, 0])]

    # 2. HopSkipJump iterations.
    t = 0
    while todo.size:
        t += 1
        n_evals = int(min(init_evals * math.sqrt(t), max_evals))
        todo = todo[max_queries - oracle.used[todo] >= n_evals + 1 + n_bisect]
        if todo.size == 0:
            break
        dist = np.linalg.norm(boundary[todo] - x0[todo], axis=1)
        direction = np.empty((todo.size, dim))
        chunk = max(1, _CHUNK_ELEMENTS // (n_evals * dim))
        for s in range(0, todo.size, chunk):
            rows = todo[s : s + chunk]
            u = rng.standard_normal((rows.size, n_evals, dim))
            u /= np.linalg.norm(u, axis=2, keepdims=True)
            delta = gamma * dist[s : s + chunk] / dim
            bad, _ = oracle.adversarial(boundary[rows, None] + delta[:, None, None] * u, rows)
            phi = np.where(bad, 1.0, -1.0)
            mean = phi.mean(axis=1, keepdims=True)
            centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
            direction[s : s + chunk] = np.einsum("be,bed->bd", centred, u) / n_evals
        norm = np.linalg.norm(direction, axis=1)
        moved = norm > 0
        direction[moved] /= norm[moved, None]

        # Geometric step: halve the step until it lands on the wrong side (budget permitting).
        eps = dist / math.sqrt(t)
        landed = np.zeros(todo.size, dtype=bool)
        new = np.empty((todo.size, dim))
        searching = moved.copy()
        for _ in range(_MAX_HALVINGS):
            searching &= max_queries - oracle.used[todo] >= 1 + n_bisect
            pos = np.flatnonzero(searching)
            if pos.size == 0:
                break
            bad, sent = oracle.adversarial(boundary[todo[pos]] + eps[pos, None] * direction[pos], todo[pos])
            new[pos[bad]] = sent[bad]
            landed[pos[bad]] = True
            searching[pos[bad]] = False
            eps[pos[~bad]] /= 2
        todo = todo[landed]
        if todo.size == 0:
            break
        boundary[todo] = _bisect(oracle, x0[todo], new[landed], todo, n_bisect)
        scores[todo] = np.minimum(scores[todo], np.linalg.norm(boundary[todo] - x0[todo], axis=1))

    return np.minimum(scores, radius)


# ------------------------------------------------------------------------------ registration


def _gap(q: LabelQuery) -> tuple[np.ndarray, str]:
    return gap_scores(q.oracle, q.x, q.y), "correctness"


def _augmentation(q: LabelQuery) -> tuple[np.ndarray, str]:
    d, r = int(q.options.get("d", 1)), int(q.options.get("r", 0))
    return augmentation_scores(q.oracle, q.x, q.y, d=d, r=r), f"translations d={d}, rotations r={r}"


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


def _noise(q: LabelQuery) -> tuple[np.ndarray, str]:
    sigma, k = float(q.options.get("sigma", 0.025)), int(q.options.get("k", 100))
    return noise_scores(q.oracle, q.x, q.y, sigma=sigma, k=k, seed=q.seed), f"sigma={sigma:g} of range, k={k}"


def _boundary(q: LabelQuery) -> tuple[np.ndarray, str]:
    # A training function's target answers from cached logits; its live module is behind .model.
    live = q.model.model if isinstance(q.model, CachedTarget) else q.model
    if is_module(live) and not q.options.get("black_box", False):
        return boundary_scores_whitebox(live, q.x, q.y), "white-box gradient search"
    budget = int(q.options.get("max_queries", 1000))
    return (
        boundary_scores_blackbox(q.oracle, q.x, q.y, max_queries=budget, seed=q.seed),
        f"black-box HopSkipJump, <= {budget} queries per point",
    )


register_attack(
    Attack(
        "label_only_gap", "label_only", False, "member iff correctly classified (the baseline to beat)",
        score_labels=_gap,
    )
)
register_attack(
    Attack(
        "label_only_augmentation", "label_only", False,
        "fraction of translated (and rotated) copies classified correctly", score_labels=_augmentation,
    )
)
register_attack(
    Attack(
        "label_only_augmentation_trained", "label_only", True,
        "per-class logistic model on augmentation bits, fit on the references' IN/OUT points",
        score_labels=_augmentation_trained,
    )
)
register_attack(
    Attack(
        "label_only_noise", "label_only", False, "fraction of Gaussian-noised copies still correct",
        score_labels=_noise,
    )
)
register_attack(
    Attack(
        "label_only_boundary", "label_only", False,
        "distance to the decision boundary: gradient search for torch modules, HopSkipJump otherwise",
        score_labels=_boundary,
    )
)
