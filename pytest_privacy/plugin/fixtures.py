"""The plugin's fixtures: the user's placeholders (``privacy_recipe``, ``privacy_train_fn``,
``privacy_dataset``), the session's trainer, and what a test audits (``target_model``,
``membership_data``, ``reference_models_for``, ``dp_canary_run``, ``lm_canary_run``, ``mmd_baseline_model``,
``privacy_attack``). Each resolves how the model is trained and on what, then asks the trainer."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import pytest

from ..attacks import ATTACKS
from ..audit import PrivacyTrainer, model_source
from ..config import PrivacyConfig
from ..data import Baseline
from ..data.text import TextDataset
from ..engine.executors import make_executor
from ..engine.lm_recipe import LMRecipe
from ..engine.progress import Lines, Progress
from ..engine.recipe import TrainingRecipe
from ..stats.looks import AUTO_SCHEDULE, FIXED_LOOK, AdaptiveReferences
from .state import TRAINER, open_store, session_config


@pytest.fixture
def privacy_config(request: pytest.FixtureRequest) -> PrivacyConfig:
    """This test's privacy settings: ``@pytest.mark.privacy(...)`` > command line > ini > profile."""
    return session_config(request.config, request.node.get_closest_marker("privacy"))


@pytest.fixture(scope="session")
def privacy_trainer(pytestconfig: pytest.Config) -> Iterator[PrivacyTrainer]:
    """The session's trainer: trains target and reference models once, on the chosen executor
    (``--privacy-executor``), caches them in the store (``--privacy-cache-dir``, ``--privacy-no-cache``)
    and memoises them for the session."""
    settings = session_config(pytestconfig)
    store = None if settings.no_cache else open_store(pytestconfig, settings)
    _share_cores(pytestconfig)
    try:
        executor = make_executor(
            settings.executor, gpus_per_task=settings.ray_gpus_per_task, cpus_per_task=settings.ray_cpus_per_task,
            max_retries=settings.ray_max_retries,
        )
    except (ImportError, ValueError) as exc:
        pytest.fail(f"pytest-privacy: {exc}", pytrace=False)
    trainer = PrivacyTrainer(
        store=store, max_memory=settings.max_memory, progress=lambda: _progress(pytestconfig), executor=executor
    )
    pytestconfig.stash[TRAINER] = trainer
    try:
        yield trainer
    finally:
        executor.close()


def _share_cores(config: pytest.Config) -> None:
    """In an xdist worker, let torch use this worker's share of the cores: N workers each running
    torch's default of one thread per core spin against each other (measured on 2 cores under -n 2:
    17 small MLPs took 5.7 s instead of 0.1 s). An explicit OMP_NUM_THREADS is left alone."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    share = max(1, (os.cpu_count() or 1) // workers)
    if torch.get_num_threads() > share:
        torch.set_num_threads(share)


@contextmanager
def _progress(config: pytest.Config) -> Iterator[Progress]:
    """How training shows progress: a bar on a terminal, a line every few seconds in a CI log (and
    from xdist workers, whose stderr is the controller's), nothing under -q. pytest captures
    fixture output, so step outside the capture."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if config.get_verbosity() < 0:
        yield "off"
        return
    with capman.global_and_fixture_disabled() if capman is not None else nullcontext():
        if hasattr(config, "workerinput"):
            yield Lines()  # to the worker's stderr, which is the controller's: visible in the log
            return
        if sys.stderr.isatty():
            yield "bar"
            return
        reporter = config.pluginmanager.getplugin("terminalreporter")
        yield Lines(reporter.write_line if reporter is not None else None)  # on a line of its own


_UNDEFINED = object()  # what the placeholder fixtures return: the user has not defined them


@pytest.fixture(scope="session")
def privacy_recipe() -> Any:
    """Override me: return the ``TrainingRecipe`` your model is trained with, or for a language model
    the ``LMRecipe`` it is fine-tuned with (or define ``privacy_train_fn`` instead)."""
    return _UNDEFINED


@pytest.fixture(scope="session")
def privacy_train_fn() -> Any:
    """Override me (instead of ``privacy_recipe``): return your own training function
    ``(x, y, *, seed, device) -> model``, the model an ``nn.Module``, a callable returning logits, or a
    fitted estimator with ``predict_proba``. It is called once per reference model and for the
    target, each on its own half of the data, with its own seed (an int below 2**31)."""
    return _UNDEFINED


def _how_to_train(recipe: Any, train_fn: Any) -> tuple[str, Any]:
    # None says "not here": a subfolder whose conftest uses a training function sets the
    # recipe an outer conftest defines back to None (and the other way round).
    recipe = _UNDEFINED if recipe is None else recipe
    train_fn = _UNDEFINED if train_fn is None else train_fn
    if recipe is _UNDEFINED and train_fn is _UNDEFINED:
        pytest.fail(
            "pytest-privacy needs to know how your model is trained: define a `privacy_recipe` fixture "
            "in conftest.py returning pytest_privacy.TrainingRecipe(...), or a `privacy_train_fn` "
            "fixture returning your own training function (see the README).",
            pytrace=False,
        )
    if recipe is not _UNDEFINED and train_fn is not _UNDEFINED:
        pytest.fail(
            "both `privacy_recipe` and `privacy_train_fn` are defined; keep one: the recipe for the "
            "built-in vectorised trainer, or the function for your own training loop.",
            pytrace=False,
        )
    return ("recipe", recipe) if recipe is not _UNDEFINED else ("function", train_fn)


@pytest.fixture(scope="session")
def privacy_dataset() -> Any:
    """Override me: return the ``(x, y)`` audit population, e.g. ``load_example_dataset("digits")``."""
    return _UNDEFINED


def _population(request: pytest.FixtureRequest, config: PrivacyConfig) -> float:
    """The share held out as a population, for a test that needs one: its ``privacy_attack`` is an
    attack that needs a population, or its ``privacy`` marker sets ``population``. Every other test
    audits every point, whatever ``--privacy-population`` says: holding points out would shrink an
    unrelated gate's audit (and can turn its verdict INCONCLUSIVE)."""
    marker = request.node.get_closest_marker("privacy")
    if marker is not None and "population" in marker.kwargs:
        return config.population
    callspec = getattr(request.node, "callspec", None)
    attack = callspec.params.get("privacy_attack") if callspec is not None else None
    return config.population if attack is not None and ATTACKS[attack].needs_population else 0.0


def _source(kind: str, how: Any) -> Any:
    """The model source of the user's fixture, with an error that names the fixture."""
    if kind == "recipe" and not isinstance(how, (TrainingRecipe, LMRecipe)):
        raise TypeError(
            f"privacy_recipe must return a pytest_privacy.TrainingRecipe (a classifier) or LMRecipe (a language model's "
            f"fine-tune), got {type(how).__name__}."
        )
    try:
        return model_source(how)
    except TypeError as exc:
        raise TypeError(f"privacy_{'recipe' if kind == 'recipe' else 'train_fn'}: {exc}") from None


_NO_DATA = object()  # a fixture that trains on data it is handed later (reference_models_for)


def _opening(recipe: Any, train_fn: Any, dataset: Any = _NO_DATA) -> tuple[str, Any, Any]:
    """What every training fixture opens with: which fixture says how to train (``"recipe"`` or
    ``"function"``), its model source, and the checked data set (when the fixture trains on one)."""
    kind, how = _how_to_train(recipe, train_fn)
    return kind, _source(kind, how), None if dataset is _NO_DATA else _check_dataset(dataset)


def _check_dataset(dataset: Any) -> Any:
    if dataset is _UNDEFINED:
        pytest.fail(
            "pytest-privacy needs data to audit on: define a `privacy_dataset` fixture in conftest.py "
            "returning (x, y) arrays, e.g. pytest_privacy.load_example_dataset('digits').",
            pytrace=False,
        )
    return dataset


@pytest.fixture
def privacy_audit(
    request: pytest.FixtureRequest, privacy_trainer: PrivacyTrainer, privacy_recipe: Any, privacy_train_fn: Any,
    privacy_dataset: Any, privacy_config: PrivacyConfig,
) -> Any:
    """The trained target, references and audit data for this test's settings (memoised)."""
    c = privacy_config
    _, source, dataset = _opening(privacy_recipe, privacy_train_fn, privacy_dataset)
    return privacy_trainer.audit(
        source, dataset, n_references=_first_look(c), seed=c.seed, device=c.device, population=_population(request, c)
    )


def _first_look(c: PrivacyConfig) -> int:
    """The references an audit starts with: all of them, or under ``auto`` the first look's."""
    return AUTO_SCHEDULE[0] if c.n_references == "auto" else c.n_references


def _fixed_count(c: PrivacyConfig) -> int:
    """The references of an audit that has nothing to look again for (a baseline's)."""
    return FIXED_LOOK if c.n_references == "auto" else c.n_references


@pytest.fixture
def reference_models(privacy_audit: Any) -> Any:
    """Reference models' logits on the audit points and their keep matrix (``References``)."""
    return privacy_audit.references


@pytest.fixture
def target_model(privacy_audit: Any) -> Any:
    """The model under test: ``privacy_recipe`` trained on a random half of ``privacy_dataset``."""
    return privacy_audit.target


@pytest.fixture
def membership_data(
    request: pytest.FixtureRequest, privacy_audit: Any, privacy_trainer: PrivacyTrainer, privacy_recipe: Any,
    privacy_train_fn: Any, privacy_dataset: Any, privacy_config: PrivacyConfig, privacy_base_model: Any,
) -> Any:
    """``MembershipData`` for ``target_model``: all audit points, its members, the references (for a
    ``TextDataset``: a ``TextMembershipData`` of the audited texts, with ``privacy_base_model``). Under
    ``n_references="auto"`` it holds the first look (4 references) and trains more only when a
    gate asks for them (``pytest_privacy.stats.looks``); under ``audit="recipe"`` the TPR gates pool
    every model of the audit as the target in turn (``pytest_privacy.stats.pooled``)."""
    c = privacy_config

    def data_of(setup: Any) -> Any:
        data = setup.membership_data()
        if setup.text is not None:  # a language model: ref_base reads the base model beside the texts
            data.base = privacy_base_model
        return data.with_recipe_trials(setup.target) if c.audit == "recipe" else data

    if c.n_references != "auto":
        return data_of(privacy_audit)
    _, source, dataset = _opening(privacy_recipe, privacy_train_fn, privacy_dataset)
    population = _population(request, c)

    def audit_with(m: int) -> Any:
        if m == AUTO_SCHEDULE[0]:
            return data_of(privacy_audit)
        return data_of(privacy_trainer.audit(
            source, dataset, n_references=m, seed=c.seed, device=c.device, population=population
        ))

    return AdaptiveReferences(audit_with).at(AUTO_SCHEDULE[0])


@pytest.fixture
def reference_models_for(
    privacy_trainer: PrivacyTrainer, privacy_recipe: Any, privacy_train_fn: Any, privacy_config: PrivacyConfig
) -> Callable[..., Any]:
    """``reference_models_for(x, y, is_member) -> MembershipData``: references for a model trained
    elsewhere (a checkpoint) on a known split, trained as ``privacy_recipe`` or ``privacy_train_fn``
    trains (no target is trained), cached and counted like every audit's. ``is_member[n]``: whether
    the checkpoint trained on ``(x[n], y[n])``. Gate the checkpoint with the result as with
    ``membership_data``."""
    c = privacy_config
    _, source, _ = _opening(privacy_recipe, privacy_train_fn)

    def references_for(x: Any, y: Any, is_member: Any) -> Any:
        def with_references(m: int) -> Any:
            return privacy_trainer.references_for(source, (x, y), is_member, n_references=m, seed=c.seed, device=c.device)

        if c.n_references == "auto":
            return AdaptiveReferences(with_references).at(AUTO_SCHEDULE[0])
        return with_references(c.n_references)

    return references_for


@pytest.fixture
def dp_canary_run(
    privacy_trainer: PrivacyTrainer, privacy_recipe: Any, privacy_train_fn: Any, privacy_dataset: Any,
    privacy_config: PrivacyConfig,
) -> Any:
    """``privacy_recipe`` (or ``privacy_train_fn``) trained once on ``privacy_dataset`` with
    ``--privacy-canaries`` canaries of ``--privacy-canary-kind`` (input-space by default), each
    included with probability 1/2, and every canary scored: what ``assert_dp_claim_holds`` audits
    (one training run, cached like any model)."""
    c = privacy_config
    _, source, dataset = _opening(privacy_recipe, privacy_train_fn, privacy_dataset)
    return privacy_trainer.canary_run(  # canaries=None: the kind's default count
        source, dataset, n_canaries=c.canaries, seed=c.seed, device=c.device, kind=c.canary_kind
    )


@pytest.fixture
def lm_canary_run(
    privacy_trainer: PrivacyTrainer, privacy_recipe: Any, privacy_train_fn: Any, privacy_dataset: Any,
    privacy_config: PrivacyConfig,
) -> Any:
    """``privacy_train_fn`` fine-tuned once on ``privacy_dataset`` (a ``TextDataset``) with canaries
    planted ("my account number is 7 4 1 9", 8 per repetition count 1, 4 and 16, each planted with
    probability 1/2), every canary's secret ranked among all 10^4: what ``assert_canary_exposure_below``
    judges (one fine-tune, cached like any model)."""
    c = privacy_config
    _, source, dataset = _opening(privacy_recipe, privacy_train_fn, privacy_dataset)
    if not isinstance(dataset, TextDataset):
        pytest.fail(
            "lm_canary_run fine-tunes a language model: privacy_dataset must return a pytest_privacy.TextDataset "
            "(for a classifier's DP claim use dp_canary_run).",
            pytrace=False,
        )
    return privacy_trainer.lm_canary_run(source, dataset, seed=c.seed, device=c.device)


@pytest.fixture
def mmd_baseline_model(
    request: pytest.FixtureRequest, privacy_trainer: PrivacyTrainer, privacy_recipe: Any, privacy_train_fn: Any,
    privacy_dataset: Any, privacy_config: PrivacyConfig,
) -> Baseline:
    """``privacy_recipe`` trained with the MMD+mixup defense on ``target_model``'s split, with its own
    defended references: the yardstick for ``assert_no_more_vulnerable_than``. Its validation pool
    (seen in training) is left out of every comparison."""
    c = privacy_config
    kind, _, dataset = _opening(privacy_recipe, privacy_train_fn, privacy_dataset)
    if kind != "recipe" or not isinstance(privacy_recipe, TrainingRecipe):  # said before anything trains
        pytest.fail(
            "mmd_baseline_model trains your classifier recipe with the MMD+mixup defense, so it needs a "
            "`privacy_recipe` fixture returning a TrainingRecipe. Otherwise train your own defended model and compare "
            "against pytest_privacy.Baseline(model, membership_data, points, description) (see the README).",
            pytrace=False,
        )
    privacy_audit = request.getfixturevalue("privacy_audit")
    recipe = privacy_recipe.with_defense("mmd_mixup")
    setup = privacy_trainer.audit(
        recipe, dataset, n_references=_fixed_count(c), seed=c.seed, device=c.device,
        population=_population(request, c),  # the target's split: paired point for point
    )
    settings = recipe.defense.describe()
    # Baseline.points index the target's audit points (membership_data), which are data-set
    # indices only when nothing is held out as RMIA's population.
    points = np.flatnonzero(np.isin(privacy_audit.points, setup.points))
    return Baseline(setup.target, setup.membership_data(), points, settings)


@pytest.fixture
def privacy_attack(request: pytest.FixtureRequest) -> str:
    """Parametrised over the selected attacks (``--privacy-attacks``); use as ``attack=privacy_attack``.
    An attack for the other kind of model than ``privacy_dataset`` holds (a language model's attack on
    classifier data, or the reverse) is skipped, saying so."""
    attack = request.param
    text = isinstance(request.getfixturevalue("privacy_dataset"), TextDataset)
    if ATTACKS[attack].text != text:
        pytest.skip(
            f"{attack} audits {'language models' if ATTACKS[attack].text else 'classifiers'}; privacy_dataset holds "
            f"{'texts' if text else 'classifier data'}"
        )
    return attack


@pytest.fixture(scope="session")
def privacy_base_model() -> Any:
    """Override me (language models): return the pretrained model your fine-tunes start from, for the
    attacks that compare with it (``ref_base``). None: no base model."""
    return None

