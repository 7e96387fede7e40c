"""AuditSetup: what one audit hands to the attacks: the target, the references, the audit data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import MembershipData, References
from ..data.text import TextDataset
from ..data.text_membership import TextMembershipData, TextReferences

if TYPE_CHECKING:
    from ..engine.ensemble import Ensemble

__all__ = ["AuditSetup"]


@dataclass
class AuditSetup:
    """The trained target and references of one audit, and its data.

    ``points`` are the indices of the data set's points that are audited: all of them, except the
    pools held out of every model (a defense's validation pool, which its models have seen, and
    RMIA's population). ``ensemble`` holds a recipe's models (the target last); None for a
    training function, whose target is a :class:`~pytest_privacy.data.querying.CachedTarget`.
    """

    target: Any
    x: np.ndarray
    y: np.ndarray
    references: References | TextReferences | None  # None for a model that answers only labels
    seed: int
    train_seconds: float
    points: np.ndarray
    target_keep: np.ndarray  # the target's row of the split
    ensemble: Ensemble | None = None
    data_id: str | None = None  # the data set's digest (what the cache keys cover)
    text: TextDataset | None = None  # a language model's texts (x is then their ids and mask, [N, 2, T])

    @property
    def is_member(self) -> np.ndarray:
        """Which audit points the target trained on."""
        return self.target_keep[self.points]

    def membership_data(self) -> MembershipData:
        """Audit points, the target's membership, and the references' logits (for texts: a
        :class:`~pytest_privacy.data.text_membership.TextMembershipData` with the references' log-likelihoods)."""
        if self.text is not None:
            data: MembershipData = TextMembershipData(self.text.subset(self.points), self.is_member, self.references)
        else:
            data = MembershipData(self.x[self.points], self.y[self.points], self.is_member, self.references)
        if self.data_id is not None:
            data.data_id = self.data_id  # the same whichever points this seed's split audits
        return data
