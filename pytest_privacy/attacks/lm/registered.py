"""The language-model attacks in the registry, suite ``lm``: each reads the target's per-token
statistics of the audited texts through a :class:`~.query.TextQuery` and returns ``(scores, variant)``
(DESIGN.md section 10)."""

from __future__ import annotations

import numpy as np

from ..lira import default_variance
from ..registry import Attack, register_attack, register_suite
from .query import TextQuery
from .scores import (
    lm_lira,
    lm_loss,
    lm_rmia_ratio,
    min_k,
    min_k_plus_plus,
    ref_base,
    zlib_score,
)

__all__: list[str] = []

register_suite("lm", "language-model attacks on fine-tuned causal LMs (texts from a TextDataset)")


def _lm_loss(q: TextQuery) -> tuple[np.ndarray, str]:
    return lm_loss(q.statistics().lp, q.mask), "mean token log-likelihood"


def _zlib(q: TextQuery) -> tuple[np.ndarray, str]:
    texts = q.data.text.texts
    if texts is None:
        raise ValueError("zlib reads the texts themselves: build the TextDataset from texts, not ids.")
    return zlib_score(q.statistics().lp, q.mask, texts), "log-likelihood over zlib bits"


def _min_k(q: TextQuery) -> tuple[np.ndarray, str]:
    return min_k(q.statistics().lp, q.mask, k=0.2), "k=0.2"


def _min_k_plus_plus(q: TextQuery) -> tuple[np.ndarray, str]:
    s = q.statistics(spread=True)
    assert s.mu is not None and s.sigma is not None
    return min_k_plus_plus(s.lp, s.mu, s.sigma, q.mask, k=0.2), "k=0.2"


def _ref_base(q: TextQuery) -> tuple[np.ndarray, str]:
    return ref_base(q.statistics().lp, q.base_statistics.lp, q.mask), "target minus base"


def _lira(variant: str):  # type: ignore[no-untyped-def]
    def score(q: TextQuery) -> tuple[np.ndarray, str]:
        refs = q.data.references
        assert refs is not None  # (the runner checks needs_references)
        chosen = default_variance(refs.n_references)
        scores = lm_lira(q.statistics().lp, refs.lp, refs.keep, q.mask, variant=variant, variance=chosen)
        return scores, f"{variant}, {chosen.replace('_', '-')} variance"

    return score


def _rmia_ratio(q: TextQuery) -> tuple[np.ndarray, str]:
    refs = q.data.references
    assert refs is not None  # (the runner checks needs_references)
    return lm_rmia_ratio(q.statistics().lp, refs.lp, refs.keep, q.mask), "online, ratio to p(x), no population"


for _name, _fn, _refs, _what in [  # (Min-K%++ alone reads the next-token spread)
    ("lm_loss", _lm_loss, False, "mean token log-likelihood of each text (minus its loss)"),
    ("zlib", _zlib, False, "log-likelihood over the text's zlib entropy (Carlini et al. 2021)"),
    ("min_k", _min_k, False, "Min-K% Prob: the mean of the lowest 20% token log-likelihoods (Shi et al. 2024)"),
    ("min_k_plus_plus", _min_k_plus_plus, False, "Min-K%++: tokens standardised by the next-token distribution (Zhang et al. 2025)"),
    ("ref_base", _ref_base, False, "target log-likelihood minus the base model's (needs privacy_base_model)"),
    ("lm_lira", _lira("online"), True, "LiRA online on each text's mean log-likelihood over reference fine-tunes"),
    ("lm_lira_offline", _lira("offline"), True, "LiRA offline (OUT references only) on each text's mean log-likelihood"),
    ("lm_rmia_ratio", _rmia_ratio, True, "RMIA's ratio p(x|theta) / p(x) on each text's mean-token probability (no population)"),
]:
    register_attack(Attack(_name, "lm", _refs, _what, score_text=_fn, needs_spread=_name == "min_k_plus_plus"))
