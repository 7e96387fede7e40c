"""What the plugin's hooks and fixtures share: the session's stash keys, the settings of a test, and
the session's model store."""

from __future__ import annotations

from typing import Any

import pytest

from ..audit import PrivacyTrainer
from ..config import PrivacyConfig, resolve_config
from ..engine.store import ModelStore, NotAStoreError

__all__ = ["STASH", "STORE", "TRAINER", "default_cache_dir", "open_store", "session_config"]

STASH = pytest.StashKey[dict[str, Any]]()
TRAINER = pytest.StashKey[PrivacyTrainer]()
STORE = pytest.StashKey[ModelStore]()


def open_store(config: pytest.Config, settings: PrivacyConfig) -> ModelStore:
    """The session's model store (opened once): ``--privacy-cache-dir`` or pytest's cache directory."""
    store = config.stash.get(STORE, None)
    if store is None:
        try:
            store = ModelStore(settings.cache_dir or default_cache_dir(config))
        except NotAStoreError as exc:
            raise pytest.UsageError(f"--privacy-cache-dir: {exc}") from None
        config.stash[STORE] = store
    return store


def session_config(config: pytest.Config, marker: pytest.Mark | None = None) -> PrivacyConfig:
    layers = config.stash[STASH]
    overrides = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError("@pytest.mark.privacy takes keyword arguments only, e.g. privacy(n_references=8).")
    try:
        return resolve_config(layers["ini"], layers["cli"], overrides)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def default_cache_dir(config: pytest.Config) -> str:
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        return str(cache.mkdir("pytest-privacy"))
    return str(config.rootpath / ".pytest_cache" / "d" / "pytest-privacy")


