"""A TrainJob: everything an executor needs to train some models of an audit, frozen and typed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..engine.executors import Trained
    from ..engine.progress import Progress
    from .sources import ModelSource

__all__ = ["TrainJob"]


@dataclass(frozen=True)
class TrainJob:
    """Train models of ``source`` on ``x``/``y``: model ``i`` on ``keep[i]`` with ``seeds[i]``.

    ``validation`` is the pool a defense trains against; ``max_memory`` the engine's budget in
    bytes (None: its default); ``keep_models`` whether live models come back with their entries
    (in-process runs, and the retrain of a training function's target).
    """

    source: ModelSource
    x: np.ndarray
    y: np.ndarray
    keep: np.ndarray
    seeds: tuple[np.random.SeedSequence, ...]
    device: str = "auto"
    max_memory: int | None = None
    validation: np.ndarray | None = None
    keep_models: bool = False

    @property
    def vectorised(self) -> bool:
        """Whether many models of a unit train together (a recipe) rather than one by one."""
        return self.source.vectorised

    def run(self, unit: list[int], *, progress: Progress) -> list[Trained]:
        """Train the ``unit`` models (executor work)."""
        return self.source.train(self, unit, progress=progress)

    def on_worker(self, *, device: str, gpu_share: float) -> TrainJob:
        """The job on a remote worker: its device, and, with a fraction of a GPU (shared with the
        other tasks packed onto it), that fraction of the GPU's free memory unless a budget was set."""
        job = replace(self, device=device)
        if 0 < gpu_share < 1 and self.max_memory is None and self.vectorised:
            import torch

            from ..engine.ensemble import default_memory_budget

            job = replace(job, max_memory=int(default_memory_budget(torch.device("cuda")) * gpu_share))
        return job

    def user_code(self) -> tuple[Any, ...]:
        """The user's code the job runs (a training function, a model factory, a defense class)."""
        return self.source.user_code()
