"""Reference-free membership scores of a language model on a :class:`~pytest_privacy.data.text.TextDataset`,
by name: the statistics read once (:func:`.likelihood.token_statistics`), then the score
(:mod:`.scores`). What the text gates will run; from a notebook, gate the scores with
:func:`pytest_privacy.stats.gates.gate`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...data.likelihood import token_statistics
from ...strict import unknown_name_error
from .scores import lm_loss, min_k, min_k_plus_plus, ref_base, zlib_score

__all__ = ["LM_ATTACKS", "lm_scores"]

#: The reference-free LM attacks by name (``ref_base`` needs the base model the fine-tune started from).
LM_ATTACKS = ("lm_loss", "zlib", "min_k", "min_k_plus_plus", "ref_base")


def lm_scores(
    model: Any, data: Any, attack: str = "min_k_plus_plus", *, base: Any = None, k: float = 0.2, batch_size: int = 16,
    device: str = "cpu",
) -> np.ndarray:
    """Scores ``[N]`` (higher = more likely a member) of ``attack`` against ``model`` on the texts of
    ``data`` (a TextDataset). ``zlib`` needs the texts themselves; ``ref_base`` the ``base`` model."""
    from ...data.text import TextDataset

    if not isinstance(data, TextDataset):
        raise TypeError(f"data must be a pytest_privacy.TextDataset (token ids and their mask), got {type(data).__name__}.")
    if attack not in LM_ATTACKS:
        raise ValueError(f"LM attack: {unknown_name_error('attack', str(attack), list(LM_ATTACKS))}")
    if attack == "ref_base" and base is None:
        raise ValueError("ref_base compares with the base model the fine-tune started from: pass base=.")
    if attack == "zlib" and getattr(data, "texts", None) is None:
        raise ValueError("zlib reads the texts themselves: build the TextDataset from texts, not ids.")
    ids, mask = data.ids, data.mask
    stats = token_statistics(model, ids, mask, spread=attack == "min_k_plus_plus", batch_size=batch_size, device=device)
    if attack == "lm_loss":
        return lm_loss(stats.lp, mask)
    if attack == "zlib":
        return zlib_score(stats.lp, mask, data.texts)
    if attack == "min_k":
        return min_k(stats.lp, mask, k=k)
    if attack == "min_k_plus_plus":
        assert stats.mu is not None and stats.sigma is not None
        return min_k_plus_plus(stats.lp, stats.mu, stats.sigma, mask, k=k)
    base_stats = token_statistics(base, ids, mask, batch_size=batch_size, device=device)
    return ref_base(stats.lp, base_stats.lp, mask)
