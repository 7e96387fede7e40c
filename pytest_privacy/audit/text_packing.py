"""How a language model's texts travel through an audit's job, a leaf every text source imports: packed
as one int64 array ``[N, 2, T]`` (ids and mask), so the split, the cache keys, the locks and the executors
are the classifiers' own (:func:`text_arrays`), and the target built back from its stored statistics
(:func:`text_built`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import row_ids
from ..data.text import TextDataset
from ..data.text_target import CachedTextTarget
from ..engine.executors import Entry
from .dataset import PrivacyDataWarning
from .job import Built

if TYPE_CHECKING:
    from .job import TrainJob

__all__ = ["text_arrays", "text_built"]


def text_arrays(text: TextDataset, *, drop_duplicates: bool = True) -> tuple[TextDataset, np.ndarray, np.ndarray]:
    """The texts an audit trains and scores on: duplicates dropped but the first (a copy of a member
    among the non-members would make any attack look better than it is), with a warning giving the
    count; and the job's arrays, ``x [N, 2, T]`` int64 (ids, mask) and ``y [N]`` zeros."""
    packed = np.stack([text.ids, text.mask.astype(np.int64)], axis=1)
    if not drop_duplicates:
        return text, packed, np.zeros(len(packed), dtype=np.int64)
    first = np.unique(row_ids(packed), return_index=True)[1]  # the classifiers' duplicate rule
    if len(first) < len(packed):
        keep = np.sort(first)
        warnings.warn(
            f"dropped {len(packed) - len(keep)} texts that duplicate an earlier one (ids and mask): a copy of a "
            "member among the non-members would make any attack look better than it is.",
            PrivacyDataWarning, stacklevel=3,
        )
        text, packed = text.subset(keep), packed[keep]
    return text, packed, np.zeros(len(packed), dtype=np.int64)


def text_built(
    job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
) -> Built:
    """What every language-model source builds: the target (the entry after the references, if any) as a
    :class:`CachedTextTarget` answering from its stored statistics; the references are read from the
    entries by the trainer."""
    if len(entries) <= n_references:  # references only
        return Built(None)
    return Built(CachedTextTarget(job.x[:, 0], job.x[:, 1].astype(bool), entries[-1], retrain, model=target))
