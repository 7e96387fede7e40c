"""Unit tests compute, they do not train: an optimizer step or a backward pass here fails the test.

Training, the engine's equalities included, is tested in ``tests/engine``; keeping it out of the unit
tests keeps them fast and says which tests a change to the engine can break. The guard is module-scoped
and autouse, so it is in place before any module-scoped fixture of a unit test could train.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from pytest_privacy.engine.optimizer import StackedOptimizer


@pytest.fixture(autouse=True, scope="module")
def _no_training() -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test trained a model; training tests belong in tests/engine")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "backward", refuse)
        patch.setattr(torch.autograd, "backward", refuse)
        patch.setattr(torch.autograd, "grad", refuse)
        patch.setattr(StackedOptimizer, "step", refuse)
        yield
