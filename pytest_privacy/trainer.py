"""PrivacyTrainer: from a recipe and a data set to a target model, references and audit data.

The audit population is the whole data set. The target trains on a seeded random half (its
members); the M references train on ``balanced_keep`` halves, so every audit point is IN for half
of them. Target and references are one ensemble of M + 1 models, trained as one vectorised program.
Results are memoised for the life of the trainer and, with a store, cached per model on disk.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import MembershipData, Population, References, check_inputs, check_labels, row_ids
from .querying import CachedTarget
from .training.executors import Entry, Executor, LocalExecutor, Work
from .training.keep import balanced_keep, function_seed, model_seeds, torch_seed
from .training.progress import Progress
from .training.recipe import TrainingRecipe
from .training.store import ModelStore, digest

if TYPE_CHECKING:
    from .training.ensemble import Ensemble

__all__ = [
    "AuditSetup", "CachedTarget", "PrivacyDataWarning", "PrivacyTrainer", "as_dataset", "train_with_function", "train_with_recipe",
    "training_function",
]


class PrivacyDataWarning(UserWarning):
    """The data set was changed before the audit (duplicate rows were dropped)."""


def as_dataset(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accept ``(x, y)`` (a tuple, ``Dataset``, or anything with ``.x``/``.y``) and check it before
    anything trains: at least two classes; rows with identical inputs are dropped but the first,
    with a warning, since the split would otherwise put copies of a member among the non-members."""
    if isinstance(dataset, dict):
        raise TypeError(
            f"privacy_dataset must return (x, y) arrays, got a dict with keys {sorted(dataset)[:5]}; "
            "return (data['x'], data['y']) or the like."
        )
    if hasattr(dataset, "x") and hasattr(dataset, "y"):
        x, y = dataset.x, dataset.y
    else:
        try:
            x, y = dataset
        except (TypeError, ValueError):
            raise TypeError(
                f"privacy_dataset must return (x, y) arrays, got {type(dataset).__name__}."
            ) from None
    x = check_inputs(x)
    y = check_labels(y, len(x))
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(
            f"privacy_dataset has one class only (label {int(classes[0])}); a classifier audit needs at least 2 classes."
        )
    ids = row_ids(x)
    first = np.zeros(len(x), dtype=bool)
    first[np.unique(ids, return_index=True)[1]] = True
    if not first.all():
        warnings.warn(
            f"privacy_dataset has {int((~first).sum())} rows whose inputs duplicate an earlier row; the audit "
            f"keeps the first of each ({int(first.sum())} of {len(x)} rows), so that no copy of a member is "
            "counted as a non-member.",
            PrivacyDataWarning, stacklevel=3,
        )
        x, y = x[first], y[first]
    return x, y


_TARGET = 0x746172  # the target's spawn key: apart from the references' 0, 1, 2, ...


def target_seed(seed: int) -> np.random.SeedSequence:
    """The target model's seed: independent of how many references there are."""
    return np.random.SeedSequence(seed, spawn_key=(_TARGET, 1))


def target_keep(n_points: int, seed: int) -> np.ndarray:
    """The target's members: a seeded random half of the audit points."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TARGET, 0)))
    keep = np.zeros(n_points, dtype=bool)
    keep[rng.permutation(n_points)[: n_points // 2]] = True
    return keep


def validation_pool(n_points: int, fraction: float, seed: int, *, purpose: int = 2) -> np.ndarray:
    """Indices of a seeded pool of points held out of every model's training (the same for all):
    a defended recipe's validation points (``purpose=2``) or RMIA's population (``purpose=3``)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TARGET, purpose)))
    return np.sort(rng.permutation(n_points)[: max(1, round(fraction * n_points))])


@dataclass(frozen=True)
class AuditSplit:
    """Who trains on what: ``keep[m]`` for the M references and the target (last row), with each
    model's seed, and which points are audited (``points``) or held out of everything as RMIA's
    population (``held_out``)."""

    keep: np.ndarray
    points: np.ndarray
    held_out: np.ndarray
    seeds: list[np.random.SeedSequence]  # per model, the target's last


def audit_split(
    n_points: int, n_references: int, seed: int, *, pool: np.ndarray | None = None, population: float = 0.0
) -> AuditSplit:
    """The split of an audit, the same for a recipe and a training function: references on
    balanced halves of the audited points, the target on its own random half (the same whether or
    not a defended recipe's validation ``pool`` is held out, so a defended baseline pairs with it);
    ``population`` > 0 holds that share out of every model and of the audit."""
    points, held_out = np.arange(n_points), np.zeros(0, dtype=np.int64)
    if pool is not None:
        points = np.setdiff1d(points, pool)
    if population > 0:
        held_out = np.setdiff1d(validation_pool(n_points, population, seed, purpose=3), [] if pool is None else pool)
        points = np.setdiff1d(points, held_out)
    keep = np.zeros((n_references + 1, n_points), dtype=bool)
    keep[:n_references, points] = balanced_keep(n_references, len(points), seed)
    keep[-1] = target_keep(n_points, seed)
    if pool is not None:
        keep[-1, pool] = False
    keep[-1, held_out] = False
    return AuditSplit(keep, points, held_out, model_seeds(seed, range(n_references)) + [target_seed(seed)])


@dataclass
class AuditSetup:
    """Everything one audit needs: the trained ensemble (last model = target) and the data.

    ``points`` are the indices of the data set's points that are audited: all of them, except a
    defended recipe's validation pool, which its models have seen.
    """

    ensemble: Ensemble | None
    x: np.ndarray
    y: np.ndarray
    references: References
    seed: int
    train_seconds: float
    points: np.ndarray
    target_keep: np.ndarray  # the target's row of the split
    function_target: Any = None  # the target when there is no ensemble (a training function)

    @property
    def target(self) -> Any:
        """The target model: trained on a random half of the audit points (its members)."""
        if self.ensemble is None:
            return self.function_target
        return self.ensemble.model(len(self.ensemble) - 1)

    @property
    def is_member(self) -> np.ndarray:
        """Which audit points the target trained on."""
        return self.target_keep[self.points]

    def membership_data(self) -> MembershipData:
        """Audit points, the target's membership, and the references' logits."""
        return MembershipData(self.x[self.points], self.y[self.points], self.is_member, self.references)


def model_key(
    recipe: TrainingRecipe, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str
) -> str:
    """Cache key of one trained model: everything that determines its weights and logits (the
    leading tag changes with the engine's arithmetic: /2 is the hand-written MLP backward, /3 the
    defenses' per-model draws)."""
    import torch

    from . import __version__

    return digest(
        "pytest-privacy-model/3", recipe.canonical_json(), data_id, np.packbits(keep_row),
        seed.entropy, seed.spawn_key, __version__, torch.__version__, device_type,
        "bf16-autocast" if device_type == "cuda" else "float32",
    )


@dataclass
class PrivacyTrainer:
    """Trains and memoises audit setups, reusing models from a ``store`` when given one.

    Each model is cached on its own (keyed by :func:`model_key`), so a larger reference set trains
    only the new references, and a re-run with nothing changed trains nothing. Work on one
    reference set is serialised by a lock, so xdist workers that need it train it once.
    """

    store: ModelStore | None = None
    max_memory: int | None = None
    progress: Callable[[], AbstractContextManager[Progress]] | None = None
    executor: Executor = field(default_factory=LocalExecutor)
    _memo: dict[str, AuditSetup] = field(default_factory=dict)
    models_trained: int = 0
    models_loaded: int = 0
    seconds_training: float = 0.0

    def audit(
        self, recipe: TrainingRecipe, dataset: Any, *, n_references: int, seed: int, device: str = "auto",
        population: float = 0.0,
    ) -> AuditSetup:
        """Train (or reuse) the target and ``n_references`` references of ``recipe`` on ``dataset``.

        ``population`` > 0 holds that share of the points out of every model's training and of the
        audit, as RMIA's population (``References.population``).
        """
        from .training.ensemble import Ensemble

        if not isinstance(recipe, TrainingRecipe):
            raise TypeError(
                f"privacy_recipe must return a pytest_privacy.TrainingRecipe, got {type(recipe).__name__}."
            )
        x, y = as_dataset(dataset)
        device_type = self.executor.device_type(device)
        data_id = digest(x, y)
        n = len(x)
        pool = validation_pool(n, recipe.validation_fraction, seed) if recipe.defense == "mmd_mixup" else None
        split = audit_split(n, n_references, seed, pool=pool, population=population)
        keep, seeds = split.keep, split.seeds
        keys = [model_key(recipe, data_id, k, s, device_type) for k, s in zip(keep, seeds)]
        set_key = digest(*keys)
        if set_key in self._memo:
            return self._memo[set_key]
        shared = {
            "recipe": recipe, "x": x, "y": y, "keep": keep, "seeds": seeds, "device": device,
            "max_memory": self.max_memory, "validation": pool,
        }
        entries, elapsed = self._train(keys, train_with_recipe, shared, vectorised=True, seeds=seeds)
        params = {
            k[len("param."):]: torch_stack([e[k] for e in entries]) for k in entries[0] if k.startswith("param.")
        }
        n_classes = int(entries[0]["logits"].shape[-1])
        ensemble = Ensemble(recipe, params, keep, seeds, tuple(x.shape[1:]), n_classes, seed=seed)
        points, held_out = split.points, split.held_out
        ref_logits = np.stack([e["logits"] for e in entries[:n_references]])
        refs = References(
            ref_logits[:, points], keep[:n_references][:, points], tuple(recipe.augmentations), seed,
            predict=ensemble.predictor(range(n_references)),
            population=Population(x[held_out], y[held_out], ref_logits[:, held_out]) if held_out.size else None,
        )
        setup = AuditSetup(ensemble, x, y, refs, seed, elapsed, points, target_keep=keep[-1])
        self._memo[set_key] = setup
        return setup

    def audit_function(
        self, train_fn: Callable[..., Any], dataset: Any, *, n_references: int, seed: int, device: str = "auto",
        population: float = 0.0,
    ) -> AuditSetup:
        """Like :meth:`audit`, for the user's own ``train_fn(x, y, *, seed, device) -> model``, called
        once per model on its keep subset with a per-model integer seed. Each model's logits on the
        audit points are cached; weights never are (the target retrains on demand, see
        :class:`CachedTarget`)."""
        import torch

        from . import __version__

        from .querying import is_module

        if not callable(train_fn) or is_module(train_fn):
            raise TypeError(
                f"privacy_train_fn must return a training function (x, y, *, seed, device) -> model, got "
                f"{'an nn.Module instance' if is_module(train_fn) else type(train_fn).__name__}: wrap your "
                "training loop in a function that builds, trains and returns a fresh model."
            )
        x, y = as_dataset(dataset)
        device_type = self.executor.device_type(device)
        split = audit_split(len(x), n_references, seed, population=population)
        keep, seeds = split.keep, split.seeds
        ident, data_id = function_identity(train_fn), digest(x, y)
        keys = [
            # /2: training functions get 31-bit seeds (function_seed)
            digest("pytest-privacy-fn/2", ident, data_id, np.packbits(k), s.entropy, s.spawn_key, __version__,
                   torch.__version__, device_type)
            for k, s in zip(keep, seeds)
        ]
        set_key = digest(*keys)
        if set_key in self._memo:
            return self._memo[set_key]
        models: dict[int, Any] = {}  # models trained in this process (the local executor's)
        shared = {"train_fn": train_fn, "x": x, "y": y, "keep": keep, "seeds": seeds, "device": device}
        if self.executor.name == "local":
            shared["trained"] = models
        entries, elapsed = self._train(keys, train_with_function, shared, vectorised=False, seeds=seeds)
        stacked = np.stack([e["logits"] for e in entries])

        def train_target() -> Any:
            # The target's weights are not cached: an attack that needs the live model (perturbed
            # inputs, gradients) trains it again, with the same function, seed and split, counted.
            sink: dict[int, Any] = {}
            start = time.perf_counter()
            train_with_function([n_references], **{**shared, "trained": sink})
            self.models_trained += 1
            self.seconds_training += time.perf_counter() - start
            return sink[n_references]

        # The same kind of object on a cold and a warm cache, whichever process trained it.
        target = CachedTarget(x, stacked[-1, :, 0], train_target, model=models.get(n_references))
        points, held_out = split.points, split.held_out
        refs = References(
            stacked[:n_references][:, points], keep[:n_references][:, points], (), seed,
            population=Population(x[held_out], y[held_out], stacked[:n_references][:, held_out]) if held_out.size else None,
        )
        setup = AuditSetup(None, x, y, refs, seed, elapsed, points, target_keep=keep[-1], function_target=target)
        self._memo[set_key] = setup
        return setup

    def _train(
        self, keys: list[str], work: Work, shared: dict[str, Any], *, vectorised: bool,
        seeds: list[np.random.SeedSequence],
    ) -> tuple[list[Entry], float]:
        """Every model's entry: from the store, or trained by the executor (and published) when missing.

        Work on one set of models is serialised by a lock, so xdist workers that need it train it once.
        """
        # The seed a person can reproduce the model with: what a training function was handed.
        seed_of = torch_seed if vectorised else function_seed

        def describe(i: int) -> str:
            name = "the target model" if i == len(keys) - 1 else f"reference model {i}"
            return f"{name} (seed {seed_of(seeds[i])})"

        lock = self.store.lock(digest(*keys)) if self.store is not None else nullcontext()
        start = time.perf_counter()
        with lock:
            entries = [self.store.get(k) if self.store is not None else None for k in keys]
            missing = [i for i, e in enumerate(entries) if e is None]
            self.models_loaded += len(keys) - len(missing)
            if missing:
                show = self.progress() if self.progress is not None else nullcontext("off")
                with show as progress:
                    units = self.executor.units(missing, vectorised=vectorised)
                    try:
                        for unit, got in self.executor.run(
                            work, shared, units, keys=keys, store=self.store, describe=describe, progress=progress
                        ):
                            for i, entry in zip(unit, got):
                                entries[i] = entry
                            self.models_trained += len(unit)  # as they finish: an interrupted run counts right
                    finally:
                        self.seconds_training += time.perf_counter() - start
        return entries, time.perf_counter() - start


def train_with_recipe(
    unit: list[int], *, recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray,
    seeds: list[np.random.SeedSequence], device: str, max_memory: int | None, validation: np.ndarray | None,
    progress: Progress | bool = False,
) -> list[Entry]:
    """Executor work: train the ``unit`` models of a recipe as one vectorised program; return each
    one's logits on ``x`` (with the recipe's augmentations) and weights."""
    from .training.ensemble import train_models

    trained = train_models(
        recipe, x, y, keep[unit], [seeds[i] for i in unit], device=device, max_memory=max_memory,
        progress=progress, validation=validation,
    )
    logits = trained.logits(x, device=device)
    return [
        {"logits": logits[j], **{f"param.{k}": v[j].numpy() for k, v in trained.params.items()}}
        for j in range(len(unit))
    ]


def train_with_function(
    unit: list[int], *, train_fn: Callable[..., Any], x: np.ndarray, y: np.ndarray, keep: np.ndarray,
    seeds: list[np.random.SeedSequence], device: str, progress: Progress | bool = False, trained: dict[int, Any] | None = None,
) -> list[Entry]:
    """Executor work: train the ``unit`` models with the user's function, one after another; return
    each one's logits on ``x``. With ``trained``, also keep the live models there."""
    from .querying import query_logits
    from .training.ensemble import resolve_device

    dev = str(resolve_device(device))
    entries = []
    for i in unit:
        model = train_fn(x[keep[i]], y[keep[i]], seed=function_seed(seeds[i]), device=dev)
        entries.append({"logits": query_logits(model, x).astype(np.float32)})
        if trained is not None:
            trained[i] = model
    return entries


def training_function(version: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a ``privacy_train_fn`` with a version: bump it to retrain when something the function
    depends on (but its source does not show) changes; the cache key includes it."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__pytest_privacy_version__ = version  # type: ignore[attr-defined]
        return fn

    return mark


def function_identity(fn: Callable[..., Any]) -> str:
    """What names a training function in cache keys: qualified name, source hash and version."""
    from .training.recipe import callable_identity

    return f"{callable_identity(fn)}@{getattr(fn, '__pytest_privacy_version__', None)}"


def torch_stack(arrays: list[np.ndarray]) -> Any:
    """Stack per-model numpy arrays into one CPU tensor ``[M, ...]``."""
    import torch

    return torch.from_numpy(np.stack(arrays))
