"""The relative membership-inference attack, RMIA (Zarifzadeh, Liu & Shokri, "Low-Cost High-Power
Membership Inference Attacks", ICML 2024): a pairwise likelihood ratio against population points.

Pure numpy, float64 throughout, shapes as in :mod:`pytest_privacy.attacks.lira`: ``target_logits
[N, A, C]``, ``reference_logits [M, N, A, C]``, ``labels [N]``, ``keep [M, N]``; the population adds
``[Z, A, C]``, ``[M, Z, A, C]`` and ``[Z]`` (a 2-D / 3-D input means A = 1).

Recipe (checked against the paper and the reference implementation in privacytrustlab/ml_privacy_meter,
reimplemented here):

- ``p(x|theta)``: the softmax probability of the true label, averaged over the A queries (the mean of the
  probabilities, not of their logarithms). Computed in the log domain, so no probability underflows.
  (The authors' research code instead thresholds ``LR`` per query and takes a majority vote over the
  queries, which costs ``N x Z x A`` comparisons; with A = 1 the two coincide. Its optional trimmed
  means, temperature and soft-margin signals are not reproduced.)
- ``p(x)``: the average of ``p(x|theta')`` over reference models ``theta'``, i.e. an estimate of the marginal
  over models whose training set contains ``x`` with probability 1/2.

  - ``online``: ``(mean over IN references + mean over OUT references) / 2``, which is the plain
    mean over all references when ``keep`` is balanced (:func:`~pytest_privacy.engine.seeds.
    balanced_keep`); with ``keep=None`` the plain mean over all references.
  - ``offline`` (OUT references only; ``keep=None`` means every reference is OUT): the paper's linear
    correction ``p(x) = ((1 + a) * p_OUT(x) + (1 - a)) / 2``. It follows from assuming
    ``p_IN(x) = a * p_OUT(x) + (1 - a)`` and ``p(x) = (p_IN(x) + p_OUT(x)) / 2``; ``a = 1`` means no
    correction (``p(x) = p_OUT(x)``), smaller ``a`` assumes more memorisation. The reference code
    uses 0.3 by default and tunes ``a`` in [0, 1] on a pair of reference models.
- ``p(z)`` for a population point: the mean over every reference (none trained on ``z``); in
  ``offline`` mode it gets the same linear correction as ``p(x)``, as the reference code does, so
  that both are estimates of the same marginal.
- ``LR(x, z) = [p(x|theta) / p(x)] / [p(z|theta) / p(z)]``; ``score(x)`` = the fraction of population points
  with ``LR(x, z) > gamma`` (strict, as in the paper's definition and the reference code).

For a fixed population, ``score(x)`` is a non-decreasing function of ``p(x|theta) / p(x)``: the population
and ``gamma`` set the scale (a fraction of typical non-members beaten by a factor ``gamma``) and the
resolution (multiples of ``1/Z``), not the ranking. Points beyond every ``z`` tie at 1, so low-FPR
audits need a population of several thousand points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special

from ._arrays import as_keep, as_labels, as_reference_logits
from ._arrays import as_nac as _as_nac
from .registry import Attack, ScoreFn, register_attack

if TYPE_CHECKING:
    from ..data import References

__all__ = ["RMIA_VARIANTS", "log_ratio_from_log_probs", "rmia_log_ratio", "rmia_scores"]

RMIA_VARIANTS = ("online", "offline")


def _log_query_mean_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log mean_a softmax(logits)[label]`` for ``logits [..., P, A, C]``, ``labels [P]``."""
    y = np.broadcast_to(labels[:, None, None], logits.shape[:-1] + (1,))
    log_p = np.take_along_axis(logits, y, axis=-1)[..., 0] - special.logsumexp(logits, axis=-1)
    return special.logsumexp(log_p, axis=-1) - np.log(logits.shape[-2])


def _log_masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``log mean_m exp(values[m])`` over axis 0 where ``mask`` (every column has one True)."""
    count = mask.sum(axis=0)
    return special.logsumexp(np.where(mask, values, -np.inf), axis=0) - np.log(count)


def _offline_correction(log_p_out: np.ndarray, a: float) -> np.ndarray:
    """``log(((1 + a) * p_out + (1 - a)) / 2)`` from ``log p_out``, without leaving the log domain."""
    if a == 1.0:
        return log_p_out
    return np.logaddexp(np.log((1.0 + a) / 2.0) + log_p_out, np.log((1.0 - a) / 2.0))


def rmia_scores(
    target_logits: np.ndarray,
    reference_logits: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray | None = None,
    *,
    population_target_logits: np.ndarray,
    population_reference_logits: np.ndarray,
    population_labels: np.ndarray,
    variant: Literal["online", "offline"] = "offline",
    offline_a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA membership scores in [0, 1], higher = more likely a member (Zarifzadeh et al. 2024).

    ``score(x)`` is the fraction of population points ``z`` with
    ``LR(x, z) = [p(x|theta) / p(x)] / [p(z|theta) / p(z)] > gamma``, where ``p(.|theta)`` is the target's
    true-label softmax probability averaged over the A queries and ``p(.)`` its average over the
    reference models (see the module docstring for the exact recipe):

    - ``variant="online"``: ``p(x) = (mean_IN + mean_OUT) / 2`` over the references that did / did not
      train on ``x`` (``keep=None``: the plain mean over all references, assuming each included ``x``
      with probability 1/2).
    - ``variant="offline"``: OUT references only (``keep=None`` means all are OUT) with the paper's
      linear correction ``p(x) = ((1 + offline_a) * p_OUT(x) + (1 - offline_a)) / 2``; ``p(z)`` gets
      the same correction.

    Population assumption: the ``Z`` population points are drawn from the same distribution as the
    audit points, are *not* audit points, and neither the target nor any reference trained on them,
    so ``p(z)`` is the mean over every reference. Their logits must come from the same models and the
    same A queries as the audit points.

    ``gamma > 0`` compares ``log LR > log gamma``; sorting the population's ratios once and a binary
    search per point make this ``O((N + Z) log Z)`` with no ``N x Z`` matrix. Logits may also be
    log-probabilities (the recipe is invariant to adding a constant to each row).
    """
    target, y, refs = _checked(target_logits, reference_logits, labels, variant, offline_a)
    n_points, n_queries, n_classes = target.shape
    n_refs = refs.shape[0]
    if not (isinstance(gamma, (int, float, np.floating)) and 0.0 < float(gamma) < np.inf):
        raise ValueError(f"gamma must be a positive finite number (the paper's default is 1); got {gamma!r}.")

    pop_target = _as_nac(population_target_logits, 0, "population_target_logits")
    n_pop = pop_target.shape[0]
    if n_pop == 0:
        raise ValueError(
            "the population is empty: RMIA compares each point with population points z that no "
            "model trained on; pass a few thousand held-out points."
        )
    if pop_target.shape[1:] != (n_queries, n_classes):
        raise ValueError(
            f"population_target_logits {pop_target.shape} must be [Z, {n_queries}, {n_classes}]: the "
            "same queries (A) and classes (C) as target_logits."
        )
    y_pop = as_labels(population_labels, n_pop, n_classes, "population_labels")
    pop_refs = _as_nac(population_reference_logits, 1, "population_reference_logits")
    if pop_refs.shape != (n_refs, *pop_target.shape):
        raise ValueError(
            f"population_reference_logits {pop_refs.shape} must be [M, *population_target_logits.shape]"
            f" = [{n_refs}, {', '.join(map(str, pop_target.shape))}]: the same {n_refs} reference "
            "models as reference_logits."
        )

    log_ratio = _log_ratios(
        np.concatenate([target, pop_target]), np.concatenate([refs, pop_refs], axis=1),
        np.concatenate([y, y_pop]), keep, n_points, variant, float(offline_a),
    )
    ratio_x, ratio_z = log_ratio[:n_points], np.sort(log_ratio[n_points:])
    # LR(x, z) > gamma  <=>  ratio_z < ratio_x - log(gamma): count the population strictly below.
    beaten = np.searchsorted(ratio_z, ratio_x - np.log(float(gamma)), side="left")
    return beaten / n_pop


def _checked(
    target_logits: np.ndarray, reference_logits: np.ndarray, labels: np.ndarray, variant: str, offline_a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The audit's ``target [N, A, C]``, ``labels [N]`` and ``references [M, N, A, C]``, validated with
    RMIA's options (both scores check their inputs the same way)."""
    if variant not in RMIA_VARIANTS:
        raise ValueError(f"variant must be one of {RMIA_VARIANTS}, got {variant!r}.")
    if not (isinstance(offline_a, (int, float, np.floating)) and 0.0 <= float(offline_a) <= 1.0):
        raise ValueError(
            f"offline_a must be a number in [0, 1] (1 = no correction, p(x) = p_OUT(x)); got {offline_a!r}."
        )
    target = _as_nac(target_logits, 0, "target_logits")
    y = as_labels(labels, target.shape[0], target.shape[2])
    refs = as_reference_logits(reference_logits, target)
    if refs.shape[0] == 0:
        raise ValueError("RMIA needs at least one reference model; reference_logits has M = 0.")
    return target, y, refs


def rmia_log_ratio(
    target_logits: np.ndarray,
    reference_logits: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray | None = None,
    *,
    variant: Literal["online", "offline"] = "online",
    offline_a: float = 0.3,
) -> np.ndarray:
    """RMIA's per-point ratio ``log[p(x|theta) / p(x)]`` ``[N]``, higher = more likely a member: the
    statistic RMIA's score compares with population points, with no population.

    :func:`rmia_scores` is a non-decreasing function of this ratio for any population and ``gamma``
    (the fraction of population ratios it beats), so thresholding the ratio reaches every operating
    point RMIA's score reaches, and more: the score is the ratio rounded to multiples of ``1/Z``, and
    the points beyond every population point tie at 1. As a membership test the ratio is RMIA with an
    unlimited population (Zarifzadeh et al.'s ``gamma`` and ``Z`` set the score's scale, not its
    ranking), and it holds no data out of the audit. ``p(.)`` is as in :func:`rmia_scores`.
    """
    target, y, refs = _checked(target_logits, reference_logits, labels, variant, offline_a)
    return _log_ratios(target, refs, y, keep, target.shape[0], variant, float(offline_a))


def _log_ratios(
    target: np.ndarray, refs: np.ndarray, y: np.ndarray, keep: np.ndarray | None, n_points: int,
    variant: str, offline_a: float,
) -> np.ndarray:
    """``log[p(.|theta) / p(.)]`` for every row of ``target [P, A, C]`` / ``refs [M, P, A, C]``: the
    first ``n_points`` rows are audit points (``keep [M, n_points]`` says which references trained on
    them), the rest population points that no reference trained on.

    Audit and population points go through the same row-wise code, so identical inputs give bitwise
    identical ratios (ties are then decided by the strict '>' exactly as written)."""
    return log_ratio_from_log_probs(
        _log_query_mean_prob(target, y), _log_query_mean_prob(refs, y), keep, n_points=n_points, variant=variant,
        offline_a=offline_a,
    )


def log_ratio_from_log_probs(
    log_p_target: np.ndarray, log_p_refs: np.ndarray, keep: np.ndarray | None, *, n_points: int | None = None,
    variant: str = "online", offline_a: float = 0.3,
) -> np.ndarray:
    """RMIA's ``log[p(x|theta) / p(x)]`` from log-probabilities already read: the target's
    ``log_p_target [P]`` and the references' ``log_p_refs [M, P]``, the first ``n_points`` rows (all,
    by default) audit points with ``keep [M, n_points]``, the rest population points no reference
    trained on; ``p(x)`` as :func:`rmia_scores` says. Any probability of a point under a model will
    do: a classifier's true-label probability, or a text's mean-token probability (``lm_rmia_ratio``)."""
    n_refs, n_rows = log_p_refs.shape
    n_points = n_rows if n_points is None else n_points
    keep_b = as_keep(keep, n_refs, n_points)
    is_in = np.concatenate([keep_b, np.zeros((n_refs, n_rows - n_points), dtype=bool)], axis=1)  # [M, P]

    if variant == "offline":
        if not (~keep_b).any(axis=0).all():
            missing = np.flatnonzero(~(~keep_b).any(axis=0))[:5].tolist()
            raise ValueError(
                f"offline RMIA needs at least one OUT reference per point; points {missing} are IN "
                "for every reference. Use balanced_keep, or variant='online'."
            )
        log_p = _offline_correction(_log_masked_mean(log_p_refs, ~is_in), offline_a)
    elif keep is None:
        log_p = _log_masked_mean(log_p_refs, np.ones_like(is_in))
    else:
        has_in, has_out = keep_b.any(axis=0), (~keep_b).any(axis=0)
        if not (has_in & has_out).all():
            missing = np.flatnonzero(~(has_in & has_out))[:5].tolist()
            raise ValueError(
                f"online RMIA with keep needs an IN and an OUT reference for every point; points "
                f"{missing} lack one. Use balanced_keep, keep=None (references trained on random "
                "halves, membership unknown), or variant='offline'."
            )
        log_p = _log_masked_mean(log_p_refs, ~is_in)  # population: every reference is OUT
        log_in = _log_masked_mean(log_p_refs[:, :n_points], keep_b)
        log_p[:n_points] = np.logaddexp(log_in, log_p[:n_points]) - np.log(2.0)

    return log_p_target - log_p


# ------------------------------------------------------------------------------ registration


def _rmia(variant: str) -> ScoreFn:
    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop_logits: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        assert refs is not None and refs.population is not None and pop_logits is not None
        pop = refs.population
        s = rmia_scores(
            logits, refs.logits, labels, refs.keep, population_target_logits=pop_logits,
            population_reference_logits=pop.logits, population_labels=pop.y, variant=variant,
        )
        return s, f"{variant}, {len(pop.y)} population points"

    return score


def _ratio(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop_logits: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    assert refs is not None
    return rmia_log_ratio(logits, refs.logits, labels, refs.keep, variant="online"), "online, ratio to p(x), no population"


register_attack(
    Attack(
        "rmia", "rmia", True, "RMIA offline (Zarifzadeh et al. 2024): likelihood ratio against population points",
        _rmia("offline"), needs_population=True,
    )
)
register_attack(
    Attack(
        "rmia_online", "rmia", True, "RMIA online: IN and OUT references", _rmia("online"), needs_population=True
    )
)
register_attack(
    Attack(
        "rmia_ratio", "rmia", True,
        "RMIA online's likelihood ratio p(x|theta) / p(x), ranked directly: RMIA with an unlimited population,"
        " no data held out",
        _ratio,
    )
)
