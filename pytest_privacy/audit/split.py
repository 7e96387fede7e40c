"""Who trains on what: the one place that decides the target's members, the references' halves,
and the pools held out of every model (a defense's validation pool, RMIA's population)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.seeds import balanced_keep, model_seeds

__all__ = ["Split"]

_TARGET = 0x746172  # the target's spawn key: apart from the references' 0, 1, 2, ...
_MEMBERS, _VALIDATION, _POPULATION = 0, 2, 3  # purposes of the target-keyed draws (1: the target's seed)


def _pool(n_points: int, share: float, seed: int, purpose: int) -> np.ndarray:
    """A seeded pool of ``share`` of the points (at least one), the same for every model."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TARGET, purpose)))
    return np.sort(rng.permutation(n_points)[: max(1, round(share * n_points))])


@dataclass(frozen=True)
class Split:
    """The split of an audit, the same for a recipe and a training function.

    ``keep[m]`` for the M references and the target (last row) and each model's seed (the target's
    last); ``points`` the audited indices; ``validation`` the pool a defense trains against (seen by
    the defended models, so never audited); ``population`` the share held out of every model and of
    the audit as RMIA's population. References train on balanced halves of the audited points; the
    target on its own random half, the same with or without a validation pool, so a defended
    baseline pairs with the undefended target point for point.
    """

    keep: np.ndarray
    seeds: tuple[np.random.SeedSequence, ...]
    points: np.ndarray
    validation: np.ndarray | None
    population: np.ndarray

    @classmethod
    def make(
        cls, n_points: int, n_references: int, seed: int, *, validation: float = 0.0, population: float = 0.0
    ) -> Split:
        """The split of ``n_points`` for ``n_references`` references and the target."""
        points, held_out = np.arange(n_points), np.zeros(0, dtype=np.int64)
        pool = _pool(n_points, validation, seed, _VALIDATION) if validation > 0 else None
        if pool is not None:
            points = np.setdiff1d(points, pool)
        if population > 0:
            held_out = np.setdiff1d(_pool(n_points, population, seed, _POPULATION), [] if pool is None else pool)
            points = np.setdiff1d(points, held_out)
        keep = np.zeros((n_references + 1, n_points), dtype=bool)
        keep[:n_references, points] = balanced_keep(n_references, len(points), seed)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TARGET, _MEMBERS)))
        keep[-1, rng.permutation(n_points)[: n_points // 2]] = True
        if pool is not None:
            keep[-1, pool] = False
        keep[-1, held_out] = False
        target_seed = np.random.SeedSequence(seed, spawn_key=(_TARGET, 1))  # independent of M
        return cls(keep, (*model_seeds(seed, range(n_references)), target_seed), points, pool, held_out)

    @property
    def n_references(self) -> int:
        return len(self.keep) - 1

    @property
    def target(self) -> int:
        """The target's index among the models (the last)."""
        return len(self.keep) - 1
