"""Model sources: how the models of an audit are built, and what names them in the cache.

- :class:`RecipeSource`: a :class:`~pytest_privacy.TrainingRecipe`, trained by the engine as one
  vectorised program; weights and logits are stored, the target and references come back as an
  :class:`~pytest_privacy.Ensemble`.
- :class:`FunctionSource`: the user's ``train_fn(x, y, *, seed, device) -> model``, called once per
  model; only logits are stored (weights of arbitrary models are never pickled), and the target is
  a :class:`~pytest_privacy.data.querying.CachedTarget` that retrains on demand.

Each source owns its cache key: everything that determines a model (its leading tag changes with
the arithmetic, so old entries are never read as new ones).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.querying import CachedTarget, is_module
from ..engine.executors import Entry, Trained
from ..engine.recipe import TrainingRecipe
from ..engine.seeds import function_seed, torch_seed
from ..engine.store import digest
from .job import Built, ModelSource, library_versions
from .training_functions import declared, function_identity

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["FunctionSource", "RecipeSource", "model_source"]


@dataclass(frozen=True)
class RecipeSource:
    """Models of a :class:`~pytest_privacy.TrainingRecipe`, trained by the vectorised engine."""

    recipe: TrainingRecipe
    vectorised = True

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(self.recipe.augmentations)

    @property
    def validation_share(self) -> float:
        return 0.0 if self.recipe.defense is None else self.recipe.defense.validation_share

    @functools.cached_property
    def recipe_json(self) -> str:
        """The recipe's canonical JSON, once per source (every model's key contains it)."""
        return self.recipe.canonical_json()

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        import torch

        from ..data import check_exact_in_float32
        from ..engine.ensemble import check_stackable
        from ..engine.models import build_model

        check_exact_in_float32(x, what="privacy_dataset's inputs")
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            check_stackable(
                build_model(self.recipe, tuple(x.shape[1:]), int(y.max()) + 1), self.recipe, min_points,
                example_shape=tuple(x.shape[1:]),
            )

    def on(self, device_type: str) -> RecipeSource:
        from ..engine.precision import training_precision

        # the same recipe JSON (precision is not in it), the arithmetic now fixed
        return replace(self, recipe=self.recipe.model_copy(update={"precision": training_precision(self.recipe, device_type)}))

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        from ..engine.precision import training_precision

        precision = training_precision(self.recipe, device_type)
        # /4: defenses as settings objects and one shared loss (mixup's soft targets)
        return digest(
            "pytest-privacy-model/4", self.recipe_json, data_id, np.packbits(keep_row),
            seed.entropy, seed.spawn_key, *library_versions(device_type),
            "bf16-autocast" if precision == "bf16" else "float32",
        )

    def seed_of(self, seed: np.random.SeedSequence) -> int:
        return torch_seed(seed)

    def covers(self) -> str:
        line = "recipe: every TrainingRecipe field"
        if self.recipe.precision != "auto":  # fixed by on(): say what the models train in
            line += f", trained in {self.recipe.precision}"
        if callable(self.recipe.model):
            from ..engine.code_identity import code_identity

            line += f"; model factory {code_identity(self.recipe.model).describe()}"
        return line

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..engine.ensemble import train_models

        trained = train_models(
            self.recipe, job.x, job.y, job.keep[unit], [job.seeds[i] for i in unit], device=job.device,
            max_memory=job.max_memory, progress=progress, validation=job.validation,
        )
        logits = trained.logits(job.x, device=job.device)
        return [
            Trained({"logits": logits[j], **{f"param.{k}": v[j].numpy() for k, v in trained.params.items()},
                     **{f"extra.{k}": v[j] for k, v in trained.extras.items()}})
            for j in range(len(unit))
        ]

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        import torch

        from ..engine.ensemble import Ensemble

        params = {
            k.removeprefix("param."): torch.from_numpy(np.stack([e[k] for e in entries]))
            for k in entries[0] if k.startswith("param.")
        }
        n_classes = int(entries[0]["logits"].shape[-1])
        ensemble = Ensemble(self.recipe, params, job.keep, list(job.seeds), tuple(job.x.shape[1:]), n_classes)
        target = ensemble.model(n_references) if len(entries) > n_references else None
        return Built(target, ensemble.predictor(range(n_references)), ensemble)

    def user_code(self) -> tuple[Any, ...]:
        code = (self.recipe.model,) if callable(self.recipe.model) else ()
        return code + ((type(self.recipe.defense),) if self.recipe.defense is not None else ())


@dataclass(frozen=True)
class FunctionSource:
    """Models of the user's ``train_fn(x, y, *, seed, device) -> model``, one call per model.

    The augmentations the function declared (``@training_function(augmentations=...)``) are the
    query set its models' logits are cached on, as LiRA needs: queries match training. A model that
    answers only labels has its labels cached instead, for the label-only attacks.
    """

    train_fn: Callable[..., Any]
    vectorised = False
    validation_share = 0.0

    @functools.cached_property
    def identity(self) -> str:
        """What names the function in cache keys (computed once: it walks the user's code)."""
        return function_identity(self.train_fn)

    @property
    def augmentations(self) -> tuple[str, ...]:
        return tuple(getattr(self.train_fn, "__pytest_privacy_augmentations__", ()))

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        return None  # the function is the user's: what it refuses, it raises while training

    def on(self, device_type: str) -> FunctionSource:
        return self  # the function decides its own arithmetic; its code is in the key

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        # /3: declared augmentations, and labels cached for labels-only models
        return digest(
            "pytest-privacy-fn/3", self.identity, self.augmentations, data_id,
            np.packbits(keep_row), seed.entropy, seed.spawn_key, *library_versions(device_type),
        )

    def seed_of(self, seed: np.random.SeedSequence) -> int:
        return function_seed(seed)

    def covers(self) -> str:
        from ..engine.code_identity import code_identity

        return f"training function {code_identity(self.train_fn).describe()}{declared(self.train_fn)}"

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..data.querying import query_answers
        from ..engine.ensemble import resolve_device

        device = str(resolve_device(job.device))
        out = []
        for i in unit:
            model = self.train_fn(job.x[job.keep[i]], job.y[job.keep[i]], seed=self.seed_of(job.seeds[i]), device=device)
            kind, answers = query_answers(model, job.x, self.augmentations)
            entry = {kind: answers.astype(np.float32 if kind == "logits" else np.int64)}
            out.append(Trained(entry, model if job.keep_models else None))
        return out

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        from ..data.augmentations import make_queries

        if len(entries) <= n_references:  # references only: they answer from their stored logits
            return Built(None)
        # The same kind of object on a cold and a warm cache, whichever process trained it; it
        # answers every cached query (the audit points and their declared augmentations).
        queries = make_queries(job.x, self.augmentations)
        rows = queries.reshape(-1, *queries.shape[2:])
        entry = entries[-1]
        answers = entry["labels"].reshape(-1) if "labels" in entry else entry["logits"].reshape(len(rows), -1)
        return Built(CachedTarget(rows, answers, retrain, model=target))

    def user_code(self) -> tuple[Any, ...]:
        return (self.train_fn,)


def model_source(how: Any) -> ModelSource:
    """The source for what a user gave: a recipe (a classifier's or a language model's), a training
    function, or a source itself."""
    from ..engine.lm_recipe import LMRecipe
    from .lm_recipe_source import LMRecipeSource
    from .stacked_source import StackedFunctionSource, is_stacked

    if isinstance(how, (RecipeSource, FunctionSource, StackedFunctionSource, LMRecipeSource)):
        return how
    if isinstance(how, TrainingRecipe):
        return RecipeSource(how)
    if isinstance(how, LMRecipe):
        return LMRecipeSource(how)
    if not callable(how) or is_module(how):
        raise TypeError(
            f"an audit trains a pytest_privacy.TrainingRecipe or a training function (x, y, *, seed, device) -> "
            f"model, got {'an nn.Module instance' if is_module(how) else type(how).__name__}: wrap your "
            "training loop in a function that builds, trains and returns a fresh model."
        )
    return StackedFunctionSource(how) if is_stacked(how) else FunctionSource(how)
