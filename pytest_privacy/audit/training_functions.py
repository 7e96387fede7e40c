"""What names a user's training function in cache keys and summaries: the ``training_function``
marker (a version, the augmentations it trains with), and the identity and declaration read from it.
Shared by every source of function-trained models (one by one, or stacked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.recipe import callable_identity

__all__ = ["declared", "function_identity", "training_function"]


def training_function(
    version: str | None = None, *, augmentations: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a ``privacy_train_fn``: a ``version`` to bump when something the function depends on
    changes where its code does not show it (a data file, an environment variable), and the
    ``augmentations`` it trains with (names as in ``TrainingRecipe.augmentations``), which become
    LiRA's query set so that queries match training. Both are part of the cache key."""
    from ..data.augmentations import check_augmentations

    augmentations = tuple(augmentations)
    check_augmentations(augmentations)

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__pytest_privacy_version__ = version  # type: ignore[attr-defined]
        fn.__pytest_privacy_augmentations__ = augmentations  # type: ignore[attr-defined]
        return fn

    return mark


def declared(fn: Callable[..., Any]) -> str:
    """What a marked training function declared, for the summary's cache-key line: its version and
    augmentations (both in its key)."""
    version = getattr(fn, "__pytest_privacy_version__", None)
    augmentations = list(getattr(fn, "__pytest_privacy_augmentations__", ()))
    return (f"; version {version!r}" if version is not None else "") + (
        f"; augmentations {augmentations}" if augmentations else ""
    )


def function_identity(fn: Callable[..., Any]) -> str:
    """What names a training function in cache keys: its qualified name, the hash of its code and
    the user code it reaches (classes, helpers, literal constants), and its version."""
    return f"{callable_identity(fn)}@{getattr(fn, '__pytest_privacy_version__', None)}"
