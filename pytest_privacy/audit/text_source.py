"""Fine-tunes of a language model by the user's function: ``train_fn(data, *, seed, device) -> model``,
``data`` the fine-tune's half of a :class:`~pytest_privacy.data.text.TextDataset`, called once per model.

Only each model's per-token statistics of every text are stored (``lm_lp``, ``lm_mu``, ``lm_sigma``,
float32 ``[N, T]``: what every LM attack reads), never its weights; the target comes back as a
:class:`~pytest_privacy.data.text_target.CachedTextTarget`, which trains again on demand (generation).

The texts travel through the audit's job as one int64 array ``[N, 2, T]`` (the ids and the mask), so
the split, the cache keys, the locks and the executors are the classifiers' own (:mod:`.text_packing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.likelihood import token_statistics
from ..data.text import TextDataset
from ..engine.executors import Entry, Trained
from ..engine.store import digest
from .job import Built, library_versions
from .sources import FunctionSource
from .text_packing import text_built
from .training_functions import declared

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["TextFunctionSource", "text_source"]


@dataclass(frozen=True)
class TextFunctionSource(FunctionSource):
    """Fine-tunes by the user's ``train_fn(data, *, seed, device) -> model`` on halves of ``text``: a
    model is an ``nn.Module`` or callable returning next-token logits ``[B, T, V]`` (or an object with
    ``.logits``). Named, seeded and checked as every training function is (:class:`FunctionSource`);
    what it stores and builds is a language model's."""

    text: TextDataset

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        return digest(
            "pytest-privacy-lm-fn/1", self.identity, data_id, np.packbits(keep_row), seed.entropy, seed.spawn_key,
            *library_versions(device_type),
        )

    def covers(self) -> str:
        from ..engine.code_identity import code_identity

        return f"language-model training function {code_identity(self.train_fn).describe()}{declared(self.train_fn)}"

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..engine.ensemble import resolve_device

        device = str(resolve_device(job.device))
        ids, mask = job.x[:, 0], job.x[:, 1].astype(bool)
        out = []
        for i in unit:
            model = self.train_fn(self.text.subset(np.flatnonzero(job.keep[i])), seed=self.seed_of(job.seeds[i]), device=device)
            stats = token_statistics(model, ids, mask, spread=True, device=device)
            assert stats.mu is not None and stats.sigma is not None
            entry = {"lm_lp": stats.lp.astype(np.float32), "lm_mu": stats.mu.astype(np.float32),
                     "lm_sigma": stats.sigma.astype(np.float32)}
            out.append(Trained(entry, model if job.keep_models else None))
        return out

    def build(
        self, job: TrainJob, entries: list[Entry], *, n_references: int, target: Any, retrain: Callable[[], Any]
    ) -> Built:
        return text_built(job, entries, n_references=n_references, target=target, retrain=retrain)


def text_source(source: Any, text: TextDataset, *, population: float = 0.0) -> Any:
    """The fine-tunes of a language-model audit from what the user gave (its source from
    :func:`~pytest_privacy.audit.sources.model_source`): an :class:`~pytest_privacy.LMRecipe`, trained by the
    engine, or a training function, called once per model; anything else is an error that says what to
    give."""
    from .lm_recipe_source import LMRecipeSource
    from .stacked_source import StackedFunctionSource
    from .stacked_text_source import StackedTextSource

    if isinstance(source, StackedFunctionSource) and not isinstance(source, StackedTextSource):
        source = StackedTextSource(source.train_fn)  # the user's loop, on stacked language models
    if not isinstance(source, (FunctionSource, LMRecipeSource, StackedTextSource)):
        raise TypeError(
            "a TextDataset is audited with language-model fine-tunes: return a pytest_privacy.LMRecipe from "
            "privacy_recipe, or define privacy_train_fn returning train(data, *, seed, device) -> model (data: the "
            "fine-tune's half, a TextDataset), or a @stacked_training loop; a TrainingRecipe trains classifiers."
        )
    if population:
        raise ValueError(
            "a language model's audit holds no population out (its attacks need none): drop population= / "
            "--privacy-population for this test."
        )
    if isinstance(source, (LMRecipeSource, StackedTextSource)):
        return source
    return TextFunctionSource(source.train_fn, text)

