"""The progress bar shown while models train (the engine's epochs, an executor's models)."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int, enabled: bool, what: str, *, unit: str = "model") -> Any:
    """A tqdm bar over ``total`` ``unit``s, transient (gone when done), or a no-op when not
    ``enabled`` (off a terminal, under -q, in xdist workers: the plugin decides). Use it as a
    context manager so an interrupted run closes it."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"pytest-privacy: {what}", unit=unit, leave=False, disable=not enabled)
