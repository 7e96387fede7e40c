"""The pytest plugin: options, ini keys, markers, hooks and the terminal summary; the fixtures are in
:mod:`.fixtures` (imported here, so that pytest finds them in the plugin), the shared state in
:mod:`.state`.

A thin layer: every computation lives in the core (trainer, assertions, metrics); this package only
wires pytest's configuration to it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..assertions import gate_defaults, set_inconclusive_default
from ..attacks import ATTACKS, SUITES, suite_attacks
from ..config import PrivacyConfig, command_line_options, resolve_config
from ..report import hookspec, recording, to_json, writers
from .fixtures import (  # pytest finds fixtures among the plugin module's names
    dp_canary_run,
    lm_canary_run,
    membership_data,
    mmd_baseline_model,
    privacy_attack,
    privacy_audit,
    privacy_base_model,
    privacy_config,
    privacy_dataset,
    privacy_recipe,
    privacy_train_fn,
    privacy_trainer,
    reference_models,
    reference_models_for,
    target_model,
)
from .session import RESULT_PROPERTY, SESSION, PrivacySession
from .state import STASH, TRAINER, open_store, session_config

# The fixtures, re-exported: pytest registers the fixtures it finds among a plugin module's names.
__all__ = [
    "dp_canary_run",
    "lm_canary_run",
    "membership_data",
    "mmd_baseline_model",
    "privacy_attack",
    "privacy_audit",
    "privacy_base_model",
    "privacy_config",
    "privacy_dataset",
    "privacy_recipe",
    "privacy_train_fn",
    "privacy_trainer",
    "reference_models",
    "reference_models_for",
    "target_model",
]

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privacy", "membership-inference privacy gates (pytest-privacy)")
    for option in command_line_options():  # one per PrivacyConfig field, its description the help
        action = {"action": "store_true"} if option.flag else {}
        group.addoption(f"--privacy-{option.name}", dest=_dest(option.name), default=None, help=option.help, **action)
        parser.addini(_dest(option.name), help=option.help, default=None)
    group.addoption(
        "--privacy-clear-cache", dest="privacy_clear_cache", action="store_true",
        help="delete every cached model before the run",
    )
    group.addoption(
        "--privacy-compare", dest="privacy_compare", nargs="?", const="latest", default=None, metavar="NAME",
        help="compare this session with a stored run (its name or number; default: the latest)",
    )
    parser.addini("privacy_compare", help="stored run to compare with", default=None)


def _dest(name: str) -> str:
    return "privacy_" + name.replace("-", "_")


def _layers(config: pytest.Config) -> tuple[dict[str, Any], dict[str, Any]]:
    options = [(o.name, o.field) for o in command_line_options()] + [("compare", "compare")]
    ini = {field: config.getini(_dest(name)) or None for name, field in options}
    ini.update({o.field: os.environ[o.env] for o in command_line_options() if o.env and os.environ.get(o.env)})
    cli = {field: config.getoption(_dest(name)) for name, field in options}
    return ini, cli


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "privacy(**overrides): override privacy settings for this test "
        "(n_references, seed, profile, device, inconclusive, confidence)",
    )
    for name, text in SUITES.items():
        config.addinivalue_line(
            "markers", f"{name}(*attacks): {text}; name the suite's attacks the test runs to narrow --privacy-attacks"
        )
    ini, cli = _layers(config)
    try:
        base = resolve_config(ini, cli)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if base.device.startswith("cuda") and base.executor == "local":
        import torch  # only when CUDA is asked for: the plain path stays light

        if not torch.cuda.is_available():
            raise pytest.UsageError(
                f"--privacy-device={base.device} but CUDA is not available here; use auto or cpu."
            )
        index = int(base.device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise pytest.UsageError(
                f"--privacy-device={base.device} but this machine has {torch.cuda.device_count()} GPU(s)."
            )
    if base.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise pytest.UsageError(
                "--privacy-executor=ray needs Ray: pip install 'pytest-privacy[ray]' (or use --privacy-executor=local)."
            ) from None
    config.stash[STASH] = {"ini": ini, "cli": cli}
    if base.compare_fail is not None:
        from ..report.compare import parse_criteria

        try:
            parse_criteria(base.compare_fail)  # a typo is a usage error before anything runs
        except ValueError as exc:
            raise pytest.UsageError(f"--privacy-compare-fail: {exc}") from None
    if base.compare_fail is not None and base.compare is None:
        raise pytest.UsageError("--privacy-compare-fail needs --privacy-compare (the stored run to compare with).")
    _check_stored_runs(base)
    for path, what in (
        (base.report, "--privacy-report"), (base.plots, "--privacy-plots"), (base.html, "--privacy-html"),
        (base.markdown, "--privacy-markdown"),
    ):
        if path:
            _check_writable(path, what, directory=what == "--privacy-plots")
    if base.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise pytest.UsageError("--privacy-plots needs matplotlib: pip install 'pytest-privacy[plot]'") from None
    config.stash[SESSION] = gathered = PrivacySession(config)
    if not base.no_cache and (base.cache_dir or config.getoption("privacy_clear_cache")):
        # An explicit store is checked now: a wrong path is a usage error before anything runs.
        store = open_store(config, base)
        if config.getoption("privacy_clear_cache") and not hasattr(config, "workerinput"):
            # Here, on the xdist controller before any worker starts, or in a plain run.
            gathered.cleared = store.clear()
    config.pluginmanager.register(gathered, "pytest-privacy-session")
    if not hasattr(config, "workerinput"):  # reports are written where results are gathered
        config.pluginmanager.register(writers, "pytest-privacy-summary")
        for name, writer in writers.built_in_writers().items():
            config.pluginmanager.register(writer, name)
    set_inconclusive_default(base.inconclusive)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspec)


def _check_stored_runs(settings: PrivacyConfig) -> None:
    """A bad run name, an unreachable or unwritable storage, or a stored run that does not exist,
    cannot be read or fails its signature is a usage error now, not a failure after every test has run."""
    from ..report.storage import RunStorage, check_run_name

    writes = settings.save is not None or settings.autosave or settings.snapshot_update
    if not (writes or settings.compare is not None):
        return
    try:
        if settings.save is not None:
            check_run_name(settings.save)
        storage = RunStorage(settings.storage)
        if writes:
            storage.check_writable()
        if settings.compare is not None:
            storage.baseline(settings.compare)
            storage.accepted_vulnerable()
    except (ValueError, KeyError, OSError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise pytest.UsageError(f"--privacy-storage={settings.storage}: {message}") from None


def _check_writable(path: str, what: str, *, directory: bool) -> None:
    """Fail at configure time, not after the run, when ``path`` cannot be written."""
    target = Path(path)
    folder = target if directory else target.parent
    if not directory and target.is_dir():
        raise pytest.UsageError(f"{what}={path} is a directory; give a file path such as privacy.json.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pytest-privacy-probe-"):
            pass
    except OSError as exc:
        raise pytest.UsageError(f"{what}={path} cannot be written ({exc.strerror or exc}); choose a writable path.") from None


def _suites_and_attacks(item: pytest.Item) -> tuple[set[str], set[str]] | None:
    """The suites a test belongs to and the attacks it runs, or None when it is not a privacy test.

    A ``privacy_attack`` parameter is the one attack its test runs; otherwise the test's suite
    markers say, each standing for its suite's attacks unless it names some
    (``@pytest.mark.baseline("loss")``).
    """
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "privacy_attack" in callspec.params:
        attack = callspec.params["privacy_attack"]
        return {ATTACKS[attack].suite}, {attack}
    suites: set[str] = set()
    attacks: set[str] = set()
    for mark in item.iter_markers():
        if mark.name not in SUITES:
            continue
        suites.add(mark.name)
        members = suite_attacks(mark.name)
        wrong = [a for a in mark.args if a not in members]
        if wrong or mark.kwargs:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{mark.name} takes names of its attacks "
                f"({', '.join(members) or 'none'}), got {', '.join(map(repr, [*wrong, *mark.kwargs]))}."
            )
        attacks.update(mark.args or members)
    return (suites, attacks) if suites else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = session_config(config)
    selection = settings.selection()
    if selection is None:
        return
    keep, drop, kept_privacy = [], [], 0
    for item in items:
        runs = _suites_and_attacks(item)
        if runs is None or selection.selects(*runs):
            keep.append(item)
            kept_privacy += runs is not None
        else:
            drop.append(item)
    if drop and not kept_privacy:
        # Every privacy test would go: a typo'd or stale selection must not become a green, empty run.
        message = (
            f"--privacy-attacks={','.join(settings.attacks or ())} selects none of the {len(drop)} privacy "
            "tests collected; name a suite (" + ", ".join(SUITES) + ") or an attack they run."
        )
        if not hasattr(config, "workerinput"):
            raise pytest.UsageError(message)
        # An xdist worker cannot end the session with a usage error (the controller reports an
        # INTERNALERROR): it runs one item that fails with the message instead, so the run is red.
        keep.append(_SelectionError.from_parent(items[0].session, name="privacy-attacks-selection", message=message))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class _SelectionError(pytest.Item):
    """Stands for a selection that deselected every privacy test, in an xdist worker."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise pytest.UsageError(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return self.message

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, "--privacy-attacks"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "privacy_attack" in metafunc.fixturenames:
        # Every registered attack, each marked with its suite: ``-m label_only`` and
        # ``--privacy-attacks`` then select among them like among any other privacy test.
        metafunc.parametrize(
            "privacy_attack",
            [pytest.param(name, marks=getattr(pytest.mark, a.suite)(name), id=name) for name, a in ATTACKS.items()],
            indirect=True,  # through the fixture, which skips an attack for the other kind of model
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    settings = session_config(item.config, item.get_closest_marker("privacy"))
    with recording(item.nodeid, profile=settings.profile) as results:
        try:
            # This test's own on_inconclusive/confidence defaults: a privacy marker may override them.
            with gate_defaults(inconclusive=settings.inconclusive, confidence=settings.confidence):
                return (yield)
        finally:
            # Each result rides on its test's report, whole: xdist ships it to the controller,
            # where the collector swaps it for compact junit properties.
            item.user_properties.extend((RESULT_PROPERTY, to_json(r)) for r in results)


def pytest_sessionfinish(session: pytest.Session) -> None:
    trainer = session.config.stash.get(TRAINER, None)
    if trainer is not None:
        counts = {
            "trained": trainer.models_trained, "loaded": trainer.models_loaded, "seconds": trainer.seconds_training,
            "covers": sorted(trainer.key_covers),
        }
        if hasattr(session.config, "workeroutput"):  # an xdist worker: report to the controller
            session.config.workeroutput["pytest_privacy"] = counts
        else:
            session.config.stash[SESSION].add_counts(counts)
    gathered = session.config.stash.get(SESSION, None)
    if gathered is not None and not hasattr(session.config, "workerinput"):
        gathered.write_reports(session)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    counts = getattr(node, "workeroutput", {}).get("pytest_privacy")
    if counts:
        node.config.stash[SESSION].add_counts(counts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    gathered = config.stash.get(SESSION, None)
    if gathered is not None:
        gathered.summary(terminalreporter)
