"""PrivacyTrainer: the one path from a model source and a data set to an audit's trained models.

It joins the split, the store, locks, the executor and progress: every model (each reference, the
target, and a training function's target trained again for an attack that needs it live) is looked
up in the store under its key, trained by the executor when missing, published, and counted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import MembershipData, Population, References
from ..data.text import TextDataset
from ..data.text_membership import TextReferences
from ..engine.executors import Executor, LocalExecutor, Trained
from ..engine.progress import Progress
from ..engine.store import ModelStore, digest
from .canaries import CanaryRun, CanarySet, default_count, no_trace
from .dataset import as_dataset, checked_dataset, dataset_identity
from .job import ModelSource, TrainJob
from .lm_canaries import (
    DEFAULT_LENGTH,
    DEFAULT_PER_COUNT,
    DEFAULT_REPETITIONS,
    LMCanaryRun,
    LMCanarySet,
    lm_canary_texts,
)
from .lm_recipe_source import LMRecipeSource
from .setup import AuditSetup
from .sources import FunctionSource, RecipeSource, model_source
from .split import Split
from .stacked_text_source import StackedTextSource
from .step_scores import SCORES as STEP_SCORES
from .step_scores import StepScoredSource, takes_on_step
from .text_packing import text_arrays
from .text_source import text_source

__all__ = ["PrivacyTrainer"]


DEFAULT_GRADIENT_CANARIES = 1000  # white-box canaries: one parameter coordinate each


@dataclass
class PrivacyTrainer:
    """Trains and memoises audits, reusing models from a ``store`` when given one.

    Each model is cached on its own (keyed by its source), so a larger reference set trains only the
    new references, and a re-run with nothing changed trains nothing. Work on one reference set is
    serialised by a lock, so xdist workers that need it train it once.
    """

    store: ModelStore | None = None
    max_memory: int | None = None
    progress: Callable[[], AbstractContextManager[Progress]] | None = None
    executor: Executor = field(default_factory=LocalExecutor)
    _memo: dict[str, AuditSetup] = field(default_factory=dict)
    models_trained: int = 0
    models_loaded: int = 0
    seconds_training: float = 0.0
    key_covers: set[str] = field(default_factory=set)  # what this session's cache keys cover

    def audit(
        self, how: Any, dataset: Any, *, n_references: int, seed: int, device: str = "auto", population: float = 0.0,
    ) -> AuditSetup:
        """Train (or reuse) the target and ``n_references`` references on ``dataset``.

        ``how`` is a :class:`~pytest_privacy.TrainingRecipe`, a training function
        ``(x, y, *, seed, device) -> model`` (called once per model on its half with a per-model
        integer seed), or a model source. ``population`` > 0 holds that share of the points out of
        every model's training and of the audit, as RMIA's population (``References.population``).
        """
        source = model_source(how)
        text = None
        if isinstance(dataset, TextDataset):  # a language model's fine-tunes: the same split, keys and store
            text, x, y = text_arrays(dataset)
            source = text_source(source, text, population=population)
        else:
            x, y = as_dataset(dataset)
        device_type = self.executor.device_type(device)
        source = source.on(device_type)  # what the keys promise, wherever it trains
        split = Split.make(len(x), n_references, seed, validation=source.validation_share, population=population)
        data_id = dataset_identity(x, y)
        keys = [source.key(data_id, k, s, device_type) for k, s in zip(split.keep, split.seeds)]
        set_key = digest(*keys)
        if set_key in self._memo:  # (checked and described when it was first asked for)
            return self._memo[set_key]
        source.check(x, y, int(split.keep.sum(axis=1).min()))
        self._describe_keys(source, data_id, x)
        job = TrainJob(
            source, x, y, split.keep, split.seeds, device, self.max_memory, split.validation,
            keep_models=self.executor.in_process,  # live models come back for free in this process
        )
        start = time.perf_counter()
        if source.vectorised:
            trained = self._train(job, keys, range(len(keys)), reuse=True)
        else:
            # The target first: a model that answers only labels needs no references (only the
            # label-only attacks can audit it, and they query the target alone).
            [target] = self._train(job, keys, [split.target], reuse=True)
            labels_only = "labels" in target.entry
            trained = [*([] if labels_only else self._train(job, keys, range(n_references), reuse=True)), target]
        elapsed = time.perf_counter() - start

        def retrain_target() -> Any:
            # An attack that needs the live target (perturbed inputs, gradients) when its weights
            # are not stored: the same job, model and key, through the same lock, executor and count.
            [again] = self._train(replace(job, keep_models=True), keys, [split.target], reuse=False)
            return again.model

        built = source.build(
            job, [t.entry for t in trained], n_references=len(trained) - 1, target=trained[-1].model,
            retrain=retrain_target,
        )
        points = split.points
        references: Any = None
        if text is not None and n_references:
            lp = np.stack([r.entry["lm_lp"][points] for r in trained[:n_references]]).astype(np.float64)
            references = TextReferences(lp, split.keep[:n_references][:, points], seed)
        elif text is None and "logits" in trained[-1].entry:
            references = _references(trained[:n_references], split, x, y, source, seed, built.predict)
        setup = AuditSetup(
            built.target, x, y, references, seed, elapsed, points, split.keep[-1], ensemble=built.ensemble,
            data_id=data_id, text=text,
        )
        self._memo[set_key] = setup
        return setup

    def references_for(
        self, how: Any, dataset: Any, is_member: Any, *, n_references: int, seed: int, device: str = "auto",
    ) -> MembershipData:
        """References for a model trained elsewhere (a checkpoint) on a known split: ``is_member[n]``
        says whether it trained on point ``n`` of ``dataset``. Only the references train, as
        ``how`` (a recipe or training function) trains; no target. They are the references an
        audit of the same data, seed and recipe trains, so each cache serves the other.
        """
        source = model_source(how)
        x, y, kept = checked_dataset(dataset)
        member = np.asarray(is_member)
        if member.dtype != np.bool_ or member.shape != kept.shape:
            raise ValueError(
                f"is_member must be a bool array with one entry per data set row ({kept.size}), got "
                f"{member.dtype} {list(member.shape)}."
            )
        member = member[kept]
        device_type = self.executor.device_type(device)
        source = source.on(device_type)  # what the keys promise, wherever it trains
        split = Split.make(len(x), n_references, seed, validation=source.validation_share)
        source.check(x, y, int(split.keep[:-1].sum(axis=1).min()))
        points = split.points
        if member[points].all() or not member[points].any():
            raise ValueError("is_member must mark both members and non-members among the audited points.")
        data_id = dataset_identity(x, y)
        self._describe_keys(source, data_id, x)
        keys = [source.key(data_id, k, s, device_type) for k, s in zip(split.keep[:-1], split.seeds[:-1])]
        job = TrainJob(source, x, y, split.keep[:-1], split.seeds[:-1], device, self.max_memory, split.validation)
        trained = self._train(job, keys, range(n_references), reuse=True, target=None)
        if "labels" in trained[0].entry:
            raise ValueError(
                "the references answer only labels: no reference-based attack can use them; run the "
                "label-only attacks on your model without references."
            )
        built = source.build(job, [t.entry for t in trained], n_references=n_references, target=None, retrain=lambda: None)
        references = _references(trained, split, x, y, source, seed, built.predict)
        data = MembershipData(x[points], y[points], member[points], references)
        data.data_id = data_id
        return data

    def canary_run(
        self, how: Any, dataset: Any, *, n_canaries: int | None = None, seed: int, device: str = "auto",
        kind: str = "input",
    ) -> CanaryRun:
        """Train ``how`` once with ``n_canaries`` canaries of ``kind`` (input-space canaries, or
        mislabelled data points), each included with probability 1/2 (:class:`CanarySet`), and score
        every canary: the input of a one-run audit of a differential-privacy claim (``n_canaries=None``:
        :func:`~pytest_privacy.audit.canaries.default_count`). Cached like every model (its key covers
        the canaries)."""
        source = model_source(how)
        if kind == "gradient":
            return self._gradient_canary_run(source, dataset, n_canaries=n_canaries, seed=seed, device=device)
        if source.validation_share > 0:
            raise ValueError("a one-run audit trains on all the data: a defense with a validation pool cannot join it.")
        x, y = as_dataset(dataset)
        count = default_count(kind, len(y)) if n_canaries is None else n_canaries
        canaries = CanarySet.draw(x, y, count, seed, kind)
        x_train, y_train, keep = canaries.training_set(x, y)
        x = x_train
        if type(source) is FunctionSource and takes_on_step(source.train_fn):  # white-box: every step read
            source = StepScoredSource(source.train_fn, rows=canaries.rows, labels=canaries.labels)
        source.check(x, y_train, int(keep.sum()))
        device_type = self.executor.device_type(device)
        source = source.on(device_type)  # what the keys promise, wherever it trains
        model_seed = np.random.SeedSequence(seed, spawn_key=(0x63616E, 1))
        data_id = digest(x, y_train)  # the canaries (inputs and labels) are part of the data
        start, trained_before = time.perf_counter(), self.models_trained
        trained = self._one_run(source, data_id, x, y_train, keep, model_seed, device, device_type, "training the canary model")
        if "logits" not in trained.entry:
            raise ValueError("the model answers only labels: a canary audit scores log-probabilities; return logits.")
        if STEP_SCORES in trained.entry:
            scores = np.asarray(trained.entry[STEP_SCORES], dtype=np.float64)
            description = canaries.describe() + "; scored white-box: each step's update along the canary's gradient (on_step)"
        else:
            scores = canaries.scores(trained.entry["logits"][:, 0])
            description = canaries.describe()
        recipe = getattr(source, "recipe", None)
        defense = getattr(recipe, "defense", None)
        return CanaryRun(
            scores, canaries.included, seed, time.perf_counter() - start, self.models_trained > trained_before,
            None if defense is None else defense.accountant_epsilon,
            description, dataset_identity(*as_dataset(dataset)),
            no_trace(trained.entry["logits"][:, 0][: len(y)]),
        )

    def _gradient_canary_run(
        self, source: Any, dataset: Any, *, n_canaries: int | None, seed: int, device: str
    ) -> CanaryRun:
        """One run of the built-in DP-SGD with white-box Dirac gradient canaries planted in its clipped sums
        (:mod:`pytest_privacy.engine.defenses.dp_sgd`), each scored by the privatized sum at its coordinate."""
        recipe = getattr(source, "recipe", None)
        if not isinstance(source, RecipeSource) or getattr(recipe.defense, "kind", None) != "dp_sgd":
            raise ValueError(
                "gradient canaries are planted inside the built-in DP-SGD: audit a TrainingRecipe with "
                "defense=DPSGD(...); for any other training loop use input canaries (kind='input')."
            )
        count = DEFAULT_GRADIENT_CANARIES if n_canaries is None else n_canaries
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 2:
            raise ValueError(f"n_canaries must be an integer >= 2, got {count!r}.")
        defense = recipe.defense.model_copy(update={"canaries": int(count)})
        source = RecipeSource(recipe.with_defense(defense))
        x, y = as_dataset(dataset)
        keep = np.ones(len(y), dtype=bool)
        source.check(x, y, len(y))
        device_type = self.executor.device_type(device)
        source = source.on(device_type)
        model_seed = np.random.SeedSequence(seed, spawn_key=(0x63616E, 2))
        data_id = dataset_identity(x, y)
        start, trained_before = time.perf_counter(), self.models_trained
        trained = self._one_run(source, data_id, x, y, keep, model_seed, device, device_type, "training the canary model")
        return CanaryRun(
            np.asarray(trained.entry["extra.dp_canary_scores"], dtype=np.float64),
            np.asarray(trained.entry["extra.dp_canary_included"], dtype=bool), seed, time.perf_counter() - start,
            self.models_trained > trained_before, defense.accountant_epsilon,
            f"{int(count)} white-box Dirac gradient canaries inside DP-SGD (clip {defense.clip:g}), one run", data_id,
        )

    def lm_canary_run(
        self, how: Any, text: TextDataset, *, seed: int, device: str = "auto",
        repetitions: tuple[int, ...] = DEFAULT_REPETITIONS, per_count: int = DEFAULT_PER_COUNT,
        length: int = DEFAULT_LENGTH,
    ) -> LMCanaryRun:
        """Fine-tune ``how`` (a training function or an LMRecipe) once on ``text`` with canaries planted
        (:class:`~pytest_privacy.audit.lm_canaries.LMCanarySet`: ``per_count`` per repetition count, each
        planted with probability 1/2) and rank every canary's secret among the whole space: what
        ``assert_canary_exposure_below`` judges. Cached like every model (its key covers the canaries)."""
        if not isinstance(text, TextDataset):
            raise TypeError(f"an LM canary run fine-tunes on a TextDataset, got {type(text).__name__}.")
        canaries = LMCanarySet.draw(text, seed=seed, repetitions=repetitions, per_count=per_count, length=length)
        data_id = dataset_identity(*text_arrays(text)[1:])  # the texts' identity, as their audit names them
        source = text_source(model_source(how), text)  # (the same checks as an audit's)
        device_type = self.executor.device_type(device)
        if isinstance(source, (LMRecipeSource, StackedTextSource)):  # one fine-tune by the recipe or loop, named by it
            source.check(*text_arrays(text)[1:], len(text))
            source = lm_canary_texts(source.on(device_type).as_function(), text, canaries)
        else:
            source = lm_canary_texts(source.train_fn, text, canaries)
        _, x, y = text_arrays(source.text, drop_duplicates=False)  # a canary's copies are the point
        model_seed = np.random.SeedSequence(seed, spawn_key=(0x6C6D, 1))
        start, trained_before = time.perf_counter(), self.models_trained
        trained = self._one_run(
            source, digest(x), x, y, np.ones(len(x), dtype=bool), model_seed, device, device_type, "fine-tuning with canaries"
        )
        return LMCanaryRun(
            canaries, trained.entry["candidate_ll"], seed, time.perf_counter() - start,
            self.models_trained > trained_before, data_id, secret_ll=trained.entry.get("secret_ll"),
        )

    def _one_run(
        self, source: ModelSource, data_id: str, x: np.ndarray, y: np.ndarray, keep: np.ndarray,
        model_seed: np.random.SeedSequence, device: str, device_type: str, what: str,
    ) -> Trained:
        """One model of ``source`` on the ``keep`` rows of ``x`` (a one-run audit's): from the store, or
        trained through the same keys, locks and executor as every audit's models."""
        self._describe_keys(source, data_id, x)
        keys = [source.key(data_id, keep, model_seed, device_type)]
        job = TrainJob(source, x, y, keep[None], (model_seed,), device, self.max_memory)
        [trained] = self._train(job, keys, [0], reuse=True, target=None, what=what)
        return trained

    def _describe_keys(self, source: ModelSource, data_id: str, x: np.ndarray) -> None:
        """Say in the session's summary what this audit's cache keys cover: the code and the data."""
        self.key_covers.update([source.covers(), f"data {data_id[:16]} ({len(x):,} rows, {x.shape[1:]} each)"])

    def _train(
        self, job: TrainJob, keys: list[str], models: Sequence[int], *, reuse: bool, target: int | None = -1,
        what: str | None = None,
    ) -> list[Trained]:
        """``models``' trained entries: from the store (when ``reuse``), or trained by the executor
        (and published) when missing. The lock covers the whole reference set, so xdist workers
        that need it train it once. ``target`` is the target's index (-1: the last; None: none)."""
        source = job.source
        target = None if target is None else range(len(keys))[target]

        def describe(i: int) -> str:
            name = "the target model" if i == target else f"reference model {i}"
            return f"{name} (seed {source.seed_of(job.seeds[i])})"  # the seed a person reproduces it with

        found: dict[int, Trained] = {}
        if reuse and self.store is not None:
            # First without a lock: entries are published whole, so one that passes every check
            # is the entry; a warm run (every entry present) then takes no lock at all. Whatever is
            # missing or fails a check is read again under its lock by get() (which warns about a
            # bad entry and deletes it), since another worker may be publishing it meanwhile.
            for i in models:
                entry = self.store.get_valid(keys[i])
                if entry is not None:
                    found[i] = Trained(entry)
            if len(found) == len(models):
                self.models_loaded += len(found)
                return [found[i] for i in models]
        # A lock per model, not per reference set: xdist workers whose sets overlap (an auto audit's
        # 4 and 8 references, a smoke set beside a ci set) each train only the models nobody else is
        # training, then read the others from the store once their owner has published them.
        loaded = len(found)
        missing = [i for i in models if i not in found]
        while missing:
            with contextlib.ExitStack() as held:
                mine = [i for i in missing if held.enter_context(self._try_lock(keys[i]))]
                if reuse and self.store is not None:
                    for i in mine:  # published since the first look: read it, do not train it
                        entry = self.store.get(keys[i])
                        if entry is not None:
                            found[i], loaded = Trained(entry), loaded + 1
                todo = [i for i in mine if i not in found]
                if todo:
                    self._run(job, keys, todo, found, describe, what or _what(todo, target))
            others = [i for i in models if i not in found]
            if others:  # locked by another process: wait for it, then read what it published
                with self._lock(keys[others[0]]):
                    pass
                for i in others if reuse and self.store is not None else ():
                    entry = self.store.get_valid(keys[i])
                    if entry is not None:
                        found[i], loaded = Trained(entry), loaded + 1
            missing = [i for i in models if i not in found]
        self.models_loaded += loaded
        return [found[i] for i in models]

    def _run(
        self, job: TrainJob, keys: list[str], todo: list[int], found: dict[int, Trained],
        describe: Callable[[int], str], what: str,
    ) -> None:
        """Train ``todo`` on the executor (which publishes each unit as it finishes), counting them."""
        start = time.perf_counter()
        show = self.progress() if self.progress is not None else nullcontext("off")
        with show as progress:
            units = self.executor.units(todo, vectorised=job.vectorised)
            try:
                for unit, got in self.executor.run(
                    job, units, keys=keys, store=self.store, describe=describe, progress=progress, what=what
                ):
                    found.update(zip(unit, got))
                    self.models_trained += len(unit)  # as they finish: an interrupted run counts right
            finally:
                self.seconds_training += time.perf_counter() - start

    def _try_lock(self, key: str) -> AbstractContextManager[bool]:
        """The model's lock if no other process holds it (True), else False at once."""
        return self.store.try_lock(key) if self.store is not None else nullcontext(True)

    def _lock(self, key: str) -> AbstractContextManager[None]:
        return self.store.lock(key) if self.store is not None else nullcontext()


def _what(missing: list[int], target: int | None) -> str:
    """What a progress display counts: the models of this call, the target named apart from the
    references (a line once said 16/16 models when 17 trained: the target was counted elsewhere)."""
    refs = len(missing) - (target in missing)
    parts = ([f"{refs} reference model{'s' if refs != 1 else ''}"] if refs else []) + (
        ["the target model"] if target in missing else []
    )
    return "training " + " and ".join(parts or [f"{len(missing)} models"])


def _references(
    trained: list[Trained], split: Split, x: np.ndarray, y: np.ndarray, source: ModelSource, seed: int,
    predict: Callable[[np.ndarray], np.ndarray] | None,
) -> References:
    """The references of an audit from their trained entries (the first ``len(trained)`` models of
    ``split``): logits on the audited points, and on the held-out population when there is one."""
    logits = np.stack([t.entry["logits"] for t in trained])
    points, held = split.points, split.population
    return References(
        logits[:, points], split.keep[: len(trained)][:, points], source.augmentations, seed, predict=predict,
        population=Population(x[held], y[held], logits[:, held]) if held.size else None,
    )
