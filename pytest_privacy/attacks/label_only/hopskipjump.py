"""Distance to the decision boundary with labels only (black-box): HopSkipJump (Chen et al. 2020),
untargeted, L2, vectorised across points, every point paying from its own query :class:`Budget`.

The attack is a sequence of steps, one function each:

1. initialisation, an adversarial start for each point bisected onto the boundary:
   :func:`_start_candidates` (the nearest audit points of other classes),
   :func:`_starts_from_audit_points` (bisect towards them) and :func:`_starts_from_noise` (uniform
   noise the oracle misclassifies, where no audit point is labelled differently);
2. each iteration: :func:`_estimate_direction` (the boundary's normal from random probes),
   :func:`_geometric_step` (step along it, halving until it lands on the wrong side) and
   :func:`_bisect` back towards the point;
3. :func:`_final_scores`: the smallest distance found, capped at ``max_radius``.

:func:`boundary_scores_blackbox` is the loop over them. The random draws (uniform starts, probe
directions) come from one numpy Generator in a fixed order, so a seed fixes every score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..queries import Predict, QueryCounter, as_counter
from .oracle import (
    CHUNK_ELEMENTS,
    Budget,
    check_nonnegative_int,
    check_xy,
    resolve_max_radius,
)

__all__ = ["boundary_scores_blackbox"]

# The geometric step search gives up after this many halvings (a factor of ~1e-9).
_MAX_HALVINGS = 30
# Audit points per block of the pairwise squared-distance matrix [block, N] when choosing starts.
_CANDIDATE_BLOCK = 1024


@dataclass(frozen=True)
class _Settings:
    """The validated options of one run."""

    dim: int  # D, the example size: points are searched flattened, [D] float64
    radius: float  # scores are capped at it
    n_bisect: int  # halvings per bisection, for a relative precision min(tol, gamma / D^1.5)
    max_queries: int  # per point
    init_evals: int
    max_evals: int
    gamma: float
    n_starts: int
    init_tries: int

    def n_evals(self, t: int) -> int:
        """Probes for the direction estimate of iteration ``t``: ``min(init_evals * sqrt(t), max_evals)``."""
        return int(min(self.init_evals * math.sqrt(t), self.max_evals))


def _settings(
    xa: np.ndarray, *, max_queries: int, max_radius: float | None, init_evals: int, max_evals: int,
    gamma: float, tol: float, n_starts: int, init_tries: int,
) -> _Settings:
    """Validate the options (in this order, so the first bad one is the one reported)."""
    if not (gamma > 0 and 0 < tol < 1):
        raise ValueError(f"gamma must be > 0 and tol in (0, 1), got {gamma!r}, {tol!r}.")
    radius = resolve_max_radius(xa, max_radius)
    dim = int(np.prod(xa.shape[1:]))
    theta = gamma / dim**1.5
    n_bisect = max(1, math.ceil(math.log2(1.0 / min(tol, theta))))
    max_queries = check_nonnegative_int("max_queries", max_queries)
    if max_queries < 1 + n_bisect:
        raise ValueError(
            f"max_queries={max_queries} cannot pay for the first prediction and one bisection "
            f"({1 + n_bisect} queries); raise it (HopSkipJump needs hundreds)."
        )
    init_evals = max(1, check_nonnegative_int("init_evals", init_evals))
    n_starts = max(1, check_nonnegative_int("n_starts", n_starts))
    max_evals = max(init_evals, check_nonnegative_int("max_evals", max_evals))
    return _Settings(dim, radius, n_bisect, max_queries, init_evals, max_evals, gamma, n_starts, init_tries)


class _Oracle:
    """Adversarial-or-not queries on flattened float64 points, each charged to its point's budget."""

    def __init__(self, counter: QueryCounter, shape: tuple[int, ...], y: np.ndarray, budget: Budget) -> None:
        self.counter, self.shape, self.y, self.budget = counter, shape, y, budget

    def adversarial(self, points: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``points [len(idx), ..., D]`` for points ``idx``: returns (pred != y, the float32-rounded
        points actually sent, as float64)."""
        # The model sees float32; every later step starts from what was sent, so a reported distance
        # is always that of a point the oracle really labelled adversarial.
        sent = points.astype(np.float32)
        per_point = int(np.prod(points.shape[1:-1], dtype=np.int64)) if points.ndim > 2 else 1
        labels = self.counter(sent.reshape(-1, *self.shape)).reshape(points.shape[:-1])
        self.budget.charge(idx, per_point)
        y = self.y[idx].reshape((-1,) + (1,) * (points.ndim - 2))
        return labels != y, sent.astype(np.float64)


def _distance(points: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """Row-wise L2 distance ``||points - x0||`` (float64 [B])."""
    return np.linalg.norm(points - x0, axis=1)


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


# ------------------------------------------------------------------------------ 1. initialisation


def _start_candidates(x0: np.ndarray, pred: np.ndarray, y: np.ndarray, todo: np.ndarray, n_starts: int) -> np.ndarray:
    """For each point of ``todo``, the nearest audit point (L2) of each of the ``n_starts`` other
    predicted classes whose nearest point is closest, nearest first: ``int [N, n_starts]``, -1 where
    there are fewer other classes (and for points not in ``todo``). Costs no queries: the audit
    points' own predictions ``pred`` are shared."""
    n = x0.shape[0]
    classes = np.unique(pred)
    cand = np.full((n, n_starts), -1)
    sq = (x0**2).sum(axis=1)
    for s in range(0, todo.size, _CANDIDATE_BLOCK):
        rows = todo[s : s + _CANDIDATE_BLOCK]
        d2 = sq[rows, None] + sq[None, :] - 2.0 * x0[rows] @ x0.T
        near = np.empty((rows.size, classes.size))
        arg = np.empty((rows.size, classes.size), dtype=np.int64)
        for ci, c in enumerate(classes):
            cols = np.flatnonzero(pred == c)
            a = d2[:, cols].argmin(axis=1)
            near[:, ci], arg[:, ci] = d2[np.arange(rows.size), cols[a]], cols[a]
        near[classes[None, :] == y[rows, None]] = np.inf  # a point's own class is no start
        order = np.argsort(near, axis=1, kind="stable")[:, :n_starts]
        ok = np.isfinite(np.take_along_axis(near, order, axis=1))
        cand[rows, : order.shape[1]] = np.where(ok, np.take_along_axis(arg, order, axis=1), -1)
    return cand


def _starts_from_audit_points(
    oracle: _Oracle, x0: np.ndarray, cand: np.ndarray, todo: np.ndarray, n_bisect: int,
    boundary: np.ndarray, scores: np.ndarray,
) -> None:
    """Bisect each point of ``todo`` onto the boundary towards its candidates in rank order, keeping
    the closest crossing in ``boundary`` and its distance in ``scores`` (both updated in place).
    A multi-class boundary has local minima; several starts avoid most."""
    for rank in range(cand.shape[1]):
        rows = oracle.budget.affording(todo[cand[todo, rank] >= 0], n_bisect)
        if rows.size == 0:
            break
        found = _bisect(oracle, x0[rows], x0[cand[rows, rank]], rows, n_bisect)
        dist = _distance(found, x0[rows])
        closer = dist < scores[rows]
        boundary[rows[closer]], scores[rows[closer]] = found[closer], dist[closer]


def _starts_from_noise(
    oracle: _Oracle, rng: np.random.Generator, x0: np.ndarray, rows: np.ndarray, cfg: _Settings,
    boundary: np.ndarray, scores: np.ndarray,
) -> None:
    """For points ``rows`` (no audit point is labelled differently), draw uniform noise in
    ``[x.min(), x.max()]`` until the oracle misclassifies it (at most ``init_tries`` draws per
    point) and bisect towards it; ``boundary`` and ``scores`` are updated in place."""
    lo_val, hi_val = float(x0.min()), float(x0.max())
    noise_start = np.full((x0.shape[0], cfg.dim), np.nan)
    for _ in range(cfg.init_tries):
        need = rows[np.isnan(noise_start[rows, 0])]
        need = oracle.budget.affording(need, 1 + cfg.n_bisect)  # a draw and the bisection after it
        if need.size == 0:
            break
        bad, sent = oracle.adversarial(rng.uniform(lo_val, hi_val, (need.size, cfg.dim)), need)
        noise_start[need[bad]] = sent[bad]
    found = rows[~np.isnan(noise_start[rows, 0])]
    if found.size:
        boundary[found] = _bisect(oracle, x0[found], noise_start[found], found, cfg.n_bisect)
        scores[found] = _distance(boundary[found], x0[found])


# ------------------------------------------------------------------------------ 2. iterations


def _estimate_direction(
    oracle: _Oracle, rng: np.random.Generator, boundary: np.ndarray, rows: np.ndarray, dist: np.ndarray,
    n_evals: int, gamma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The boundary's unit normal at each point's boundary point, from the labels of ``n_evals``
    random unit perturbations of radius ``gamma * dist / D`` (mean-subtracted signs): returns
    (directions ``[len(rows), D]``, whether each is nonzero: a zero estimate cannot be stepped along).
    """
    dim = boundary.shape[1]
    direction = np.empty((rows.size, dim))
    chunk = max(1, CHUNK_ELEMENTS // (n_evals * dim))  # bounds the [chunk, n_evals, D] probes
    for s in range(0, rows.size, chunk):
        sub = rows[s : s + chunk]
        u = rng.standard_normal((sub.size, n_evals, dim))
        u /= np.linalg.norm(u, axis=2, keepdims=True)
        delta = gamma * dist[s : s + chunk] / dim
        bad, _ = oracle.adversarial(boundary[sub, None] + delta[:, None, None] * u, sub)
        phi = np.where(bad, 1.0, -1.0)
        # Subtracting the mean sign reduces the estimate's variance (HopSkipJump's baseline), unless
        # every probe agrees, when it would cancel the whole estimate.
        mean = phi.mean(axis=1, keepdims=True)
        centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
        direction[s : s + chunk] = np.einsum("be,bed->bd", centred, u) / n_evals
    norm = np.linalg.norm(direction, axis=1)
    moved = norm > 0
    direction[moved] /= norm[moved, None]
    return direction, moved


def _geometric_step(
    oracle: _Oracle, boundary: np.ndarray, rows: np.ndarray, direction: np.ndarray, searching: np.ndarray,
    eps: np.ndarray, n_bisect: int,
) -> tuple[np.ndarray, np.ndarray]:
    """From each boundary point step by ``eps`` along ``direction``, halving the step (at most
    ``_MAX_HALVINGS`` times) until it lands on the wrong side, for the points where ``searching`` and
    while the point's budget can still pay for the step and the bisection after it. Returns (which
    points landed, bool ``[len(rows)]``; the landed points as sent, ``[landed.sum(), D]``)."""
    landed = np.zeros(rows.size, dtype=bool)
    new = np.empty((rows.size, boundary.shape[1]))
    searching, eps = searching.copy(), eps.copy()
    for _ in range(_MAX_HALVINGS):
        searching &= oracle.budget.can_afford(rows, 1 + n_bisect)
        pos = np.flatnonzero(searching)
        if pos.size == 0:
            break
        bad, sent = oracle.adversarial(boundary[rows[pos]] + eps[pos, None] * direction[pos], rows[pos])
        new[pos[bad]] = sent[bad]
        landed[pos[bad]] = True
        searching[pos[bad]] = False
        eps[pos[~bad]] /= 2
    return landed, new[landed]


# ------------------------------------------------------------------------------ 3. the scores


def _final_scores(scores: np.ndarray, radius: float) -> np.ndarray:
    """Cap the distances at ``radius``: a point with no start found (``inf``) scores ``radius``."""
    return np.minimum(scores, radius)


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
    xa, ya = check_xy(x, y)
    counter = as_counter(predict)
    n = xa.shape[0]
    if n == 0:
        return np.zeros(0)
    cfg = _settings(
        xa, max_queries=max_queries, max_radius=max_radius, init_evals=init_evals, max_evals=max_evals,
        gamma=gamma, tol=tol, n_starts=n_starts, init_tries=init_tries,
    )
    rng = np.random.default_rng(seed)
    budget = Budget(cfg.max_queries, n)
    oracle = _Oracle(counter, xa.shape[1:], ya, budget)
    x0 = xa.reshape(n, cfg.dim).astype(np.float64)

    pred = counter(xa)
    budget.charge(np.arange(n), 1)  # each point's own first prediction
    scores = np.full(n, np.inf)  # the smallest distance found so far
    scores[pred != ya] = 0.0  # misclassified: already on the wrong side
    boundary = np.full((n, cfg.dim), np.nan)  # each point's current boundary point
    todo = np.flatnonzero(pred == ya)

    # 1. Initialisation: every point still to do gets a boundary point, or drops out.
    cand = _start_candidates(x0, pred, ya, todo, cfg.n_starts)
    _starts_from_audit_points(oracle, x0, cand, todo, cfg.n_bisect, boundary, scores)
    _starts_from_noise(oracle, rng, x0, todo[cand[todo, 0] < 0], cfg, boundary, scores)
    todo = todo[~np.isnan(boundary[todo, 0])]

    # 2. Iterations, while a point's budget pays for a whole one (probes, one step, a bisection).
    t = 0
    while todo.size:
        t += 1
        n_evals = cfg.n_evals(t)
        todo = budget.affording(todo, n_evals + 1 + cfg.n_bisect)
        if todo.size == 0:
            break
        dist = _distance(boundary[todo], x0[todo])
        direction, moved = _estimate_direction(oracle, rng, boundary, todo, dist, n_evals, cfg.gamma)
        landed, new = _geometric_step(oracle, boundary, todo, direction, moved, dist / math.sqrt(t), cfg.n_bisect)
        todo = todo[landed]  # a point whose step never lands stops here
        if todo.size == 0:
            break
        boundary[todo] = _bisect(oracle, x0[todo], new, todo, cfg.n_bisect)
        scores[todo] = np.minimum(scores[todo], _distance(boundary[todo], x0[todo]))

    return _final_scores(scores, cfg.radius)
