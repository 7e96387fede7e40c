"""Fine-tunes of a language model by the user's own loop, written once and run on M stacked models: a
:func:`~pytest_privacy.stacked_training` function on a :class:`~pytest_privacy.TextDataset`.

The loop gets :class:`~pytest_privacy.StackedModels` (full fine-tunes of ``model()``, parameters stacked
``[M, ...]``) or, with ``lora_rank=``, :class:`~pytest_privacy.StackedAdapters` (LoRA adapters over one
frozen copy), and :class:`~pytest_privacy.PerModelBatches` of ``(ids, mask) [M, B, T]``, each model its own
minibatches of its own half::

    @stacked_training(model=lambda: AutoModelForCausalLM.from_pretrained(folder), batch_size=16, lora_rank=8)
    def finetune(models, batches, *, device):
        opt = torch.optim.AdamW(models.parameters(), lr=1e-3)
        for _ in range(2):
            for ids, mask in batches:
                opt.zero_grad()
                per_model_lm_loss(models(ids), ids, mask).sum().backward()
                models.clip_grad_norm_(1.0)
                opt.step()

Then every text is scored under every model in one pass, as for an :class:`~pytest_privacy.LMRecipe`;
only the per-token statistics are stored, and the target comes back as a
:class:`~pytest_privacy.data.text_target.CachedTextTarget` that trains the stack again on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.executors import Entry, Trained
from ..engine.store import digest
from .job import Built, library_versions
from .stacked_source import StackedFunctionSource
from .text_packing import text_built

if TYPE_CHECKING:
    from .job import TrainJob

__all__ = ["StackedTextSource"]


@dataclass(frozen=True)
class StackedTextSource(StackedFunctionSource):
    """A :func:`stacked_training` loop's fine-tunes of a language model (see the module docstring)."""

    @property
    def lora(self) -> tuple[int, float | None, tuple[str, ...] | None] | None:
        return getattr(self.train_fn, "__pytest_privacy_lora__", None)

    def check(self, x: np.ndarray, y: np.ndarray, min_points: int) -> None:
        import torch

        from ..engine.lm_finetune import check_causal
        from ..engine.own_loop import seeded_model
        from ..engine.stacked_lm import adaptable_layers

        if min_points < self.batch_size:
            raise ValueError(
                f"stacked_training(batch_size={self.batch_size}) is larger than the {min_points} texts some fine-tune "
                "trains on: lower the batch size."
            )
        model = seeded_model(self.factory, np.random.SeedSequence(0))  # refuses a factory building no nn.Module
        check_causal(model, torch.device("cpu"))
        if self.lora is not None:
            adaptable_layers(model, self.lora[2])

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        return digest(
            "pytest-privacy-stacked-lm/1", self.identity, self.batch_size, repr(self.lora), data_id,
            np.packbits(keep_row), seed.entropy, seed.spawn_key, *library_versions(device_type),
        )

    def covers(self) -> str:
        kind = f"LoRA rank {self.lora[0]}" if self.lora is not None else "full fine-tunes"
        return f"{super().covers()}; language models, {kind}"

    def _fit(self, ids: np.ndarray, mask: np.ndarray, keep: np.ndarray, seeds: list[np.random.SeedSequence],
             count: int, device: Any) -> Any:
        """The user's loop run on ``len(seeds)`` stacked models (each ``count`` steps an epoch), in eval mode after."""
        from ..engine.own_loop import PerModelBatches, StackedAdapters, StackedModels

        if self.lora is not None:
            rank, alpha, targets = self.lora
            models: Any = StackedAdapters(self.factory, seeds, rank=rank, alpha=alpha, target_modules=targets)
        else:
            models = StackedModels(self.factory, seeds)
        models = models.to(device)
        batches = PerModelBatches(ids, mask, keep, seeds, batch_size=self.batch_size, steps_per_epoch=count, device=device)
        models.train()
        self.train_fn(models, batches, device=str(device))
        return models.eval()

    def _train_group(self, job: TrainJob, group: list[int], count: int, device: Any) -> dict[int, Trained]:
        """The ``group`` fine-tunes (each ``count`` steps an epoch) trained as one stack, then scored."""
        import torch

        from ..engine.ensemble import default_memory_budget
        from ..engine.lm_finetune import score

        ids, mask = job.x[:, 0], job.x[:, 1].astype(bool)
        models = self._fit(ids, mask, job.keep[group], [job.seeds[i] for i in group], count, device)
        budget = default_memory_budget(device) if job.max_memory is None else int(job.max_memory)
        with torch.no_grad():
            stats = score(models, ids, mask, device=device, budget=max(budget // 4, 1 << 24))
        return {
            i: Trained(stats[j], models.model(j).cpu().eval() if job.keep_models else None) for j, i in enumerate(group)
        }

    def as_function(self) -> Callable[..., Any]:
        """The loop as a training function ``(data, *, seed, device) -> model``: one fine-tune on every text
        of ``data`` (a canary run's), named in cache keys by the loop, its model and its settings."""
        import torch

        def finetune(data: Any, *, seed: int, device: str) -> Any:
            everything = np.ones((1, len(data)), dtype=bool)
            models = self._fit(data.ids, data.mask, everything, [np.random.SeedSequence(seed)],
                               len(data) // self.batch_size, torch.device(device))
            return models.model(0).eval()

        finetune.__pytest_privacy_version__ = (  # type: ignore[attr-defined]
            f"stacked_training {digest(self.identity, self.batch_size, repr(self.lora))[:32]}"
        )
        return finetune

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        return text_built(job, entries, n_references=n_references, target=target, retrain=retrain)
