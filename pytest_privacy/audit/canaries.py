"""Canaries for a one-run audit of a differential-privacy claim (Steinke, Nasr & Jagielski 2023).

``m`` audit points become *mislabelled input canaries*: each keeps its input and gets a random
wrong label, so only a model that trained on it (and so memorised that label) gives the label a
high probability. Each canary is included in training independently with probability 1/2; the
rest of the data set trains as usual. One model trains; each canary's score is the log-probability
the model gives its canary label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CanaryRun", "CanarySet", "no_trace"]

_CANARIES = 0x63616E  # the canary draws' spawn key: apart from every audit's


@dataclass(frozen=True)
class CanarySet:
    """Which points are canaries, their canary labels, and which of them train."""

    index: np.ndarray  # [m] data-set rows
    labels: np.ndarray  # [m] the wrong label each canary carries
    included: np.ndarray  # [m] bool: trained on

    @classmethod
    def draw(cls, y: np.ndarray, n_canaries: int, seed: int) -> CanarySet:
        """``n_canaries`` rows with random wrong labels, each included with probability 1/2."""
        n, n_classes = len(y), int(y.max()) + 1
        if not isinstance(n_canaries, (int, np.integer)) or isinstance(n_canaries, bool) or not 2 <= n_canaries <= n // 2:
            raise ValueError(
                f"n_canaries must be an integer between 2 and half the data set ({n // 2}), got {n_canaries!r}."
            )
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CANARIES,)))
        index = np.sort(rng.choice(n, size=int(n_canaries), replace=False))
        labels = (y[index] + rng.integers(1, n_classes, size=index.size)) % n_classes
        return cls(index, labels.astype(np.int64), rng.random(index.size) < 0.5)

    def training_set(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The labels to train on (canaries relabelled) and the one model's keep row (every
        non-canary point, and the included canaries)."""
        y_train = y.copy()
        y_train[self.index] = self.labels
        keep = np.ones(len(y), dtype=bool)
        keep[self.index[~self.included]] = False
        return y_train, keep

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Each canary's score: the log-probability ``logits [N, C]`` give its canary label."""
        rows = np.asarray(logits, dtype=np.float64)[self.index]
        top = rows.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        return rows[np.arange(len(rows)), self.labels] - log_z


@dataclass(frozen=True)
class CanaryRun:
    """One training run with canaries: what ``assert_dp_claim_holds`` audits."""

    scores: np.ndarray  # [m] higher: more likely trained on
    included: np.ndarray  # [m] bool
    seed: int
    seconds: float  # training (0 when the model came from the cache) and scoring
    trained: bool  # whether this run trained the model (False: loaded from the store)
    accountant_epsilon: float | None  # a DP-SGD recipe's target epsilon, for the report
    description: str
    data_id: str | None = None  # the data set the canaries were drawn from (its digest, true labels)
    no_trace: str | None = None  # why the canaries cannot have left a trace (a constant model), when known


def no_trace(logits: np.ndarray) -> str | None:
    """Why a run's canaries cannot have left a trace, or None: a model whose outputs ``logits [N, C]``
    are the same for every input (constant, untrained or broken) scores each canary by its label
    alone, so a lower bound near 0 says nothing about its training."""
    rows = np.asarray(logits, dtype=np.float64)
    spread = np.ptp(rows, axis=0).max(initial=0.0)
    if spread <= 1e-9 * max(1.0, float(np.abs(rows).max(initial=0.0))):
        return (
            "the canaries left no trace: the model gives every input the same outputs (a constant or untrained "
            "model, or a loop that never updated it), so its scores say nothing about what it trained on"
        )
    return None
