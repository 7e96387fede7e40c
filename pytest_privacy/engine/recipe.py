"""TrainingRecipe: how the target and every reference model are trained, and the models it names."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from ..augmentations import check_augmentations
from ..strict import StrictSettings
from .defenses import DefenseSettings, defense_settings

if TYPE_CHECKING:  # torch stays out of import time
    from torch import nn

__all__ = ["MODELS", "TrainingRecipe", "build_model", "callable_identity"]

MODELS = ("mlp", "cnn")
_MOVED = {
    **{f"mmd_{k}": f"MMDMixup({k}=...)" for k in ("weight", "bandwidths", "trigger")},
    "mixup_alpha": "MMDMixup(mixup_alpha=...)", "validation_fraction": "MMDMixup(validation_fraction=...)",
    **{f"dp_{k}": f"DPSGD({k}=...)" for k in ("epsilon", "delta", "clip")},
}


class TrainingRecipe(StrictSettings):
    """A complete, hashable description of a training run (its fields are the cache key).

    ``model`` is ``"mlp"`` (fully connected, ``hidden`` widths), ``"cnn"`` (conv blocks with
    ``hidden`` channels for 1-D signals or images) or a zero-argument factory returning an
    ``nn.Module`` that maps a batch to ``[B, C]`` logits. ``augmentations`` are used both in
    training (each example shown as a random member of its query set) and as LiRA's query set.
    ``defense`` is None, a registered defense's name (its default settings: ``"mmd_mixup"``,
    ``"dp_sgd"``) or its settings object (``MMDMixup(weight=1.0)``, ``DPSGD(epsilon=2.0)``; see
    :mod:`pytest_privacy.engine.defenses`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    model: str | Callable[[], Any] = "mlp"
    hidden: tuple[Annotated[int, Field(strict=True)], ...] = (128,)
    epochs: int = Field(30, ge=1, strict=True)
    batch_size: int = Field(64, ge=1, strict=True)
    lr: float = Field(1e-3, gt=0, strict=True)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum; ignored by Adam", strict=True)
    weight_decay: float = Field(0.0, ge=0, strict=True)
    augmentations: tuple[str, ...] = ()
    defense: SerializeAsAny[DefenseSettings] | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_defense_fields(cls, data: Any) -> Any:
        # The defense settings moved into their own objects: say where, not just "unknown field".
        if isinstance(data, dict):
            moved = sorted(k for k in data if k in _MOVED)
            if moved:
                raise ValueError(
                    "TrainingRecipe: " + ", ".join(f"{k}= is now {_MOVED[k]}" for k in moved)
                    + " (from pytest_privacy.engine.defenses)."
                )
        return data

    @field_validator("defense", mode="before")
    @classmethod
    def _registered_defense(cls, value: Any) -> Any:
        return defense_settings(value)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: Any) -> Any:
        from ..querying import is_module

        if isinstance(value, str) and value not in MODELS:
            raise ValueError(f"unknown model {value!r}; use one of {MODELS} or a zero-arg factory")
        if is_module(value):  # an instance would be shared by every model and trained once
            raise ValueError(
                f"model= got an nn.Module instance ({type(value).__name__}); pass a zero-argument factory "
                f"that builds a fresh one for every model, e.g. model=lambda: {type(value).__name__}(...) "
                f"or model={type(value).__name__} for a class without arguments"
            )
        return value

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in value):
            raise ValueError(f"hidden widths must be >= 1, got {value}")
        return value

    @field_validator("augmentations")
    @classmethod
    def _known_augmentations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_augmentations(value)
        return value

    def with_defense(self, defense: Any) -> TrainingRecipe:
        """This recipe with another ``defense`` (a name or settings object), validated."""
        return type(self).model_validate({**dict(self), "defense": defense})

    def canonical_json(self) -> str:
        """Stable JSON of every field; a factory is named by qualified name and source hash."""
        data = self.model_dump()
        if callable(self.model):
            data["model"] = callable_identity(self.model)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def callable_identity(fn: Callable[..., Any]) -> str:
    """``module.qualname#digest`` of a function or class and the user code it reaches (its classes,
    helpers and literal constants, transitively: :func:`pytest_privacy.code_identity.code_identity`),
    so an edit anywhere in what builds the model changes the cache key."""
    from ..code_identity import code_identity

    identity = code_identity(fn)
    return f"{identity.root}#{identity.digest}"


def build_model(recipe: TrainingRecipe, example_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Instantiate the recipe's model for inputs of ``example_shape`` (no batch axis)."""
    from torch import nn

    if callable(recipe.model):
        module = recipe.model()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"the recipe's model factory returned {type(module).__name__}, not an nn.Module."
            )
        return module
    if recipe.model == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(example_shape)
        for h in recipe.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        return nn.Sequential(*layers, nn.Linear(width, n_classes))
    return _cnn(recipe.hidden, example_shape, n_classes)


def _cnn(channels: tuple[int, ...], shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Conv(3x3 or 3) + ReLU + MaxPool(2) blocks, then a linear head; no batch norm (vectorisable)."""
    from torch import nn

    if len(shape) == 1:  # [L] signal -> [1, L]
        conv, pool, c_in, spatial = nn.Conv1d, nn.MaxPool1d, 1, list(shape)
        head: list[nn.Module] = [nn.Unflatten(1, (1, shape[0]))]
    elif len(shape) == 2:  # [H, W] grayscale -> [1, H, W]
        conv, pool, c_in, spatial = nn.Conv2d, nn.MaxPool2d, 1, list(shape)
        head = [nn.Unflatten(1, (1, shape[0]))]
    elif len(shape) == 3:
        conv, pool, c_in, spatial = nn.Conv2d, nn.MaxPool2d, shape[0], list(shape[1:])
        head = []
    else:
        raise ValueError(f"model='cnn' needs [L], [H, W] or [C, H, W] examples, got {shape}.")
    layers = head
    for c_out in channels:
        layers += [conv(c_in, c_out, 3, padding=1), nn.ReLU()]
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(c_in * math.prod(spatial), n_classes)]
    return nn.Sequential(*layers)
