"""What a defense is to the trainer, and the registry that names them.

A defense is two objects: its **settings** (a frozen pydantic model, the value of
``TrainingRecipe.defense``, tagged by ``kind``; part of the cache key and of the report) and the
**defense** those settings build for one stack of models being trained together. The trainer calls
the defense at three points and knows nothing else about it:

- ``gradients(stack)``: a gradient strategy replacing the trainer's choice (DP-SGD's clipped,
  noised per-example gradients), or None;
- ``batch(batch)``: the minibatch every step trains on, with the defense's loss terms (mixup mixes
  inputs and sets soft targets; label smoothing softens the targets);
- ``end_epoch(stack, epoch)``: anything once per epoch (the MMD pass).

Every random draw of model ``m`` comes from its own seed (``child_seed(seeds[m], k)`` with the
defense's own stream ``k >= 2``), and only when the model steps, so a model is the same however it
is chunked. Adding a defense is one file: subclass :class:`DefenseSettings`, implement
:class:`Defense`, ``register_defense`` the settings class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ...strict import StrictSettings, unknown_name_error

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import numpy as np
    import torch
    from torch import nn

    from ..gradients import Autograd, GradientStrategy
    from ..loss import Batch
    from ..training_data import TrainingData

__all__ = [
    "DEFENSES", "Defense", "DefenseContext", "DefenseSettings", "EpochLayout", "NoDefense", "defense_settings",
    "register_defense",
]


class EpochLayout(Protocol):
    """What a defense reads of one epoch's minibatch layout (the stack's ``Epoch``)."""

    order: np.ndarray  # [M, slots] the point each model sees in each slot
    order_t: torch.Tensor  # the same on the training device
    weight_t: torch.Tensor  # [M, slots] 1 for a real slot, 0 for padding


class DefenseContext(Protocol):
    """Everything a defense may read of, or do to, the stack of models being trained together (the
    engine's ``Stack`` provides it). A defense depends on this contract, not on the trainer's
    module: the trainer may change as long as it keeps these."""

    recipe: Any  # the TrainingRecipe (its module imports this one: typed loosely to keep the room acyclic)
    base: nn.Module  # the architecture (parameters of the stack's first model)
    params: dict[str, torch.Tensor]  # stacked parameters [M, ...]
    keep: np.ndarray  # [M, N] which points each model trains on
    seeds: Sequence[np.random.SeedSequence]
    device: torch.device
    validation: np.ndarray | None  # the pool a defense trains against
    n_classes: int
    n_models: int
    batch_size: int
    steps: list[int]  # each model's steps per epoch
    data: TrainingData
    autograd: Autograd
    forward: Callable[..., torch.Tensor]

    def rngs(self, stream: int) -> list[np.random.Generator]:
        """Each model's own numpy generator for the defense's ``stream``."""

    def predict_all(self, xb: torch.Tensor) -> torch.Tensor:
        """Every model's logits ``[M, B, C]`` on the same inputs."""

    def amp(self) -> AbstractContextManager[None]:
        """The stack's arithmetic (bf16 autocast where it trains in bf16)."""

    def step(self, grads: dict[str, torch.Tensor], active: list[bool]) -> None:
        """One optimizer step for the ``active`` models."""


class Defense(Protocol):
    """One defense at work on one stack of models (built by :meth:`DefenseSettings.build`)."""

    def gradients(self, stack: DefenseContext) -> GradientStrategy | None:
        """A gradient strategy to use instead of the trainer's choice, or None."""

    def batch(self, batch: Batch) -> Batch:
        """The batch a training step uses: ``batch`` itself, or one with the defense's loss terms."""

    def end_epoch(self, stack: DefenseContext, epoch: EpochLayout) -> None:
        """Work after each epoch's steps (may step the optimizer itself)."""

    def extras(self) -> dict[str, np.ndarray]:
        """What the defense measured while training, per model (arrays ``[M, ...]``), stored with each model
        beside its weights (DP-SGD's white-box canary scores); usually nothing."""


class NoDefense:
    """The undefended trainer: the defaults every defense can inherit from."""

    def gradients(self, stack: DefenseContext) -> GradientStrategy | None:
        return None

    def batch(self, batch: Batch) -> Batch:
        return batch

    def end_epoch(self, stack: DefenseContext, epoch: EpochLayout) -> None:
        return None

    def extras(self) -> dict[str, np.ndarray]:
        return {}


class DefenseSettings(StrictSettings):
    """Settings of one defense; subclasses declare ``kind: Literal["name"] = "name"`` and their fields.

    ``validation_share`` is the share of the data the defense needs held out of every model's
    training and of the audit (the MMD defense's validation pool): the audit's split reserves it.
    """

    kind: str

    @property
    def validation_share(self) -> float:
        """Share of the data to hold out as this defense's validation pool (0: none)."""
        return 0.0

    @property
    def accountant_epsilon(self) -> float | None:
        """The epsilon this defense's own accountant targets (a DP defense), for the DP-claim
        result; None for a defense that claims none."""
        return None

    def build(self, stack: DefenseContext) -> Defense:
        """The defense for ``stack`` (its models' seeds, data and training state)."""
        raise NotImplementedError

    def extra_bytes_per_model(self, n_params: int, batch_size: int) -> int:
        """Training memory per model beyond an undefended step (for chunking to the budget)."""
        return 0

    def describe(self) -> str:
        """One line for reports: what the defense did, with its settings."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items() if k != "kind")
        return f"{self.kind}({fields})"


DEFENSES: dict[str, type[DefenseSettings]] = {}


def register_defense(settings: type[DefenseSettings]) -> type[DefenseSettings]:
    """Make a defense available to recipes as ``defense="kind"`` or ``defense=Settings(...)``
    (a class decorator; registering a kind twice with another class is an error)."""
    field = settings.model_fields.get("kind")
    kind = None if field is None else field.default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{settings.__name__} must declare kind: Literal['name'] = 'name'.")
    if DEFENSES.get(kind, settings) is not settings:
        raise ValueError(f"a defense named {kind!r} is already registered ({DEFENSES[kind].__name__}).")
    DEFENSES[kind] = settings
    return settings


def defense_settings(value: Any) -> DefenseSettings | None:
    """The settings a recipe's ``defense=`` names: None, a registered kind (its defaults), a dict
    with ``kind`` (e.g. from JSON), or a registered settings instance."""
    if value is None or isinstance(value, DefenseSettings):
        if value is not None and DEFENSES.get(value.kind) is not type(value):
            raise ValueError(f"defense {type(value).__name__} is not registered: call register_defense on its class.")
        return value
    if isinstance(value, str):
        kind, fields = value, {}
    elif isinstance(value, dict) and "kind" in value:
        kind, fields = value["kind"], value
    else:
        raise ValueError(
            f"defense must be None, a defense name ({', '.join(sorted(DEFENSES))}) or its settings "
            f"object, got {type(value).__name__}."
        )
    if kind not in DEFENSES:
        raise ValueError(unknown_name_error("defense", kind, list(DEFENSES)))
    return DEFENSES[kind].model_validate(fields)
