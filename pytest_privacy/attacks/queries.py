"""What a label-only attack is handed: the counted labels oracle (:class:`QueryCounter`) and the
query (:class:`LabelQuery`: the oracle, the model, the audit points, the references). A leaf of the
attacks room: the registry and every label-only attack import it, it imports none of them.

Numpy only: nothing here imports torch (a torch tensor returned by ``predict`` is converted through
its own ``.detach()``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.querying import model_inputs

if TYPE_CHECKING:
    from ..data import References

__all__ = ["LabelQuery", "Predict", "QueryCounter", "as_counter"]

Predict = Callable[[np.ndarray], Any]


class QueryCounter:
    """A labels oracle that batches, validates and counts the queries sent to ``predict``.

    ``predict`` maps a float32 batch ``[B, *example_shape]`` to integer labels ``[B]``. If it returns
    a 2-D array ``[B, C]`` (``C >= 2`` scores, logits or probabilities) the label is its argmax over
    classes, so a scoring model can be audited as if it released labels only. Torch tensors are
    converted with ``.detach().cpu().numpy()``.

    ``queries`` is the number of examples sent so far (not the number of calls). Every label-only
    attack accepts a ``QueryCounter`` in place of a raw callable and adds its queries to it.
    """

    def __init__(self, predict: Predict, *, batch_size: int = 4096) -> None:
        if isinstance(predict, QueryCounter):
            raise TypeError("predict is already a QueryCounter; pass it to the attack directly.")
        if not callable(predict):
            raise TypeError(f"predict must be a callable x -> labels, got {type(predict).__name__}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.predict = predict
        self.batch_size = int(batch_size)
        self.queries = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Labels ``int64 [B]`` for the batch ``x [B, *example_shape]``, queried in chunks of at most
        ``batch_size`` examples."""
        x = model_inputs(x)
        if x.ndim < 2:
            raise ValueError(
                f"a query must be a batch [B, *example_shape], got shape {x.shape}; "
                "add a leading batch axis (x[None]) for a single example."
            )
        out = np.empty(x.shape[0], dtype=np.int64)
        for start in range(0, x.shape[0], self.batch_size):
            batch = np.ascontiguousarray(x[start : start + self.batch_size])
            raw = self.predict(batch)
            self.queries += batch.shape[0]
            out[start : start + batch.shape[0]] = _labels(raw, batch.shape[0])
        return out

    def __repr__(self) -> str:
        return f"QueryCounter({self.predict!r}, batch_size={self.batch_size}, queries={self.queries})"


def _labels(raw: Any, n: int) -> np.ndarray:
    """Validate one batch of oracle output and return ``int64 [n]`` labels."""
    if hasattr(raw, "detach"):  # a torch tensor, without importing torch
        raw = raw.detach().cpu().numpy()
    out = np.asarray(raw)
    if out.dtype == np.bool_:
        out = out.astype(np.int64)
    if not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise ValueError(f"predict returned dtype {out.dtype}; it must return integer class labels.")
    if np.issubdtype(out.dtype, np.floating) and np.isnan(out).any():
        raise ValueError(
            "predict returned NaN; the model produced NaN outputs on these inputs: fix the model "
            "(or its input scaling) before auditing it."
        )
    if out.ndim == 2 and out.shape[0] == n and out.shape[1] >= 2:
        out = out.argmax(axis=1)
    if out.shape != (n,):
        raise ValueError(
            f"predict returned shape {out.shape} for a batch of {n} examples; it must return one "
            f"integer label per example, shape ({n},), or scores [{n}, C] with C >= 2 (their argmax "
            "is taken)."
        )
    # Float labels are accepted only when they are whole numbers: a float column is more often one
    # class's probability, which must not be silently truncated into a label.
    if np.issubdtype(out.dtype, np.floating) and (not np.isfinite(out).all() or (out != np.round(out)).any()):
        raise ValueError(
            "predict returned non-integer labels; return class indices (e.g. logits.argmax(1)), "
            "not probabilities of one class."
        )
    return out.astype(np.int64)


def as_counter(predict: Predict | QueryCounter) -> QueryCounter:
    """``predict`` itself if it already counts queries, else a new :class:`QueryCounter` around it
    (so a caller's counter keeps accumulating across attacks)."""
    return predict if isinstance(predict, QueryCounter) else QueryCounter(predict)


@dataclass(frozen=True)
class LabelQuery:
    """What a label-only attack may use: a labels oracle that counts queries, the audit points, and
    (for white-box variants and trained attacks) the raw model and the references."""

    oracle: QueryCounter
    model: Any
    x: np.ndarray
    y: np.ndarray
    references: References | None
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
