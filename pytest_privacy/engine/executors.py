"""Executors: where the models of an audit train.

The audit cuts the models that are not in the store yet into *units* (one model for a user's
training function, a vectorised chunk for a recipe) and hands them with a :class:`Job` to an
executor, which runs ``job.run(unit)`` for each and publishes every finished model to the store as
soon as its unit completes, so an interrupted run keeps what it finished and a re-run trains only
the rest. What a job trains is the job's business; the executor only decides where.

- :class:`LocalExecutor` runs the units in this process, one after another.
- :class:`RayExecutor` submits one Ray task per unit to the cluster at ``RAY_ADDRESS`` (or a local
  Ray instance), retries failed tasks, and reports a unit that keeps failing with its models'
  indices, seeds and the worker's traceback.

A unit's result depends only on its models' seeds and data, never on where it ran: the executor
never changes results.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .progress import Progress, progress_bar

if TYPE_CHECKING:
    from .store import ModelStore

__all__ = ["Entry", "Executor", "Job", "LocalExecutor", "RayExecutor", "Trained", "TrainingFailed", "make_executor"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error text; a CI log wants it plain
Entry = dict[str, np.ndarray]  # one model's tensors, as the store holds them


@dataclass(frozen=True)
class Trained:
    """One trained model: its ``entry`` (what the store keeps) and, when the job keeps them, the
    live ``model`` (a training function's; weights of a function model are never stored)."""

    entry: Entry
    model: Any = None


class Job(Protocol):
    """Training work an executor runs, one unit of models at a time."""

    @property
    def vectorised(self) -> bool:
        """Whether a unit may hold many models trained together (a recipe) or one (a function)."""

    def run(self, unit: list[int], *, progress: Progress) -> list[Trained]:
        """Train the ``unit`` models; one :class:`Trained` per model, in order."""

    def on_worker(self, *, device: str, gpu_share: float) -> Job:
        """The job as a remote worker runs it: on ``device``, with ``gpu_share`` of a GPU."""

    def user_code(self) -> tuple[Any, ...]:
        """The user's callables and classes the job needs (shipped to remote workers by value)."""


class TrainingFailed(RuntimeError):
    """Training a model failed (after the executor's retries); the message names the model."""


class Executor(Protocol):
    """What the audit needs from an executor."""

    name: str
    in_process: bool  # whether jobs run in this process (live models come back for free)

    def device_type(self, device: str) -> str:
        """The device type (``"cpu"``, ``"cuda"``) models will train on, for cache keys."""

    def units(self, models: Sequence[int], *, vectorised: bool) -> list[list[int]]:
        """Cut ``models`` into units of work: single models, or chunks when ``vectorised``."""

    def run(
        self, job: Job, units: list[list[int]], *, keys: Sequence[str], store: ModelStore | None,
        describe: Callable[[int], str], progress: Progress, what: str = "training",
    ) -> Iterator[tuple[list[int], list[Trained]]]:
        """Run every unit; yield ``(unit, trained)`` as units finish, each already published to ``store``
        (``what``: what the progress display says is being trained, e.g. "training 16 reference models")."""

    def close(self) -> None:
        """Release what the executor holds (a Ray instance it started)."""


def _failure(unit: Sequence[int], describe: Callable[[int], str], detail: str) -> TrainingFailed:
    models = ", ".join(describe(i) for i in unit)
    if "QueryFailed" in detail:  # it trained: what failed is answering the audit's queries
        return TrainingFailed(f"querying failed for {models}, after training:\n{detail}")
    return TrainingFailed(f"training failed for {models}:\n{detail}")


def _publish(store: ModelStore | None, keys: Sequence[str], unit: Sequence[int], trained: list[Trained]) -> bool:
    """Store each entry; whether all were stored (a read-only store or a diverged model stores none)."""
    if store is None:
        return False
    return all([store.put(keys[i], t.entry) for i, t in zip(unit, trained)])  # every one, not the first False


class LocalExecutor:
    """Train in this process: a recipe as one vectorised program, functions one model at a time."""

    name = "local"
    in_process = True

    def device_type(self, device: str) -> str:
        from .ensemble import resolve_device

        return resolve_device(device).type

    def units(self, models: Sequence[int], *, vectorised: bool) -> list[list[int]]:
        # The engine chunks a vectorised unit to the memory budget itself.
        return [list(models)] if vectorised else [[i] for i in models]

    def run(
        self, job: Job, units: list[list[int]], *, keys: Sequence[str], store: ModelStore | None,
        describe: Callable[[int], str], progress: Progress, what: str = "training",
    ) -> Iterator[tuple[list[int], list[Trained]]]:
        # One unit shows the engine's own (per-epoch) bar; several show a bar over models.
        # Several units: count models here; one unit (a vectorised recipe): the engine counts epochs.
        outer, inner = (progress, "off") if len(units) > 1 else ("off", progress)
        with progress_bar(sum(map(len, units)), outer, what) as bar:
            for unit in units:
                try:
                    trained = job.run(unit, progress=inner)
                except Exception as exc:  # (Ctrl-C is no Exception: it propagates as itself)
                    raise _failure(unit, describe, f"{type(exc).__name__}: {exc}") from exc
                _publish(store, keys, unit, trained)
                bar.update(len(unit))
                yield unit, trained

    def close(self) -> None:
        pass


class RayExecutor:
    """Train on a Ray cluster: one task per unit, ``max_retries`` retries of a failed task.

    Connects to ``RAY_ADDRESS`` (or the cluster ``ray start`` last started on this machine), else
    starts a local instance, unless Ray is already initialised (then that is used, e.g. with the
    ``runtime_env`` you gave it). Workers publish finished models straight to a store they can
    reach (an fsspec URL, or a local path when Ray runs on this machine); otherwise they send the
    models back and the driver publishes them.
    """

    name = "ray"
    in_process = False

    def __init__(self, *, gpus_per_task: float = 0.0, cpus_per_task: float = 1.0, max_retries: int = 3) -> None:
        try:
            import ray  # noqa: F401 - only whether it is installed
        except ImportError:
            raise ImportError(
                "--privacy-executor=ray needs Ray: pip install 'pytest-privacy[ray]' (or choose the local executor)."
            ) from None
        if gpus_per_task < 0 or cpus_per_task <= 0 or max_retries < 0:
            raise ValueError(
                f"Ray task resources must be gpus_per_task >= 0, cpus_per_task > 0 and max_retries >= 0; got "
                f"{gpus_per_task}, {cpus_per_task} and {max_retries}."
            )
        self.gpus_per_task = gpus_per_task
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries
        self._started = False

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
            self._started = True
        return ray

    @property
    def local_instance(self) -> bool:
        """Whether Ray runs on this machine only (so workers share its file system)."""
        ray = self._ray()
        return len([n for n in ray.nodes() if n.get("Alive")]) <= 1

    def device_type(self, device: str) -> str:
        if self.gpus_per_task > 0:
            if device not in ("auto", "cuda") and not device.startswith("cuda"):
                raise ValueError(f"--privacy-ray-gpus-per-task > 0 trains on CUDA, but device={device!r}.")
            return "cuda"
        if device != "auto" and device != "cpu":
            raise ValueError(
                f"device={device!r} on the Ray executor needs GPUs per task: set --privacy-ray-gpus-per-task "
                "(e.g. 1, or 0.25 to pack four models per GPU)."
            )
        return "cpu"

    def slots(self) -> int:
        """How many tasks the cluster runs at once with this executor's resources per task."""
        resources = self._ray().cluster_resources()
        if self.gpus_per_task > 0:
            return max(1, int(resources.get("GPU", 0) / self.gpus_per_task))
        return max(1, int(resources.get("CPU", 1) / self.cpus_per_task))

    def units(self, models: Sequence[int], *, vectorised: bool) -> list[list[int]]:
        if not vectorised or not models:
            return [[i] for i in models]
        n = min(len(models), self.slots())  # one vectorised chunk per worker
        return [part.tolist() for part in np.array_split(np.asarray(models), n)]

    def run(
        self, job: Job, units: list[list[int]], *, keys: Sequence[str], store: ModelStore | None,
        describe: Callable[[int], str], progress: Progress, what: str = "training",
    ) -> Iterator[tuple[list[int], list[Trained]]]:
        ray = self._ray()
        for code in job.user_code():
            _pickle_user_code_by_value(code)
        device = "cuda" if self.gpus_per_task > 0 else "cpu"
        on_workers = store is not None and store.reachable_from_workers(local_cluster=self.local_instance)
        task = ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
            max_retries=self.max_retries, retry_exceptions=True,
        )
        job_ref = ray.put(job.on_worker(device=device, gpu_share=self.gpus_per_task))
        pending = {
            task.remote(job_ref, unit, [keys[i] for i in unit], store.root if on_workers else None): unit
            for unit in units
        }
        try:
            with progress_bar(sum(map(len, units)), progress, f"{what} on Ray ({len(units)} tasks)") as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    unit = pending.pop(done[0])
                    try:
                        trained = ray.get(done[0])
                    except ray.exceptions.RayError as exc:
                        where = f"on a Ray worker, {self.max_retries + 1} attempts; the worker's traceback"
                        raise _failure(unit, describe, f"({where}:)\n{_ANSI.sub('', str(exc))}") from None
                    if trained is None:  # published by the worker
                        entries = [store.get(keys[i]) for i in unit]
                        if any(e is None for e in entries):
                            raise _failure(unit, describe, "a worker published it, but the store cannot read it back")
                        trained = [Trained(e) for e in entries]
                    else:
                        _publish(store, keys, unit, trained)
                    bar.update(len(unit))
                    yield unit, trained
        finally:
            for ref in pending:  # interrupted or failed: stop the rest
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import ray  # noqa: F401 - only whether it is installed

            ray.shutdown()
            self._started = False


def _ray_task(job: Job, unit: list[int], keys: list[str], store_root: str | None) -> list[Trained] | None:
    """A Ray task: train a unit; publish it to the store when the worker reaches it and return None,
    else (or when the job keeps live models, or the store refused one) return what it trained."""
    trained = job.run(unit, progress="off")
    if store_root is None:
        return trained
    from .store import ModelStore

    published = _publish(ModelStore(store_root), keys, range(len(unit)), trained)
    return None if published and all(t.model is None for t in trained) else trained


def _pickle_user_code_by_value(code: Any) -> None:
    """Ship user code (a conftest's training function, model factory or defense) to workers by
    value: workers of a remote cluster cannot import test modules, which are not installed packages."""
    module = sys.modules.get(getattr(code, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__.startswith("pytest_privacy"):
        return
    if "site-packages" in path or "dist-packages" in path:
        return
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)


def make_executor(
    name: str, *, gpus_per_task: float = 0.0, cpus_per_task: float = 1.0, max_retries: int = 3
) -> Executor:
    """The executor called ``name``: ``"local"`` or ``"ray"``."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, max_retries=max_retries)
    raise ValueError(f"unknown executor {name!r}; choose local or ray.")

