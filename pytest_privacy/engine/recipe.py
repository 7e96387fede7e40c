"""TrainingRecipe: how the target and every reference model are trained, and the models it names."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from ..data.augmentations import check_augmentations
from ..strict import StrictSettings
from .defenses import DefenseSettings, defense_settings

__all__ = ["MODELS", "TrainingRecipe", "callable_identity"]

MODELS = ("mlp", "cnn", "resnet", "wrn")
_MOVED = {
    **{f"mmd_{k}": f"MMDMixup({k}=...)" for k in ("weight", "bandwidths", "trigger")},
    "mixup_alpha": "MMDMixup(mixup_alpha=...)", "validation_fraction": "MMDMixup(validation_fraction=...)",
    **{f"dp_{k}": f"DPSGD({k}=...)" for k in ("epsilon", "delta", "clip")},
}


class TrainingRecipe(StrictSettings):
    """A complete, hashable description of a training run (its fields are the cache key).

    ``model`` is ``"mlp"`` (fully connected, ``hidden`` widths), ``"cnn"`` (conv blocks with
    ``hidden`` channels for 1-D signals or images), ``"resnet"`` (a CIFAR-style ResNet with
    BatchNorm: ``depth`` = 6n+2, ``width`` first-stage channels), ``"wrn"`` (a WideResNet-depth-k:
    ``depth`` = 6n+4, ``width`` = k; WRN-16-4 and WRN-28-2 as in the LiRA paper), or a zero-argument
    factory returning an ``nn.Module`` that maps a batch to ``[B, C]`` logits (BatchNorm and Dropout
    train per model, as everywhere in the engine). ``augmentations`` are used both in
    training (each example shown as a random member of its query set) and as LiRA's query set.
    ``defense`` is None, a registered defense's name (its default settings: ``"mmd_mixup"``,
    ``"dp_sgd"``) or its settings object (``MMDMixup(weight=1.0)``, ``DPSGD(epsilon=2.0)``; see
    :mod:`pytest_privacy.engine.defenses`). ``precision`` is the arithmetic of training (``"auto"``:
    :func:`~pytest_privacy.engine.precision.training_precision`); the cache key holds what it
    resolves to on the training device, not the field itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    model: str | Callable[[], Any] = "mlp"
    hidden: tuple[Annotated[int, Field(strict=True)], ...] = (128,)
    depth: int | None = Field(None, ge=1, description="resnet: 6n+2 layers (default 8); wrn: 6n+4 (default 16)", strict=True)
    width: int | None = Field(
        None, ge=1, description="resnet: channels of the first stage (default 16); wrn: widening factor k (default 4)",
        strict=True,
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer (mlp) or inside blocks (wrn)", strict=True)
    epochs: int = Field(30, ge=1, strict=True)
    batch_size: int = Field(64, ge=1, strict=True)
    lr: float = Field(1e-3, gt=0, strict=True)
    optimizer: Literal["adam", "sgd", "adamw"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum; ignored by Adam", strict=True)
    nesterov: bool = Field(False, description="SGD: Nesterov momentum", strict=True)
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0, description="linear learning-rate warm-up, in epochs", strict=True)
    weight_decay: float = Field(0.0, ge=0, strict=True)
    weight_decay_on: Literal["all", "weights"] = Field(
        "all", description="decay every parameter, or weights only (not biases or normalisation parameters)"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, strict=True)
    grad_clip: float | None = Field(None, gt=0, description="clip each model's gradient norm to this", strict=True)
    ema: float | None = Field(
        None, gt=0, lt=1, description="predict with an exponential moving average of the weights (decay)", strict=True
    )
    augmentations: tuple[str, ...] = ()
    defense: SerializeAsAny[DefenseSettings] | None = None
    precision: Literal["auto", "float32", "bf16"] = Field(
        "auto", description="training arithmetic: bf16 autocast or float32; auto: bf16 on CUDA and, for cnn/resnet/wrn "
        "without a defense, on CPUs with AMX (see pytest_privacy.engine.precision)",
    )

    # What torch, Keras and Hugging Face's Trainer call these fields where no spelling match finds
    # them, for the did-you-mean (a test keeps out any entry spelling would find anyway).
    field_synonyms: ClassVar[Mapping[str, str]] = {
        "learning_rate": "lr", "wd": "weight_decay", "num_train_epochs": "epochs", "bs": "batch_size",
        "per_device_train_batch_size": "batch_size", "arch": "model", "architecture": "model",
        "max_grad_norm": "grad_clip", "clip_grad_norm": "grad_clip",
    }

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

    @model_validator(mode="after")
    def _consistent(self) -> TrainingRecipe:
        if self.model in ("resnet", "wrn"):
            depth = self.depth if self.depth is not None else (8 if self.model == "resnet" else 16)
            step, offset = 6, (2 if self.model == "resnet" else 4)
            if depth < step + offset or (depth - offset) % step:
                raise ValueError(f"model={self.model!r} needs depth = {step}n+{offset} (n >= 1), got {depth}.")
        elif self.depth is not None or self.width is not None:
            raise ValueError(f"depth= and width= shape model='resnet' or 'wrn', not model={self.model!r}.")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov=True needs optimizer='sgd' with momentum > 0.")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs:g}) must be less than epochs ({self.epochs}).")
        if self.schedule == "onecycle" and self.warmup_epochs:
            raise ValueError("schedule='onecycle' warms up by itself: leave warmup_epochs at 0.")
        return self

    @field_validator("defense", mode="before")
    @classmethod
    def _registered_defense(cls, value: Any) -> Any:
        return defense_settings(value)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: Any) -> Any:
        from ..data.querying import is_module

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
        """Stable JSON of every field but ``precision`` (a model key holds the precision it resolves
        to on its device instead: ``"auto"`` and what it picks are the same models); a factory is
        named by qualified name and source hash."""
        data = self.model_dump(exclude={"precision"})
        if callable(self.model):
            data["model"] = callable_identity(self.model)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def callable_identity(fn: Callable[..., Any]) -> str:
    """``module.qualname#digest`` of a function or class and the user code it reaches (its classes,
    helpers and literal constants, transitively: :func:`pytest_privacy.engine.code_identity.code_identity`),
    so an edit anywhere in what builds the model changes the cache key."""
    from .code_identity import code_identity

    identity = code_identity(fn)
    return f"{identity.root}#{identity.digest}"
