"""Models of the user's own training loop, written once and run on M stacked models at a time.

A ``privacy_train_fn`` marked with :func:`stacked_training` is not called once per model: it is
handed a :class:`~pytest_privacy.engine.own_loop.StackedModels` (the audit's models, parameters
stacked ``[M, ...]``, model ``m`` initialised as ``model()`` alone under its seed) and a
:class:`~pytest_privacy.engine.own_loop.PerModelBatches` (each model its own minibatches of its own
half), trains them in place, and the result equals training each model alone with the same loop
(``tests/engine/test_own_loop.py``; the contract, what must be per model, is in that module)::

    @stacked_training(model=lambda: nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)))
    def train(models, batches, *, device):
        opt = torch.optim.Adam(models.parameters(), lr=1e-3, fused=True)
        for _ in range(30):
            for xb, yb in batches:
                opt.zero_grad()
                per_model_loss(F.cross_entropy, models(xb), yb).sum().backward()
                opt.step()

Weights are stored (tensors only, never pickled) with the logits, so the target and the
references come back as ordinary modules built by ``model()``, on a warm cache as on a cold one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.querying import model_inputs
from ..engine.executors import Entry, Trained
from ..engine.recipe import callable_identity
from ..engine.seeds import torch_seed
from ..engine.store import digest
from .job import Built, library_versions
from .training_functions import declared, function_identity

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["StackedFunctionSource", "is_stacked", "stacked_training"]


def stacked_training(
    *, model: Callable[[], Any], batch_size: int = 64, augmentations: tuple[str, ...] = (), version: str | None = None,
    lora_rank: int | None = None, lora_alpha: float | None = None, target_modules: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a ``privacy_train_fn(models, batches, *, device) -> None`` as a loop over stacked models:
    ``model`` builds one model (called once per model, under that model's seed), ``batch_size`` is
    each model's minibatch, ``augmentations`` the views the loop trains on (LiRA's query set) and
    ``version`` a tag to bump when something outside the code changes. All are in the cache key.

    On a :class:`~pytest_privacy.TextDataset` the models are language models fine-tuned from ``model()``
    (a pretrained model, the same weights every call) and ``batches`` yields ``(ids, mask) [M, B, T]``;
    ``lora_rank`` makes ``models`` a :class:`~pytest_privacy.StackedAdapters` (LoRA adapters over one
    frozen copy; ``lora_alpha``, ``target_modules`` as in :class:`~pytest_privacy.LMRecipe`) instead of
    :class:`~pytest_privacy.StackedModels` (full fine-tunes)."""
    from ..data.augmentations import check_augmentations
    from ..data.querying import is_module

    if not callable(model) or is_module(model):  # a built model is callable too: each model needs its own
        raise TypeError(
            f"stacked_training(model=...) takes a function that builds one model (e.g. a lambda or the class), got "
            f"{'an nn.Module instance' if is_module(model) else type(model).__name__}."
        )
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"stacked_training(batch_size=...) must be a positive integer, got {batch_size!r}.")
    augmentations = tuple(augmentations)
    check_augmentations(augmentations)
    lora = None
    if lora_rank is not None or lora_alpha is not None or target_modules is not None:
        from ..engine.lm_recipe import LMRecipe

        checked = LMRecipe(  # the same checks as a recipe's (a rank of 0, alpha without a rank, ...)
            base=model, lora_rank=lora_rank, lora_alpha=lora_alpha,
            target_modules=None if target_modules is None else tuple(target_modules),
        )
        lora = (checked.lora_rank, checked.lora_alpha, checked.target_modules)

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__pytest_privacy_stacked__ = (model, batch_size)  # type: ignore[attr-defined]
        fn.__pytest_privacy_augmentations__ = augmentations  # type: ignore[attr-defined]
        fn.__pytest_privacy_version__ = version  # type: ignore[attr-defined]
        fn.__pytest_privacy_lora__ = lora  # type: ignore[attr-defined]
        return fn

    return mark


def is_stacked(fn: Any) -> bool:
    """Whether ``fn`` was marked with :func:`stacked_training`."""
    return hasattr(fn, "__pytest_privacy_stacked__")


@dataclass(frozen=True)
class StackedFunctionSource:
    """Models of a :func:`stacked_training` loop: many per unit of work, as a recipe's."""

    train_fn: Callable[..., Any]
    vectorised = True
    validation_share = 0.0

    @property
    def factory(self) -> Callable[[], Any]:
        return self.train_fn.__pytest_privacy_stacked__[0]  # type: ignore[attr-defined]

    @property
    def batch_size(self) -> int:
        return int(self.train_fn.__pytest_privacy_stacked__[1])  # type: ignore[attr-defined]

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(self.train_fn.__pytest_privacy_augmentations__)  # type: ignore[attr-defined]

    @functools.cached_property
    def identity(self) -> str:
        """The loop and the model factory, by their code (walked once)."""
        return f"{function_identity(self.train_fn)}|{callable_identity(self.factory)}"

    def on(self, device_type: str) -> StackedFunctionSource:
        return self  # the user's loop decides its own arithmetic; its code is in the key

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        from ..engine.own_loop import check_layers, seeded_model

        if getattr(self.train_fn, "__pytest_privacy_lora__", None) is not None:
            raise TypeError(
                "stacked_training(lora_rank=...) fine-tunes language models: privacy_dataset must be a "
                "pytest_privacy.TextDataset."
            )
        if min_points < self.batch_size:
            raise ValueError(
                f"stacked_training(batch_size={self.batch_size}) is larger than the {min_points} points some model "
                "trains on: lower the batch size."
            )
        model = seeded_model(self.factory, np.random.SeedSequence(0))  # refuses a factory building no nn.Module
        check_layers(model)  # a layer that cannot be stacked is refused before anything trains

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        return digest(
            "pytest-privacy-stacked/1", self.identity, self.batch_size, self.augmentations, data_id,
            np.packbits(keep_row), seed.entropy, seed.spawn_key, *library_versions(device_type),
        )

    def seed_of(self, seed: np.random.SeedSequence) -> int:
        return torch_seed(seed)

    def covers(self) -> str:
        from ..engine.code_identity import code_identity

        return (
            f"stacked training loop {code_identity(self.train_fn).describe()}; model {code_identity(self.factory).describe()}; "
            f"batch size {self.batch_size}{declared(self.train_fn)}"
        )

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..engine.ensemble import resolve_device
        from ..engine.progress import progress_bar

        device = resolve_device(job.device)
        trained: dict[int, Trained] = {}
        # Each model takes (its members // batch size) steps an epoch, as it would alone; models
        # with the same count stack (a balanced split gives every model N // 2 or N - N // 2).
        steps = {i: int(job.keep[i].sum()) // self.batch_size for i in unit}
        with progress_bar(len(unit), progress, f"training {len(unit)} stacked models") as bar:
            for count in sorted(set(steps.values())):
                group = [i for i in unit if steps[i] == count]
                trained.update(self._train_group(job, group, count, device))
                bar.update(len(group))
        return [trained[i] for i in unit]

    def _train_group(self, job: TrainJob, group: list[int], count: int, device: Any) -> dict[int, Trained]:
        """The ``group`` models (each ``count`` steps an epoch) trained as one stack."""
        from ..data.querying import query_logits
        from ..engine.own_loop import PerModelBatches, StackedModels

        seeds = [job.seeds[i] for i in group]
        models = StackedModels(self.factory, seeds).to(device)
        batches = PerModelBatches(
            job.x, job.y, job.keep[group], seeds, batch_size=self.batch_size, steps_per_epoch=count, device=device
        )
        models.train()
        self.train_fn(models, batches, device=str(device))
        models.eval()
        out = {}
        for j, i in enumerate(group):
            model = models.model(j).cpu().eval()
            logits = query_logits(model, job.x, self.augmentations).astype(np.float32)
            state = {f"param.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
            out[i] = Trained({"logits": logits, **state}, model if job.keep_models else None)
        return out

    def _module(self, entry: Entry) -> Any:
        import torch

        model = self.factory()
        model.load_state_dict({k.removeprefix("param."): torch.from_numpy(np.asarray(v)) for k, v in entry.items()
                               if k.startswith("param.")})
        return model.eval()

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        import torch

        references = [self._module(e) for e in entries[:n_references]]

        def predict(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                xb = torch.as_tensor(model_inputs(batch))
                return np.stack([m(xb).numpy() for m in references])

        model = target if target is not None else (self._module(entries[-1]) if len(entries) > n_references else None)
        return Built(model, predict)

    def user_code(self) -> tuple[Any, ...]:
        return (self.train_fn, self.factory)
