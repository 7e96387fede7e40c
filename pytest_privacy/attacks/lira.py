"""The likelihood-ratio attack, LiRA (Carlini et al., "Membership Inference Attacks From First
Principles", 2022): per-example Gaussian fits of reference-model confidences.

Pure numpy, float64 throughout. Shapes: ``target_logits [N, A, C]``, ``reference_logits
[M, N, A, C]``, ``labels [N]``, ``keep [M, N]``; A is the number of queries per point (the original
input plus its augmentations, the same for target and references).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import special, stats

from ._arrays import as_keep, as_labels, as_reference_logits
from ._arrays import as_nac as _as_nac
from .registry import Attack, ScoreFn, register_attack

__all__ = ["FIXED_VARIANCE_BELOW", "LIRA_VARIANTS", "logit_scale", "lira_scores"]

if TYPE_CHECKING:
    from ..data import References

LIRA_VARIANTS = ("online", "offline", "global")
_TINY = 1e-30  # keeps sigma > 0 for points where every reference agrees exactly


def logit_scale(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-query confidence ``phi = z_y - logsumexp_{y' != y} z_y'`` in float64.

    Equals ``log p_y - log(1 - p_y)`` for ``p = softmax(z)`` without the underflow of computing
    ``p`` first. ``logits`` is ``[..., C]`` and ``labels`` broadcasts to ``logits.shape[:-1]`` (numpy
    rules: ``[N]`` for ``[N, C]``, ``[N, 1]`` for ``[N, A, C]``). Log-probabilities work too (the
    expression is invariant to adding a constant per row). Returns ``logits.shape[:-1]``.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits need a class axis of >= 2 classes, got shape {z.shape}.")
    try:
        y = np.broadcast_to(np.asarray(labels), z.shape[:-1])[..., None]
    except ValueError:
        raise ValueError(
            f"labels {np.shape(labels)} do not broadcast to logits.shape[:-1] = {z.shape[:-1]}; "
            "for [N, A, C] logits pass labels[:, None]."
        ) from None
    correct = np.take_along_axis(z, y, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, y, -np.inf, axis=-1)
    return correct - special.logsumexp(others, axis=-1)


def _std(values: np.ndarray, mask: np.ndarray | None) -> float:
    v = values if mask is None else values[np.broadcast_to(mask, values.shape)]
    return float(np.std(v)) + _TINY


def _masked_median_std(
    phi: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median and std (ddof=0) over the reference axis 0 of ``phi [M, N, A]`` where ``mask``."""
    data = np.where(mask, phi, np.nan)
    with np.errstate(all="ignore"):
        mu = np.nanmedian(data, axis=0)
        sigma = np.nanstd(data, axis=0) + _TINY
    return mu, sigma


def lira_scores(
    target_logits: np.ndarray,
    reference_logits: np.ndarray | None,
    labels: np.ndarray,
    keep: np.ndarray | None = None,
    *,
    variant: Literal["online", "offline", "global"] = "online",
    fixed_variance: bool = False,
) -> np.ndarray:
    """LiRA membership scores, higher = more likely a member (Carlini et al. 2022).

    - ``online``: ``mean_a[log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)]`` with IN/OUT the
      references that did/did not train on the point, ``mu`` the median, ``s`` the std (ddof=0).
    - ``offline``: OUT references only (``keep=None`` means all are OUT), one-sided:
      ``mean_a[log Phi((phi - mu_out) / s_out)]``.
    - ``fixed_variance``: one scalar ``s``, the std of every IN (online) or OUT (offline) ``phi``
      pooled over points, references and queries, as the reference code does; better below 64
      references.
    - ``global``: ``mean_a[phi]``, no references.
    """
    if variant not in LIRA_VARIANTS:
        raise ValueError(f"variant must be one of {LIRA_VARIANTS}, got {variant!r}.")
    target = _as_nac(target_logits, 0, "target_logits")
    n_points = target.shape[0]
    y = as_labels(labels, n_points, target.shape[-1])
    phi_t = logit_scale(target, y[:, None])  # [N, A]
    if variant == "global":
        return phi_t.mean(axis=-1)

    if reference_logits is None:
        raise ValueError(f"LiRA {variant} needs reference_logits; use variant='global' without them.")
    refs = as_reference_logits(reference_logits, target)
    n_refs = refs.shape[0]
    phi_r = logit_scale(refs, y[:, None])  # [M, N, A]
    if keep is None and variant == "online":
        raise ValueError("LiRA online needs keep [M, N] saying which reference trained on which point.")
    keep_b = as_keep(keep, n_refs, n_points)
    k_in = keep_b[:, :, None]
    k_out = ~k_in
    if not k_out.any(axis=0).all():
        raise ValueError("every point needs at least one OUT reference (a reference that did not train on it).")

    mu_out, s_out = _masked_median_std(phi_r, k_out)
    if variant == "offline":
        if fixed_variance:
            s_out = np.full_like(mu_out, _std(phi_r, k_out))
        return stats.norm.logcdf((phi_t - mu_out) / s_out).mean(axis=-1)

    if not k_in.any(axis=0).all():
        raise ValueError("LiRA online needs at least one IN reference per point; use balanced_keep.")
    mu_in, s_in = _masked_median_std(phi_r, k_in)
    if fixed_variance:
        s_in = s_out = np.full_like(mu_in, _std(phi_r, k_in))
    log_in = stats.norm.logpdf(phi_t, mu_in, s_in)
    log_out = stats.norm.logpdf(phi_t, mu_out, s_out)
    return (log_in - log_out).mean(axis=-1)


# ------------------------------------------------------------------------------ registration

# Below this many references per-example variances are too noisy (Carlini et al. 2022, Fig. 9).
FIXED_VARIANCE_BELOW = 64


def _lira(variant: str, fixed: bool | None) -> ScoreFn:
    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
        assert refs is not None
        use_fixed = refs.n_references < FIXED_VARIANCE_BELOW if fixed is None else fixed
        # Offline also needs keep: it fits the OUT references of each point only.
        s = lira_scores(logits, refs.logits, labels, refs.keep, variant=variant, fixed_variance=use_fixed)
        return s, f"{variant}, {'fixed' if use_fixed else 'per-example'} variance"

    return score


def _global(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
    return lira_scores(logits, None, labels, variant="global"), "global"


register_attack(Attack("lira", "lira", True, "LiRA online; fixed variance below 64 references", _lira("online", None)))
register_attack(
    Attack(
        "lira_offline", "lira", True, "LiRA offline (OUT references only); fixed variance below 64 references",
        _lira("offline", None),
    )
)
register_attack(Attack("lira_online_fixed", "lira", True, "LiRA online, one shared variance", _lira("online", True)))
register_attack(
    Attack(
        "lira_online_per_example", "lira", True, "LiRA online, per-example variances", _lira("online", False)
    )
)
register_attack(Attack("lira_offline_fixed", "lira", True, "LiRA offline, one shared variance", _lira("offline", True)))
register_attack(
    Attack(
        "lira_offline_per_example", "lira", True, "LiRA offline, per-example variances", _lira("offline", False)
    )
)
register_attack(Attack("lira_global", "baseline", False, "LiRA's global threshold on the logit-scaled confidence", _global))
