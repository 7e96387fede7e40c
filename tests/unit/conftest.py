"""Unit tests compute, they do not train: an optimizer step or a backward pass here fails the test.

Training, the engine's equalities included, is tested in ``tests/engine``; keeping it out of the unit
tests keeps them fast and says which tests a change to the engine can break.
"""

from __future__ import annotations

import pytest
import torch

from pytest_privacy.engine.optimizer import StackedOptimizer


@pytest.fixture(autouse=True)
def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(
            "a unit test trained a model; training tests belong in tests/engine"
        )

    monkeypatch.setattr(torch.Tensor, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "grad", refuse)
    monkeypatch.setattr(StackedOptimizer, "step", refuse)
