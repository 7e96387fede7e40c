"""Distance to the decision boundary with gradients (white-box): DeepFool, then bisection.

For a torch module the attack may use gradients; it needs no query budget. Torch is imported only
when the attack runs, so importing this module stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...data.querying import evaluating
from .oracle import check_nonnegative_int, check_xy, resolve_max_radius

if TYPE_CHECKING:
    import torch

__all__ = ["boundary_scores_whitebox"]


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

    xa, ya = check_xy(x, y)
    radius = resolve_max_radius(xa, max_radius) if xa.size else 1.0
    steps = check_nonnegative_int("steps", steps)
    bisection_steps = check_nonnegative_int("bisection_steps", bisection_steps)
    if check_nonnegative_int("top_k", top_k) < 1 or check_nonnegative_int("batch_size", batch_size) < 1:
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
    """``model(x)``, checked to be logits ``[B, C]`` with ``C >= 2``."""
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
