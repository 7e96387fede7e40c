"""Sequence membership scores of a language model, from per-token log-likelihoods (DESIGN.md,
section 10). Higher = more likely a member. Numpy only, float64 accumulation.

Every score reads ``lp [N, T]``: ``lp[i, t] = log p(x_t | x_<t)`` of text ``i`` under the model, and
``mask [N, T]`` (True on a text's real tokens, False on padding). A text's scored tokens are its real
tokens at ``t >= 1`` (the first token has no context to be predicted from); ``n_i`` of them.

- :func:`lm_loss`: ``mean_t lp_t``, minus the mean token negative log-likelihood.
- :func:`zlib_score` (Carlini et al. 2021): ``(mean_t lp_t) / zlib_bits``, with
  ``zlib_bits = 8 * len(zlib.compress(text_bytes))``.
- :func:`min_k` (Shi et al. 2024): the mean of the ``ceil(k n)`` smallest ``lp_t``.
- :func:`min_k_plus_plus` (Zhang et al. 2025): ``z_t = (lp_t - mu_t) / sigma_t`` with ``mu_t`` and
  ``sigma_t`` the mean and standard deviation of ``log p_v`` under the model's next-token
  distribution at ``t``; the mean of the ``ceil(k n)`` smallest ``z_t``.
- :func:`ref_base`: ``mean_t lp_t`` under the target less the same under the base model the
  fine-tune started from.
- :func:`lm_lira`: LiRA on the per-text statistic ``mean_t lp_t``, IN/OUT Gaussians over the
  reference fine-tunes (:func:`pytest_privacy.attacks.lira.lira_from_statistics`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from ...stats.checks import check_number

__all__ = ["lm_lira", "lm_loss", "lm_rmia_ratio", "min_k", "min_k_plus_plus", "ref_base", "scored_tokens", "zlib_bits", "zlib_score"]


def scored_tokens(lp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Which entries of ``lp [N, T]`` a score reads: real tokens (``mask``) at ``t >= 1``; a
    ValueError when the shapes differ, a value read is not finite, or a text has no scored token."""
    lp, mask = np.asarray(lp), np.asarray(mask)
    if lp.ndim != 2 or lp.shape != mask.shape:
        raise ValueError(
            f"per-token log-likelihoods lp [N, T] and mask [N, T] must have one shape, got {lp.shape} and {mask.shape}."
        )
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be boolean (True on real tokens), got dtype {mask.dtype}.")
    scored = mask.copy()
    scored[:, 0] = False  # the first token is predicted from nothing
    empty = np.flatnonzero(~scored.any(axis=1))
    if empty.size:
        raise ValueError(
            f"{empty.size} text(s) have fewer than 2 real tokens (first: index {int(empty[0])}): a text's score "
            "reads the tokens after its first; drop empty or one-token texts."
        )
    bad = scored & ~np.isfinite(lp)
    if bad.any():
        i, t = map(int, np.argwhere(bad)[0])
        raise ValueError(f"log-likelihoods must be finite on scored tokens; text {i}, token {t} is {lp[i, t]}.")
    return scored


def _mean(values: np.ndarray, scored: np.ndarray) -> np.ndarray:
    return np.where(scored, values.astype(np.float64), 0.0).sum(axis=1) / scored.sum(axis=1)


def lm_loss(lp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mean_t lp_t`` per text ``[N]`` (minus the mean token loss)."""
    return _mean(np.asarray(lp), scored_tokens(lp, mask))


def zlib_bits(texts: Sequence[str | bytes]) -> np.ndarray:
    """``8 * len(zlib.compress(text_bytes))`` per text (UTF-8 for ``str``)."""
    return np.array(
        [8 * len(zlib.compress(t.encode("utf-8") if isinstance(t, str) else bytes(t))) for t in texts], dtype=np.float64
    )


def zlib_score(lp: np.ndarray, mask: np.ndarray, texts: Sequence[str | bytes]) -> np.ndarray:
    """``(mean_t lp_t) / zlib_bits`` per text: the model's log-likelihood against a generic
    compressor's, so text that is merely easy (repetitive, common) does not look like a member."""
    if len(texts) != np.asarray(lp).shape[0]:
        raise ValueError(f"zlib needs one text per row of lp: {len(texts)} texts for {np.asarray(lp).shape[0]} rows.")
    return lm_loss(lp, mask) / zlib_bits(texts)


def _lowest_mean(values: np.ndarray, scored: np.ndarray, k: float) -> np.ndarray:
    k = check_number("k", k, "(0, 1]", why="the share of each text's lowest tokens averaged")
    sorted_values = np.sort(np.where(scored, values.astype(np.float64), np.inf), axis=1)  # the unscored last
    n = scored.sum(axis=1)
    take = np.ceil(k * n - 1e-12).astype(int)  # ceil(k n), k n = 2.0000000000000004 read as 2
    positions = np.arange(values.shape[1])[None, :]
    return np.where(positions < take[:, None], sorted_values, 0.0).sum(axis=1) / take


def min_k(lp: np.ndarray, mask: np.ndarray, *, k: float = 0.2) -> np.ndarray:
    """The mean of each text's ``ceil(k n)`` lowest token log-likelihoods: a member has few
    surprising tokens."""
    return _lowest_mean(np.asarray(lp), scored_tokens(lp, mask), k)


_FLAT = 1e-5  # a standard deviation this small, relative to the mean log-probability, is float32 rounding


def min_k_plus_plus(lp: np.ndarray, mu: np.ndarray, sigma: np.ndarray, mask: np.ndarray, *, k: float = 0.2) -> np.ndarray:
    """Min-K%++: each token's log-likelihood standardised by the model's own next-token distribution
    (``(lp_t - mu_t) / sigma_t``), then the mean of the ``ceil(k n)`` lowest. A token where the model
    is sure of another answer counts more than one where every answer is alike."""
    lp, mu, sigma = (np.asarray(a, dtype=np.float64) for a in (lp, mu, sigma))
    if not lp.shape == mu.shape == sigma.shape:
        raise ValueError(f"lp, mu and sigma must have one shape [N, T], got {lp.shape}, {mu.shape} and {sigma.shape}.")
    scored = scored_tokens(lp, mask)
    if (scored & ~(sigma >= 0)).any():
        raise ValueError("sigma must be >= 0 on scored tokens: it is a standard deviation.")
    # sigma = 0: every token the model deems possible is equally likely (a uniform next-token
    # distribution, e.g. an untrained zero-initialised head), so lp equals mu and the token is exactly
    # typical: z = 0, the limit, rather than 0 / 0. "Zero" to the statistics' own precision: they are
    # reduced and stored in float32 (resolution 1.2e-7 relative; a few roundings), where a uniform
    # distribution's sigma comes out as rounding noise, not 0.
    tolerance = _FLAT * np.maximum(1.0, np.abs(mu))
    flat = scored & (sigma <= tolerance)
    if (np.abs(lp - mu)[flat] > tolerance[flat]).any():
        raise ValueError("where sigma = 0 every possible token is equally likely, so lp must equal mu there; it does not.")
    z = np.where(scored & ~flat, (lp - mu) / np.where(scored & ~flat, sigma, 1.0), 0.0)
    return _lowest_mean(z, scored, k)


def ref_base(lp: np.ndarray, base_lp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mean_t lp_t`` under the target less under the base model it was fine-tuned from: what the
    fine-tune added, not what the text already had going for it."""
    return lm_loss(lp, mask) - lm_loss(base_lp, mask)


def lm_lira(
    lp: np.ndarray, reference_lp: np.ndarray, keep: np.ndarray | None, mask: np.ndarray, *, variant: str = "online",
    variance: str | None = None,
) -> np.ndarray:
    """LiRA for a language model: each text's ``mean_t lp_t`` under the target (``lp [N, T]``) against
    the same under the reference fine-tunes (``reference_lp [M, N, T]``, IN/OUT by ``keep [M, N]``).
    ``variance=None`` is the classifier's rule (:func:`~pytest_privacy.attacks.lira.default_variance`):
    one variance shared by every text below 64 references. Each text's own from a few references is
    noise, and worse when a model's IN references are fewer than its OUT (a recipe audit's trials:
    with 4 references per-example variances ranked members below non-members, AUC 0.16-0.35)."""
    from ..lira import default_variance, lira_from_statistics

    reference_lp = np.asarray(reference_lp)
    if reference_lp.ndim != 3 or reference_lp.shape[1:] != np.asarray(lp).shape:
        raise ValueError(
            f"reference log-likelihoods must be [M, N, T] for texts [N, T] = {np.asarray(lp).shape}, got {reference_lp.shape}."
        )
    phi_t = lm_loss(lp, mask)[:, None]
    phi_r = np.stack([lm_loss(r, mask) for r in reference_lp])[..., None]
    chosen = variance or default_variance(len(reference_lp))
    return lira_from_statistics(phi_t, phi_r, keep, variant=variant, variance=chosen)  # type: ignore[arg-type]


def lm_rmia_ratio(lp: np.ndarray, reference_lp: np.ndarray, keep: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """RMIA's likelihood ratio for a language model (Zarifzadeh et al. 2024, as ``rmia_ratio`` ranks it
    for classifiers: an unlimited population): ``log p(x|theta) - log p(x)``, ``p(x|theta) =
    exp(mean_t lp_t)`` the text's mean-token probability (the statistic LM LiRA reads, as a
    probability) and ``p(x) = (mean over IN references + mean over OUT references) / 2``."""
    from ..rmia import log_ratio_from_log_probs

    reference_lp = np.asarray(reference_lp)
    if reference_lp.ndim != 3 or reference_lp.shape[1:] != np.asarray(lp).shape:
        raise ValueError(
            f"reference log-likelihoods must be [M, N, T] for texts [N, T] = {np.asarray(lp).shape}, got {reference_lp.shape}."
        )
    return log_ratio_from_log_probs(lm_loss(lp, mask), np.stack([lm_loss(r, mask) for r in reference_lp]), keep)
