"""The likelihood-ratio attack, LiRA (Carlini et al., "Membership Inference Attacks From First
Principles", 2022): per-example Gaussian fits of reference-model confidences.

Pure numpy, float64 throughout. Shapes: ``target_logits [N, A, C]``, ``reference_logits
[M, N, A, C]``, ``labels [N]``, ``keep [M, N]``; A is the number of queries per point (the original
input plus its augmentations, the same for target and references).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import special, stats

from ..results import GaussianFit
from ..stats.gaussian_fit import gaussian_fit
from ._arrays import as_keep, as_labels, as_reference_logits
from ._arrays import as_nac as _as_nac
from .registry import Attack, ScoreFn, register_attack

__all__ = ["FIXED_VARIANCE_BELOW", "LIRA_VARIANCES", "LIRA_VARIANTS", "lira_scores", "logit_scale", "shrunk_variance"]

if TYPE_CHECKING:
    from ..data import References

LIRA_VARIANTS = ("online", "offline", "global")
LIRA_VARIANCES = ("per_example", "fixed", "shrunk")
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


def _trigamma_inverse(y: float) -> float:
    """The ``x > 0`` with ``polygamma(1, x) == y`` (Newton's method as in limma's ``trigammaInverse``,
    Smyth 2004): trigamma is positive, decreasing and convex, so Newton from ``0.5 + 1/y`` converges
    monotonically."""
    if y > 1e7:  # trigamma(x) ~ 1/x**2 near 0
        return 1.0 / np.sqrt(y)
    if y < 1e-6:  # trigamma(x) ~ 1/x for large x
        return 1.0 / y
    x = 0.5 + 1.0 / y
    for _ in range(50):
        tri = float(special.polygamma(1, x))
        step = tri * (1.0 - tri / y) / float(special.polygamma(2, x))
        x += step
        if -step / x < 1e-8:
            break
    return x


def shrunk_variance(
    phi: np.ndarray,
    masks: Sequence[np.ndarray],
    *,
    prior_df: float | None = None,
    fallback: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """Empirical-Bayes (limma-style) shrinkage of per-example variances over axis 0 of ``phi [M, N, A]``.

    Each (point, query) cell ``j`` has, per group ``g`` (one bool mask ``[M, N, 1]`` or ``[M, N, A]``
    each, e.g. the IN and the OUT references), ``k_gj`` values with their own mean and one variance
    ``sigma_j^2`` shared by the groups; the model is ``phi ~ N(mu_gj, sigma_j^2)`` with
    ``sigma_j^2 ~ Scaled-Inv-chi^2(nu0, s0^2)`` for every cell. Computed in float64:

    - ``SS_j = sum_g sum (phi - mean_gj)^2`` over each group's values, with
      ``d_j = sum_g max(k_gj - 1, 0)`` degrees of freedom (ddof=1 per group: each mean is estimated),
      and ``s_j^2 = SS_j / d_j`` where ``d_j > 0``.
    - ``nu0`` and ``s0^2`` by moments of ``log s_j^2`` over the cells with ``d_j > 0`` (Smyth 2004,
      limma's ``fitFDist``; in the log domain the chi-square's long right tail cannot dominate):
      ``e_j = log s_j^2 - digamma(d_j/2) + log(d_j/2)`` and ``v = var(e) - mean(trigamma(d_j/2))``
      (the spread of ``e`` beyond what sampling alone gives). ``v <= 0``: ``nu0 = inf``; else
      ``nu0 = 2 * trigamma^-1(v)``. ``s0^2 = exp(mean(e) + digamma(nu0/2) - log(nu0/2))``
      (``exp(mean(e))`` when ``nu0 = inf``), the variance pooled across points. For this fit only,
      ``s_j^2`` is clamped below at ``1e-5 * median(s^2 > 0)``, so exact ties (``log 0``) cannot
      drive ``nu0`` to 0.
    - Posterior: ``sigma_j^2 = (nu0 * s0^2 + SS_j) / (nu0 + d_j)``, the scale of the conjugate
      posterior ``Scaled-Inv-chi^2(nu0 + d_j, .)``, i.e. ``1 / E[1 / sigma_j^2 | SS_j]``; ``s0^2``
      when ``nu0 = inf``.

    Limits: ``d_j -> inf`` gives ``s_j^2`` (the per-example variance); ``nu0 -> inf`` or ``d_j = 0``
    gives ``s0^2``. When no cell has ``d_j > 0`` (one value per group: nothing to pool within points)
    ``s0^2 = fallback``, and every ``sigma_j^2`` is ``fallback``. ``prior_df`` fixes ``nu0`` instead
    of estimating it (``0``: ``s_j^2`` unpooled; ``np.inf``: ``s0^2`` everywhere).

    Returns ``(sigma [N, A]`` (standard deviations, ``+ 1e-30`` as elsewhere in LiRA), ``nu0``, ``s0^2)``.
    """
    ss = np.zeros(phi.shape[1:])
    d = np.zeros(phi.shape[1:])
    for mask in masks:
        m = np.broadcast_to(mask, phi.shape)
        k = m.sum(axis=0).astype(np.float64)
        with np.errstate(all="ignore"):  # a group may be empty for some cell (k = 0): it adds nothing
            mean = np.where(m, phi, 0.0).sum(axis=0) / np.maximum(k, 1.0)
        ss += np.where(m, (phi - mean) ** 2, 0.0).sum(axis=0)
        d += np.maximum(k - 1.0, 0.0)
    has = d > 0
    if not has.any():
        if fallback is None:
            raise ValueError("variance shrinkage needs a fallback variance when no point has two references in a group.")
        return np.full(ss.shape, np.sqrt(fallback) + _TINY), np.inf, float(fallback)
    s2 = ss[has] / d[has]
    positive = s2[s2 > 0]
    floor = 1e-5 * (float(np.median(positive)) if positive.size else 1.0)
    half = d[has] / 2.0
    e = np.log(np.maximum(s2, floor)) - special.digamma(half) + np.log(half)
    if prior_df is None:
        excess = float(np.var(e)) - float(np.mean(special.polygamma(1, half)))
        nu0 = 2.0 * _trigamma_inverse(excess) if excess > 0 else np.inf
    else:
        nu0 = float(prior_df)
    if 0.0 < nu0 < np.inf:
        s0 = float(np.exp(e.mean() + special.digamma(nu0 / 2.0) - np.log(nu0 / 2.0)))
    else:  # nu0 = inf: the log-mean is the common variance; nu0 = 0: s0 only matters where d = 0
        s0 = float(np.exp(e.mean()))
    if nu0 == np.inf:
        var = np.full(ss.shape, s0)
    else:
        with np.errstate(all="ignore"):  # nu0 = d = 0: no information at all, the pooled scale
            var = np.where(nu0 + d > 0, (nu0 * s0 + ss) / np.where(nu0 + d > 0, nu0 + d, 1.0), s0)
    return np.sqrt(var) + _TINY, nu0, s0


def lira_scores(
    target_logits: np.ndarray,
    reference_logits: np.ndarray | None,
    labels: np.ndarray,
    keep: np.ndarray | None = None,
    *,
    variant: Literal["online", "offline", "global"] = "online",
    fixed_variance: bool = False,
    variance: Literal["per_example", "fixed", "shrunk"] | None = None,
    prior_df: float | None = None,
) -> np.ndarray:
    """LiRA membership scores, higher = more likely a member (Carlini et al. 2022).

    - ``online``: ``mean_a[log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)]`` with IN/OUT the
      references that did/did not train on the point, ``mu`` the median, ``s`` per ``variance``.
    - ``offline``: OUT references only (``keep=None`` means all are OUT), one-sided:
      ``mean_a[log Phi((phi - mu_out) / s_out)]``.
    - ``global``: ``mean_a[phi]``, no references.

    ``variance`` (``None``: ``"fixed"`` if ``fixed_variance`` else ``"per_example"``):

    - ``"per_example"``: ``s`` the std (ddof=0) of each point's and query's IN / OUT values.
    - ``"fixed"`` (the same as ``fixed_variance=True``): one scalar ``s``, the std of every IN
      (online) or OUT (offline) ``phi`` pooled over points, references and queries, as the reference
      code does; better below 64 references.
    - ``"shrunk"`` (BaVarIA-style, Brännvall 2026, arXiv 2603.11799): each point's and query's
      variance is the posterior under a conjugate scaled-inverse-chi-square prior whose scale (the
      variance pooled across points) and strength ``nu0`` are fitted to the data by empirical Bayes
      (:func:`shrunk_variance` states the formula), separately for the IN and the OUT values
      (``offline``: OUT only). Strongest with few references; with many it approaches
      ``"per_example"`` (ddof=1), and with one reference per set (no point has two values in a
      set) it is ``"fixed"`` exactly. ``prior_df`` fixes ``nu0`` (``None``: estimated).
    """
    if variant not in LIRA_VARIANTS:
        raise ValueError(f"variant must be one of {LIRA_VARIANTS}, got {variant!r}.")
    if variance is None:
        variance = "fixed" if fixed_variance else "per_example"
    elif variance not in LIRA_VARIANCES:
        raise ValueError(f"variance must be one of {LIRA_VARIANCES}, got {variance!r}.")
    elif fixed_variance and variance != "fixed":
        raise ValueError(f"fixed_variance=True contradicts variance={variance!r}; pass variance= alone.")
    if prior_df is not None and (variance != "shrunk" or not float(prior_df) >= 0):
        raise ValueError(f"prior_df must be a number >= 0 (or inf) and needs variance='shrunk'; got {prior_df!r}.")
    target = _as_nac(target_logits, 0, "target_logits")
    n_points = target.shape[0]
    y = as_labels(labels, n_points, target.shape[-1])
    phi_t = logit_scale(target, y[:, None])  # [N, A]
    if variant == "global":
        return phi_t.mean(axis=-1)

    if reference_logits is None:
        raise ValueError(f"LiRA {variant} needs reference_logits; use variant='global' without them.")
    refs = as_reference_logits(reference_logits, target)
    phi_r = logit_scale(refs, y[:, None])  # [M, N, A]
    return lira_from_statistics(phi_t, phi_r, keep, variant=variant, variance=variance, prior_df=prior_df)


def lira_from_statistics(
    phi_t: np.ndarray,
    phi_r: np.ndarray,
    keep: np.ndarray | None,
    *,
    variant: Literal["online", "offline"] = "online",
    variance: Literal["per_example", "fixed", "shrunk"] = "per_example",
    prior_df: float | None = None,
) -> np.ndarray:
    """LiRA's Gaussian test on any per-point statistic: the target's ``phi_t [N, A]`` against the
    references' ``phi_r [M, N, A]`` (IN/OUT by ``keep [M, N]``), as :func:`lira_scores` describes. The
    statistic is the caller's: the logit-scaled confidence of a classifier, or a text's mean token
    log-likelihood under a language model (a mean of many terms, near-Gaussian across models)."""
    n_refs, n_points = phi_r.shape[0], phi_r.shape[1]
    if keep is None and variant == "online":
        raise ValueError("LiRA online needs keep [M, N] saying which reference trained on which point.")
    keep_b = as_keep(keep, n_refs, n_points)
    k_in = keep_b[:, :, None]
    k_out = ~k_in
    if not k_out.any(axis=0).all():
        raise ValueError("every point needs at least one OUT reference (a reference that did not train on it).")

    mu_out, s_out = _masked_median_std(phi_r, k_out)
    if variant == "offline":
        if variance == "fixed":
            s_out = np.full_like(mu_out, _std(phi_r, k_out))
        elif variance == "shrunk":
            s_out = shrunk_variance(phi_r, [k_out], prior_df=prior_df, fallback=_std(phi_r, k_out) ** 2)[0]
        return stats.norm.logcdf((phi_t - mu_out) / s_out).mean(axis=-1)

    if not k_in.any(axis=0).all():
        raise ValueError("LiRA online needs at least one IN reference per point; use balanced_keep.")
    mu_in, s_in = _masked_median_std(phi_r, k_in)
    if variance == "fixed":
        s_in = s_out = np.full_like(mu_in, _std(phi_r, k_in))
    elif variance == "shrunk":
        # IN and OUT each get their own prior: members' confidences vary less between models than
        # non-members', and that difference carries most of the gain at few references (measured on
        # mnist1d: 0.26 TPR at 1% FPR with 4 references, 0.15 with one variance shared by both).
        # The fallback, one reference per set, is "fixed" exactly: the IN values' std for both.
        fallback = _std(phi_r, k_in) ** 2
        s_in = shrunk_variance(phi_r, [k_in], prior_df=prior_df, fallback=fallback)[0]
        s_out = shrunk_variance(phi_r, [k_out], prior_df=prior_df, fallback=fallback)[0]
    log_in = stats.norm.logpdf(phi_t, mu_in, s_in)
    log_out = stats.norm.logpdf(phi_t, mu_out, s_out)
    return (log_in - log_out).mean(axis=-1)


# ------------------------------------------------------------------------------ registration

# Below this many references per-example variances are too noisy (Carlini et al. 2022, Fig. 9).
FIXED_VARIANCE_BELOW = 64


def default_variance(n_references: int) -> Literal["fixed", "per_example"]:
    """LiRA's variance at ``n_references``: one shared (``fixed``) below :data:`FIXED_VARIANCE_BELOW`,
    each point's own above."""
    return "fixed" if n_references < FIXED_VARIANCE_BELOW else "per_example"


def _lira(variant: str, variance: str | None) -> ScoreFn:
    """A registered LiRA: ``variance=None`` picks fixed below 64 references, per-example above."""

    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
        assert refs is not None
        chosen = variance or default_variance(refs.n_references)
        # Offline also needs keep: it fits the OUT references of each point only.
        s = lira_scores(logits, refs.logits, labels, refs.keep, variant=variant, variance=chosen)  # type: ignore[arg-type]
        return s, f"{variant}, {chosen.replace('_', '-')} variance"

    return score


def gaussian_fit_of(refs: References, labels: np.ndarray, confidence: float) -> GaussianFit | None:
    """LiRA's Gaussian-fit check on these references' logit-scaled confidences
    (:func:`pytest_privacy.stats.gaussian_fit.gaussian_fit`), as a result field; None when some point
    has fewer than 3 references IN or OUT."""
    y = as_labels(labels, refs.logits.shape[1], refs.logits.shape[-1])
    check = gaussian_fit(logit_scale(refs.logits, y[:, None]), refs.keep, confidence=confidence)
    if check is None:
        return None
    return GaussianFit(
        p_value=check.p_value, rejected=check.rejected, n_points=check.n_points, worst=list(check.worst),
        worst_significant=check.worst_significant, n_degenerate=check.n_degenerate,
    )


def _global(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
    return lira_scores(logits, None, labels, variant="global"), "global"


register_attack(Attack("lira", "lira", True, "LiRA online; fixed variance below 64 references", _lira("online", None), diagnose=gaussian_fit_of))
register_attack(
    Attack(
        "lira_offline", "lira", True, "LiRA offline (OUT references only); fixed variance below 64 references",
        _lira("offline", None), diagnose=gaussian_fit_of,
    )
)
register_attack(Attack("lira_online_fixed", "lira", True, "LiRA online, one shared variance", _lira("online", "fixed"), diagnose=gaussian_fit_of))
register_attack(
    Attack(
        "lira_online_per_example", "lira", True, "LiRA online, per-example variances", _lira("online", "per_example"), diagnose=gaussian_fit_of,
    )
)
register_attack(Attack("lira_offline_fixed", "lira", True, "LiRA offline, one shared variance", _lira("offline", "fixed"), diagnose=gaussian_fit_of))
register_attack(
    Attack(
        "lira_offline_per_example", "lira", True, "LiRA offline, per-example variances", _lira("offline", "per_example"), diagnose=gaussian_fit_of,
    )
)
register_attack(
    Attack(
        "lira_shrunk", "lira", True,
        "LiRA online, per-example variances shrunk towards the pooled variance (BaVarIA-style empirical Bayes)",
        _lira("online", "shrunk"), diagnose=gaussian_fit_of,
    )
)
register_attack(
    Attack(
        "lira_offline_shrunk", "lira", True,
        "LiRA offline, per-example variances shrunk towards the pooled variance (BaVarIA-style empirical Bayes)",
        _lira("offline", "shrunk"), diagnose=gaussian_fit_of,
    )
)
register_attack(Attack("lira_global", "baseline", False, "LiRA's global threshold on the logit-scaled confidence", _global))
