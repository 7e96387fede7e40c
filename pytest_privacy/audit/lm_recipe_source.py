"""Fine-tunes of an :class:`~pytest_privacy.engine.lm_recipe.LMRecipe`, trained by the engine as one program
(LoRA adapters over one frozen base, or full fine-tunes stacked; one at a time, said, where the base
cannot be stacked) and scored on every text in the same pass.

Only each model's per-token statistics are stored (as for a user's fine-tuning function), never its
weights; the target comes back as a :class:`~pytest_privacy.data.text_target.CachedTextTarget`, which
fine-tunes it again on demand (generation). A model's key holds the recipe, the base's weights (a digest
of every tensor: a base saved again with other weights is another model), the arithmetic it trains in, its
texts, its half and its seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.executors import Entry, Trained
from ..engine.lm_recipe import LMRecipe, load_base
from ..engine.seeds import torch_seed
from ..engine.store import digest
from .job import Built, library_versions
from .text_packing import text_built

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["LMRecipeSource"]


def _precision(recipe: LMRecipe, device_type: str) -> str:
    if recipe.precision == "auto":
        return "bf16" if device_type == "cuda" else "float32"
    return recipe.precision


@dataclass(frozen=True)
class LMRecipeSource:
    """Models of an :class:`LMRecipe` on the texts of an audit (``x [N, 2, T]``: ids and mask)."""

    recipe: LMRecipe
    vectorised = True
    validation_share = 0.0
    augmentations: tuple[str, ...] = ()

    @functools.cached_property
    def base(self) -> Any:
        """The pretrained base, loaded once (every fine-tune starts from a copy)."""
        return load_base(self.recipe)

    @functools.cached_property
    def base_digest(self) -> str:
        """A digest of the base's class and every tensor it holds (names, dtypes, shapes, values)."""
        import torch

        state = self.base.state_dict()
        parts: list[Any] = [type(self.base).__qualname__]
        for name in sorted(state):
            t = state[name].detach().cpu().contiguous()
            parts += [name, str(t.dtype), tuple(t.shape), t.view(-1).view(torch.uint8).numpy().tobytes()]
        return digest(*parts)

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        import torch

        from ..engine.lm_finetune import vocabulary
        from ..engine.stacked_lm import adaptable_layers

        if x.ndim != 3 or x.shape[1] != 2:
            raise TypeError("an LMRecipe fine-tunes a language model: privacy_dataset must be a pytest_privacy.TextDataset.")
        if min_points < self.recipe.batch_size:
            raise ValueError(
                f"LMRecipe(batch_size={self.recipe.batch_size}) is larger than the {min_points} texts some fine-tune "
                "trains on: lower the batch size or audit more texts."
            )
        mask = x[:, 1].astype(bool)
        if (mask[:, 1:] & ~mask[:, :-1]).any():  # a True after a False: padding before a text's tokens
            row = int(np.flatnonzero((mask[:, 1:] & ~mask[:, :-1]).any(axis=1))[0])
            raise ValueError(
                f"text {row} is not right-padded (its mask has a real token after padding): LMRecipe fine-tunes texts "
                "padded at the end, as TextDataset pads them; give ids padded that way."
            )
        if self.recipe.lora:
            adaptable_layers(self.base, self.recipe.target_modules)  # names that match nothing: an error now
        vocab = vocabulary(self.base, torch.device("cpu"))
        if int(x[:, 0].max()) >= vocab:
            raise ValueError(
                f"token id {int(x[:, 0].max())} is beyond the base's vocabulary of {vocab}: the texts were tokenised "
                "with another tokenizer than the base's."
            )

    def on(self, device_type: str) -> LMRecipeSource:
        return replace(self, recipe=self.recipe.model_copy(update={"precision": _precision(self.recipe, device_type)}))

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        return digest(
            "pytest-privacy-lm-recipe/1", self.recipe.canonical_json(), self.base_digest,
            _precision(self.recipe, device_type), data_id, np.packbits(keep_row), seed.entropy, seed.spawn_key,
            *library_versions(device_type),
        )

    def seed_of(self, seed: np.random.SeedSequence) -> int:
        return torch_seed(seed)

    def covers(self) -> str:
        kind = f"LoRA rank {self.recipe.lora_rank}" if self.recipe.lora else "full fine-tune"
        return (
            f"LMRecipe ({kind}): every field, and the base's weights ({type(self.base).__name__}, digest "
            f"{self.base_digest[:12]})"
        )

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..engine.ensemble import default_memory_budget, resolve_device
        from ..engine.lm_finetune import finetune_models
        from ..engine.progress import progress_bar

        device = resolve_device(job.device)
        budget = default_memory_budget(device) if job.max_memory is None else int(job.max_memory)
        with progress_bar(len(unit), progress, f"fine-tuning {len(unit)} language models") as bar:
            tuned = finetune_models(
                self.recipe, self.base, job.x[:, 0], job.x[:, 1].astype(bool), job.keep[unit],
                [job.seeds[i] for i in unit], device=device, budget=budget,
                precision=_precision(self.recipe, device.type), keep_models=job.keep_models, tick=bar.update,
            )
        return [Trained(t.statistics, t.model) for t in tuned]

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        return text_built(job, entries, n_references=n_references, target=target, retrain=retrain)

    def as_function(self) -> Callable[..., Any]:
        """The recipe as a training function ``(data, *, seed, device) -> model``: one fine-tune on every text
        of ``data`` (a canary run's), named in cache keys by the recipe, the base's weights and the precision
        (call on the source :meth:`on` the training device)."""
        import torch

        from ..engine.lm_finetune import finetune_models

        recipe, base = self.recipe, self.base

        def finetune(data: Any, *, seed: int, device: str) -> Any:
            dev = torch.device(device)
            [tuned] = finetune_models(
                recipe, base, data.ids, data.mask, np.ones((1, len(data)), dtype=bool), [np.random.SeedSequence(seed)],
                device=dev, budget=1 << 62, precision=_precision(recipe, dev.type), keep_models=True,
            )
            return tuned.model

        # (the version is in the function's cache key: the recipe, the base's weights, the arithmetic)
        finetune.__pytest_privacy_version__ = (  # type: ignore[attr-defined]
            f"LMRecipe {digest(recipe.canonical_json(), self.base_digest, recipe.precision)[:32]}"
        )
        return finetune

    def user_code(self) -> tuple[Any, ...]:
        return (self.recipe.base,) if callable(self.recipe.base) else ()
