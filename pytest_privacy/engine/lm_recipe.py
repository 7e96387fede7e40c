"""LMRecipe: how a language model is fine-tuned from a pretrained base, for teams without their own
loop, and what names its fine-tunes in the cache.

A full fine-tune (``lora_rank=None``) trains every parameter of the base; a LoRA fine-tune freezes the
base and trains rank-``lora_rank`` adapters ``W + (alpha / r) B A`` on the projections
``target_modules`` names (peft's ``LoraConfig`` with ``lora_dropout=0``). Both use AdamW (decoupled
weight decay), a linear warm-up over ``warmup_steps`` then ``schedule``, each model's gradient clipped
by its own norm, and the loss of Hugging Face's causal LMs: the mean negative log-likelihood of every
real token after a text's first, over the minibatch. The base runs with its dropout off (eval mode),
so a fine-tune's result depends only on its seed and its data; the engine trains many as one program
(:mod:`pytest_privacy.engine.stacked_lm`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..strict import StrictSettings

__all__ = ["LMRecipe", "load_base"]


class LMRecipe(StrictSettings):
    """A complete, hashable description of a language-model fine-tune (its fields and the base's
    weights are the cache key).

    ``base`` is a local folder saved with ``save_pretrained`` (loaded with transformers'
    ``AutoModelForCausalLM.from_pretrained``) or a zero-argument function returning the pretrained
    ``nn.Module`` (ids ``[B, T]`` -> logits ``[B, T, V]``, or an object with ``.logits``), a fresh one
    per call. ``lora_rank=None`` fine-tunes every parameter; an integer trains LoRA adapters of that rank
    on ``target_modules`` (names or name suffixes of ``nn.Linear`` or transformers ``Conv1D`` layers;
    default: every such layer but the output head).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    base: str | Path | Callable[[], Any]
    lora_rank: int | None = Field(None, ge=1, description="LoRA rank r; None: a full fine-tune", strict=True)
    lora_alpha: float | None = Field(None, gt=0, description="LoRA scale alpha (the update is alpha / r * B A); default r")
    target_modules: tuple[str, ...] | None = Field(
        None, description="the layers LoRA adapts, by name or name suffix; default: every linear layer but the head"
    )
    epochs: int = Field(1, ge=1, strict=True)
    batch_size: int = Field(16, ge=1, strict=True)
    lr: float = Field(1e-3, gt=0, strict=True)
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up, in optimizer steps", strict=True)
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "linear", description="the learning rate after warm-up: constant, or decayed to 0 linearly or by a cosine"
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay", strict=True)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float | None = Field(1.0, gt=0, description="clip each model's gradient norm to this (None: no clipping)")
    precision: Literal["auto", "float32", "bf16"] = Field(
        "auto", description="training arithmetic: auto is bf16 autocast on CUDA, float32 elsewhere"
    )

    field_synonyms: ClassVar[Mapping[str, str]] = {
        "learning_rate": "lr", "wd": "weight_decay", "num_train_epochs": "epochs", "bs": "batch_size",
        "per_device_train_batch_size": "batch_size", "r": "lora_rank", "rank": "lora_rank",
        "max_grad_norm": "grad_clip", "warmup": "warmup_steps", "lr_scheduler_type": "schedule",
        "model": "base", "base_model": "base",
    }

    @field_validator("base")
    @classmethod
    def _a_base(cls, value: Any) -> Any:
        from ..data.querying import is_module

        if is_module(value):  # every fine-tune must start from its own fresh copy
            raise ValueError(
                f"base= got an nn.Module instance ({type(value).__name__}); pass a zero-argument function that "
                "builds (or loads) a fresh one, e.g. base=lambda: AutoModelForCausalLM.from_pretrained(folder), or "
                "the folder itself."
            )
        if isinstance(value, (str, Path)) and not Path(value).is_dir():
            raise ValueError(
                f"base={str(value)!r} is not a folder: give a local folder saved with save_pretrained (no model hub "
                "is read) or a function that builds the model."
            )
        return value

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError(f"betas must both be in [0, 1), got {value}.")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LMRecipe:
        if self.lora_rank is None and (self.lora_alpha is not None or self.target_modules is not None):
            raise ValueError("lora_alpha= and target_modules= shape a LoRA fine-tune: set lora_rank= too.")
        if self.target_modules is not None and (not self.target_modules or not all(self.target_modules)):
            raise ValueError("target_modules= needs at least one non-empty layer name (or leave it None for every linear layer).")
        return self

    @property
    def lora(self) -> bool:
        """Whether the fine-tune trains LoRA adapters (else every parameter)."""
        return self.lora_rank is not None

    @property
    def lora_scale(self) -> float:
        """``alpha / r``, the factor of the adapter's update."""
        assert self.lora_rank is not None
        return (self.lora_alpha if self.lora_alpha is not None else self.lora_rank) / self.lora_rank

    def canonical_json(self) -> str:
        """Stable JSON of every field but ``base`` and ``precision`` (a model's key holds the base's weights
        and the precision it resolves to instead)."""
        return json.dumps(self.model_dump(mode="json", exclude={"base", "precision"}), sort_keys=True, separators=(",", ":"))

    def learning_rate(self, step: int, total: int) -> float:
        """The rate of optimizer step ``step`` (0-based) of ``total``: warm-up, then the schedule
        (transformers' ``get_linear_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup``)."""
        import math

        if step < self.warmup_steps:
            return self.lr * step / self.warmup_steps  # (the first step's rate is 0, as transformers' is)
        if self.schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, total - self.warmup_steps)
        if self.schedule == "linear":
            return self.lr * max(0.0, 1.0 - progress)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_base(recipe: LMRecipe) -> Any:
    """A fresh copy of the recipe's pretrained base: its function called, or its folder loaded with
    transformers' ``AutoModelForCausalLM.from_pretrained`` (the ``lm`` extra), in eval mode."""
    from ..data.querying import is_module

    if isinstance(recipe.base, (str, Path)):
        try:
            from transformers import AutoModelForCausalLM
        except ImportError as exc:  # pragma: no cover - the lm extra is installed in CI
            raise ImportError(
                "LMRecipe(base=<folder>) loads the base with transformers: pip install 'pytest-privacy[lm]', "
                "or pass a function that builds the model."
            ) from exc
        model = AutoModelForCausalLM.from_pretrained(str(recipe.base))
    else:
        model = recipe.base()
    if not is_module(model):
        raise TypeError(
            f"LMRecipe(base=...) must build an nn.Module (ids [B, T] -> logits [B, T, V]), got {type(model).__name__}."
        )
    return model.eval()
