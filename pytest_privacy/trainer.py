"""PrivacyTrainer: from a recipe and a data set to a target model, references and audit data.

The audit population is the whole data set. The target trains on a seeded random half (its
members); the M references train on ``balanced_keep`` halves, so every audit point is IN for half
of them. Target and references are one ensemble of M + 1 models, trained as one vectorised program.
Results are memoised per (recipe, data, M, seed, device) for the life of the trainer.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import MembershipData, References
from .training.keep import balanced_keep
from .training.recipe import TrainingRecipe

if TYPE_CHECKING:
    from torch import nn

    from .training.ensemble import Ensemble

__all__ = ["AuditSetup", "PrivacyTrainer", "as_dataset"]


def as_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accept ``(x, y)`` (a tuple, ``Dataset``, or anything with ``.x``/``.y``) and check it."""
    if hasattr(dataset, "x") and hasattr(dataset, "y"):
        x, y = dataset.x, dataset.y
    else:
        try:
            x, y = dataset
        except (TypeError, ValueError):
            raise TypeError(
                f"privacy_dataset must return (x, y) arrays, got {type(dataset).__name__}."
            ) from None
    data = MembershipData(x, y, np.arange(len(x)) % 2 == 0)  # validates x and y the same way
    return data.x, data.y


def target_keep(n_points: int, seed: int) -> np.ndarray:
    """The target's members: a seeded random half of the audit points."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x746172,)))
    keep = np.zeros(n_points, dtype=bool)
    keep[rng.permutation(n_points)[: n_points // 2]] = True
    return keep


@dataclass
class AuditSetup:
    """Everything one audit needs: the trained ensemble (last model = target) and the data."""

    ensemble: Ensemble
    x: np.ndarray
    y: np.ndarray
    references: References
    seed: int
    train_seconds: float

    @property
    def target(self) -> nn.Module:
        """The target model: trained on a random half of the audit points (its members)."""
        return self.ensemble.model(len(self.ensemble) - 1)

    @property
    def is_member(self) -> np.ndarray:
        """Which audit points the target trained on."""
        return self.ensemble.keep[-1]

    def membership_data(self) -> MembershipData:
        """Audit points, the target's membership, and the references' logits."""
        return MembershipData(self.x, self.y, self.is_member, self.references)


@dataclass
class PrivacyTrainer:
    """Trains and memoises audit setups, and counts the models it trained."""

    _memo: dict[str, AuditSetup] = field(default_factory=dict)
    models_trained: int = 0
    seconds_training: float = 0.0

    def audit(
        self, recipe: TrainingRecipe, dataset: Any, *, n_references: int, seed: int, device: str = "auto"
    ) -> AuditSetup:
        """Train (or reuse) the target and ``n_references`` references of ``recipe`` on ``dataset``."""
        from .training.ensemble import train_ensemble

        if not isinstance(recipe, TrainingRecipe):
            raise TypeError(
                f"privacy_recipe must return a pytest_privacy.TrainingRecipe, got {type(recipe).__name__}."
            )
        x, y = as_dataset(dataset)
        digest = hashlib.sha256()
        for part in (recipe.canonical_json().encode(), x.tobytes(), y.tobytes(), repr((x.shape, n_references, seed, device)).encode()):
            digest.update(part)
        key = digest.hexdigest()
        if key not in self._memo:
            keep = np.vstack([balanced_keep(n_references, len(x), seed), target_keep(len(x), seed)])
            start = time.perf_counter()
            ensemble = train_ensemble(recipe, x, y, keep, seed=seed, device=device)
            elapsed = time.perf_counter() - start
            self.models_trained += len(ensemble)
            self.seconds_training += elapsed
            refs = References.from_ensemble(ensemble, x, models=range(n_references))
            self._memo[key] = AuditSetup(ensemble, x, y, refs, seed, elapsed)
        return self._memo[key]
