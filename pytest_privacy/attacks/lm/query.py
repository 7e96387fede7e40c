"""What a language-model attack is handed: :class:`TextQuery`, the target and the audited texts, whose
per-token statistics it reads once (and with the spread Min-K%++ needs only when asked)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data.likelihood import TokenStatistics, token_statistics
from ...data.text_membership import TextMembershipData

__all__ = ["TextQuery"]


@dataclass
class TextQuery:
    """The ``model`` under audit, the audit ``data`` (texts, references, base model) and the device the
    statistics are read on."""

    model: Any
    data: TextMembershipData
    device: str = "cpu"
    _read: dict[bool, TokenStatistics] = field(default_factory=dict, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """Which tokens are real, ``[N, T]``."""
        return self.data.text.mask

    def statistics(self, *, spread: bool = False) -> TokenStatistics:
        """The target's per-token statistics of the audited texts, read once (``spread`` adds mu and
        sigma; a read with them serves a read without)."""
        have = self._read.get(True) or (None if spread else self._read.get(False))
        if have is None:
            text = self.data.text
            have = self._read[spread] = token_statistics(self.model, text.ids, text.mask, spread=spread, device=self.device)
        return have

    @functools.cached_property
    def base_statistics(self) -> TokenStatistics:
        """The base model's statistics of the audited texts (``ref_base``); an error without one."""
        if self.data.base is None:
            raise ValueError(
                "ref_base compares with the base model the fine-tunes started from: define a privacy_base_model "
                "fixture returning it (or build TextMembershipData(..., base=model))."
            )
        text = self.data.text
        return token_statistics(self.data.base, text.ids, text.mask, device=self.device)
