"""The target of a language-model audit trained by the user's function (the ``target_model`` fixture on
a :class:`~pytest_privacy.data.text.TextDataset`), the same on a cold and a warm cache: asked for its
per-token statistics on texts it was audited on, it answers from the cache; asked anything else
(generation, new texts), it answers from the live model, trained again once when the statistics came
from the cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .likelihood import TokenStatistics
from .querying import RetrainedOnDemand

__all__ = ["CachedTextTarget"]


class CachedTextTarget(RetrainedOnDemand):
    """A fine-tuned model's statistics on the audit texts (``lp``, ``mu``, ``sigma``, each ``[R, T]``,
    rows ``ids``/``mask``), and the model itself (``.model``: the one trained in this session, or the
    same function, seed and split trained again on first use, counted)."""

    def __init__(
        self, ids: np.ndarray, mask: np.ndarray, statistics: dict[str, np.ndarray], train: Callable[[], Any], *,
        model: Any = None,
    ) -> None:
        self._rows = {_row_key(i, m): r for r, (i, m) in enumerate(zip(ids, mask))}
        self._lp, self._mu, self._sigma = statistics["lm_lp"], statistics["lm_mu"], statistics["lm_sigma"]
        super().__init__(train, model)

    def cached_statistics(self, ids: np.ndarray, mask: np.ndarray, spread: bool) -> TokenStatistics | None:
        """The statistics of texts it was audited on, from the cache; None when a text is new."""
        rows = [self._rows.get(_row_key(i, m)) for i, m in zip(ids, mask)]
        if any(r is None for r in rows):
            return None

        def as64(a: np.ndarray) -> np.ndarray:
            return a[rows].astype(np.float64)

        return TokenStatistics(as64(self._lp), as64(self._mu) if spread else None, as64(self._sigma) if spread else None, mask)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


def _row_key(ids: np.ndarray, mask: np.ndarray) -> bytes:
    return np.asarray(ids, dtype=np.int64).tobytes() + np.asarray(mask, dtype=np.bool_).tobytes()
