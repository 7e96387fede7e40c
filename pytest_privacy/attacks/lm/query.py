"""What a language-model attack is handed: :class:`TextQuery`, the target and the audited texts, whose
per-token statistics it reads once (and with the spread Min-K%++ needs only when asked)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data.likelihood import TokenStatistics, token_statistics
from ...data.text_membership import TextMembershipData

__all__ = ["TextQuery"]


@dataclass
class TextQuery:
    """The ``model`` under audit, the audit ``data`` (texts, references, base model) and the device the
    statistics are read on. ``model=None`` with statistics already read (:meth:`recorded`) is a
    recipe audit's trial: a reference fine-tune as the target, known by its log-likelihoods alone."""

    model: Any
    data: TextMembershipData
    device: str = "cpu"
    _read: dict[bool, TokenStatistics] = field(default_factory=dict, repr=False)
    # the base model's statistics, read once and shared by every query of one audit (a recipe's trials)
    _base: dict[str, TokenStatistics] = field(default_factory=dict, repr=False)

    @classmethod
    def recorded(cls, data: TextMembershipData, lp: np.ndarray, *, base: dict[str, TokenStatistics]) -> TextQuery:
        """A query of a model known only by its log-likelihoods ``lp [N, T]`` of ``data``'s texts;
        ``base`` is the memo of the base model's statistics, shared with the other trials."""
        stats = TokenStatistics(lp=lp, mu=None, sigma=None, mask=data.text.mask)
        return cls(None, data, _read={False: stats}, _base=base)

    @property
    def mask(self) -> np.ndarray:
        """Which tokens are real, ``[N, T]``."""
        return self.data.text.mask

    def statistics(self, *, spread: bool = False) -> TokenStatistics:
        """The target's per-token statistics of the audited texts, read once (``spread`` adds mu and
        sigma; a read with them serves a read without)."""
        have = self._read.get(True) or (None if spread else self._read.get(False))
        if have is None:
            if self.model is None:  # (the runner pools only attacks that read log-likelihoods alone)
                raise ValueError("this model is known by its log-likelihoods alone: its next-token spread was not kept.")
            text = self.data.text
            have = self._read[spread] = token_statistics(self.model, text.ids, text.mask, spread=spread, device=self.device)
        return have

    @property
    def base_statistics(self) -> TokenStatistics:
        """The base model's statistics of the audited texts (``ref_base``), read once; an error without one."""
        if "base" in self._base:
            return self._base["base"]
        if self.data.base is None:
            raise ValueError(
                "ref_base compares with the base model the fine-tunes started from: define a privacy_base_model "
                "fixture returning it (or build TextMembershipData(..., base=model))."
            )
        text = self.data.text
        self._base["base"] = token_statistics(self.data.base, text.ids, text.mask, device=self.device)
        return self._base["base"]
