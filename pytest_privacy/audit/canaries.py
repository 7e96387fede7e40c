"""Canaries for a one-run audit of a differential-privacy claim (Steinke, Nasr & Jagielski 2023).

Each of ``m`` canaries is included in training independently with probability 1/2; one model trains;
each canary's score is the log-probability the model gives the canary's label at the canary's input.
Two kinds:

- ``"input"`` (the default): *input-space canaries*, new points out of the data's distribution, as the
  one-run and tight-auditing papers use in the black-box setting: a random pattern in the lower half of
  the data's principal directions, 6 to 12 standard deviations per feature from its mean (random ids
  within the observed range for integer inputs), each with a random label. Nothing in the data predicts
  their labels and only a canary's own gradient moves the model along those directions, so a loop that
  trains without noise memorises them even under per-example clipping (measured on digits with an
  opacus loop, claim eps = 2, 300 canaries, 20 seeds: noise 0 with clipping FAILs 20/20 with SGD and with
  Adam, no DP 20/20, honest 0/40; ``benchmarks/dp_claim_power.py``). A sign pattern over all features
  (the earlier default) was caught 0/20 with SGD and clipping. The data set itself is untouched: the
  canaries are added rows.
- ``"mislabelled"``: ``m`` data points relabelled with a random wrong label (the excluded ones are
  left out of training), the earlier default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["CANARY_KINDS", "CanaryRun", "CanarySet", "default_count", "no_trace"]

_CANARIES = 0x63616E  # the canary draws' spawn key: apart from every audit's
CANARY_KINDS = ("input", "mislabelled")
_AMPLITUDE = 6.0  # input canaries: the pattern's size per feature (times 1 to 2), in the data's standard deviations
_MAX_PCA_FEATURES = 4096  # above this the covariance is not decomposed: a sign pattern over all features instead
_FALLBACK_AMPLITUDE = 3.0  # ... at this size (larger destabilised plain SGD)


@dataclass(frozen=True)
class CanarySet:
    """Which rows of the training set are canaries, their labels, and which of them train.

    ``rows`` index the rows :meth:`training_set` returns (for input canaries, the rows appended after
    the data; for mislabelled ones, the data rows relabelled)."""

    kind: Literal["input", "mislabelled"]
    rows: np.ndarray  # [m] rows of the training set
    labels: np.ndarray  # [m] each canary's label
    included: np.ndarray  # [m] bool: trained on
    inputs: np.ndarray | None = None  # [m, ...] input canaries' inputs (None for mislabelled)

    @classmethod
    def draw(
        cls, x: np.ndarray, y: np.ndarray, n_canaries: int, seed: int, kind: str = "input"
    ) -> CanarySet:
        """``n_canaries`` canaries of ``kind``, each included with probability 1/2."""
        if kind not in CANARY_KINDS:
            from ..strict import unknown_name_error

            raise ValueError(f"canary kind: {unknown_name_error('kind', str(kind), list(CANARY_KINDS))}")
        n, n_classes = len(y), int(y.max()) + 1
        limit = n // 2 if kind == "mislabelled" else 100_000
        if not isinstance(n_canaries, (int, np.integer)) or isinstance(n_canaries, bool) or not 2 <= n_canaries <= limit:
            raise ValueError(
                f"n_canaries must be an integer between 2 and {limit:,} ({'half the data set' if kind == 'mislabelled' else 'input canaries'}), "
                f"got {n_canaries!r}."
            )
        m = int(n_canaries)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CANARIES,)))
        if kind == "mislabelled":
            index = np.sort(rng.choice(n, size=m, replace=False))
            labels = (y[index] + rng.integers(1, n_classes, size=m)) % n_classes
            return cls("mislabelled", index, labels.astype(np.int64), rng.random(m) < 0.5)
        inputs = _input_canaries(x, m, rng)
        labels = rng.integers(0, n_classes, size=m)
        return cls("input", np.arange(n, n + m), labels.astype(np.int64), rng.random(m) < 0.5, inputs)

    def training_set(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, keep)`` of the one run: the data with the canaries (input canaries appended,
        mislabelled ones relabelled) and its keep row (every data point, and the included canaries)."""
        if self.kind == "input":
            assert self.inputs is not None
            x_train = np.concatenate([x, self.inputs.astype(x.dtype, copy=False)])
            y_train = np.concatenate([y, self.labels])
            keep = np.r_[np.ones(len(x), dtype=bool), self.included]
            return x_train, y_train, keep
        y_train = y.copy()
        y_train[self.rows] = self.labels
        keep = np.ones(len(y), dtype=bool)
        keep[self.rows[~self.included]] = False
        return x, y_train, keep

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Each canary's score: the log-probability ``logits [rows, C]`` (on the training set's rows)
        give its label."""
        rows = np.asarray(logits, dtype=np.float64)[self.rows]
        top = rows.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        return rows[np.arange(len(rows)), self.labels] - log_z

    def describe(self) -> str:
        """What the canaries are, for the result."""
        if self.kind == "input":
            return f"{len(self.rows)} input-space canaries (random patterns where the data varies least, random labels), one run"
        return f"{len(self.rows)} mislabelled input canaries, one run"


def default_count(kind: str, n: int) -> int:
    """Canaries a one-run audit of ``n`` data points uses unless told: input-space canaries, 300 (at
    most half the data), where a noise-free clipped SGD loop was caught 20 of 20 times and perfect guesses
    still prove epsilon up to 3.5; mislabelled ones, half the data up to 1,000."""
    return min(300 if kind == "input" else 1000, n // 2)


def _input_canaries(x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` inputs out of the data's distribution (floats; integer inputs get random values in each
    feature's observed range, so ids stay valid ids).

    Floats: a random pattern in the *lower half of the data's principal directions* (those it barely
    varies along), ``_AMPLITUDE`` times the data's standard deviation per unit of the pattern's length,
    around the data's mean. No real point looks like one, so a model that generalises predicts nothing
    about a canary's random label, and the directions are the model's own to spend on it: only the
    canary's own gradient moves the model there, which is why even clipped SGD memorises it. Data of
    more than ``_MAX_PCA_FEATURES`` features, whose covariance is too large to decompose here, get a
    random sign pattern over all features instead."""
    shape = x.shape[1:]
    if x.dtype.kind in "iu":
        lo, hi = x.min(axis=0), x.max(axis=0)
        return (lo + np.floor(rng.random((m, *shape)) * (hi - lo + 1))).astype(x.dtype)
    flat = x.reshape(len(x), -1).astype(np.float64)
    d = flat.shape[1]
    mean = flat.mean(axis=0)
    std = float(flat.std()) or 1.0
    out_dtype = x.dtype if x.dtype.kind == "f" else np.float32
    if d > _MAX_PCA_FEATURES:
        pattern = rng.choice(np.array([-1.0, 1.0]), size=(m, d)) * (1.0 + rng.random((m, d)))
        return (mean + _FALLBACK_AMPLITUDE * std * pattern).reshape(m, *shape).astype(out_dtype)
    k = max(1, d // 2)
    _, vectors = np.linalg.eigh(np.cov(flat, rowvar=False).reshape(d, d))  # eigenvalues ascending
    basis = vectors[:, :k]  # the lower half of the spectrum
    # Random signs at random sizes (1 to 2): distinct patterns even in a few dimensions.
    coef = rng.choice(np.array([-1.0, 1.0]), size=(m, k)) * (1.0 + rng.random((m, k)))
    pattern = coef @ basis.T * np.sqrt(d / k)  # per-feature scale as a full-dimensional pattern's
    return (mean + _AMPLITUDE * std * pattern).reshape(m, *shape).astype(out_dtype)


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
