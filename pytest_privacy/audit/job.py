"""A TrainJob: everything an executor needs to train some models of an audit, frozen and typed, and
the contract of the model sources it runs (:class:`ModelSource`, what they build: :class:`Built`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..engine.executors import Entry, Trained
    from ..engine.progress import Progress

__all__ = ["Built", "ModelSource", "TrainJob", "library_versions"]


@dataclass(frozen=True)
class Built:
    """What a source makes of its trained models: the target, how to query the references on new
    inputs (None: only their stored logits), and a recipe's ensemble."""

    target: Any
    predict: Callable[[np.ndarray], np.ndarray] | None = None
    ensemble: Any = None


class ModelSource(Protocol):
    """How an audit's models are built; see :class:`RecipeSource` and :class:`FunctionSource`."""

    vectorised: bool  # many models per unit of work (one program) or one at a time
    augmentations: tuple[str, ...]  # the query set the stored logits cover
    validation_share: float  # share of the data a defense needs held out (0: none)

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        """Refuse, before anything trains, what cannot train on this data (``min_points``: the
        fewest training points any model gets)."""

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        """Cache key of one model."""

    def on(self, device_type: str) -> ModelSource:
        """The source as it trains on ``device_type``: whatever its keys promise about the training
        (a recipe's arithmetic) fixed here, so that a run elsewhere (a Ray worker) follows it."""

    def covers(self) -> str:
        """One line for the summary: what the cache key covers."""

    def seed_of(self, seed: np.random.SeedSequence) -> int:
        """The integer a person reproduces the model with (what the training was handed)."""

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        """Train the ``unit`` models of ``job``: each one's logits on ``job.x`` (and more)."""

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        """The references (the first ``n_references`` entries) and the target (the entry after
        them, if any) from the models' entries; ``target`` is the live target when it came back
        from training, ``retrain`` trains it again."""

    def user_code(self) -> tuple[Any, ...]:
        """The user's callables and classes training runs (shipped to remote workers by value)."""


def library_versions(device_type: str) -> tuple[str, str, str]:
    """What every model key holds besides the model: this library's and torch's versions and the
    device type (a model trained by other code or arithmetic is another model)."""
    import torch

    from .. import __version__

    return __version__, torch.__version__, device_type



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
