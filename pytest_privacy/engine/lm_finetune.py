"""An :class:`~pytest_privacy.engine.lm_recipe.LMRecipe`'s fine-tunes, many as one program: trained on their
own halves (:func:`finetune`), then every text scored under every model in one pass (:func:`score`).

Each model draws its minibatches from its own generator (:class:`~.own_loop.PerModelBatches`, stream 1
of its seed), so its batches never depend on the others; the loss is summed over models (model ``m``'s
adapters or weights reach only its own loss), AdamW acts elementwise on the stacked tensors, and each
model's gradient is clipped by its own norm: a stacked fine-tune equals the same fine-tune alone
(``tests/engine/test_lm_finetune.py``, float64). Models train in stacks that fit the memory budget.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .lm_loss import lm_loss
from .own_loop import PerModelBatches, clip_per_model_
from .precision import autocast
from .stacked_lm import (
    StackedFull,
    StackedLoRA,
    linear_shape,
    make_stack,
    unstackable_layer,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .lm_recipe import LMRecipe

__all__ = ["FineTuned", "LMEngineWarning", "check_causal", "finetune", "finetune_models", "models_per_stack", "score", "vocabulary"]


class LMEngineWarning(UserWarning):
    """The engine could not stack a base's fine-tunes and trains them one at a time (it says why)."""


def finetune(
    recipe: LMRecipe, stack: StackedLoRA | StackedFull, ids: torch.Tensor, mask: torch.Tensor,
    batches: PerModelBatches, *, precision: str = "float32", tick: Callable[[], Any] | None = None, trim: bool = True,
) -> list[float]:
    """Train the stack's models for ``recipe.epochs`` on their own minibatches (``batches``: point indices
    per model and step, into ``ids``/``mask [N, T]`` on the training device); returns each model's loss on
    its last minibatch. ``trim``: each step reads only the columns up to its longest text (the rest is
    padding, which a causal model's logits on real tokens never depend on; the texts are right-padded)."""
    import torch

    params = stack.trainable()
    opt = torch.optim.AdamW(
        params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay, foreach=True
    )
    total, step = recipe.epochs * len(batches), 0
    last = torch.zeros(stack.n_models)
    for _ in range(recipe.epochs):
        for idx in batches.iter_indices():
            index = torch.from_numpy(idx).to(ids.device)
            xb, mb = ids[index], mask[index]
            if trim:  # the columns after the batch's longest text are padding: a causal model never reads them
                width = max(2, int(mb.sum(-1).max()))
                xb, mb = xb[..., :width], mb[..., :width]
            for group in opt.param_groups:
                group["lr"] = recipe.learning_rate(step, total)
            with autocast(precision, ids.device):
                loss = lm_loss(stack.logits(xb), xb, mb)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # model m's tensors reach only loss[m]: the sum's gradient is each model's own
            if recipe.grad_clip is not None:
                clip_per_model_(params, recipe.grad_clip)
            opt.step()
            last, step = loss.detach(), step + 1
        if tick is not None:
            tick()
    return [float(v) for v in last.cpu()]


def score(
    stack: Any, ids: np.ndarray, mask: np.ndarray, *, device: torch.device, budget: int,
    precision: str = "float32", trim: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Every model of ``stack`` (anything with ``n_models`` and ``logits(ids [M, b, T])``: the engine's
    stacks, ``StackedModels``, ``StackedAdapters``) scored on every text: per-token statistics (``lm_lp``,
    ``lm_mu``, ``lm_sigma``, float32 ``[N, T]``; zero in column 0 and on padding, which nothing reads), in
    chunks of texts whose logits ``[M, b, T, V]`` and their reduction fit ``budget`` bytes: no more than one
    chunk's logits are ever alive. ``trim``: texts are read in order of length, each chunk only up to its
    longest text (as :func:`finetune` trims)."""
    import torch

    from ..data.likelihood import next_token_statistics

    n, t = ids.shape
    m = stack.n_models
    out = [{k: np.zeros((n, t), dtype=np.float32) for k in ("lm_lp", "lm_mu", "lm_sigma")} for _ in range(m)]
    lengths = mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")  # texts of like length together: each chunk trims to its longest
    chunk = 1  # until the vocabulary is known
    start = 0
    with torch.no_grad():
        while start < n:
            rows = order[start : start + chunk]
            width = max(2, int(lengths[rows].max())) if trim else t
            batch = torch.from_numpy(ids[rows, :width]).to(device)
            with autocast(precision, device):
                logits = stack.logits(batch.expand(m, *batch.shape))
            b = batch.shape[0]
            values = next_token_statistics(logits.reshape(m * b, width, -1), batch.repeat(m, 1), spread=True)
            for key, value in zip(("lm_lp", "lm_mu", "lm_sigma"), values):
                assert value is not None
                value = value.view(m, b, width - 1).float().cpu().numpy()
                for j in range(m):
                    out[j][key][rows, 1:width] = np.where(mask[rows, 1:width], value[j], 0.0)
            start += len(rows)
            chunk = max(1, min(budget // max(1, m * t * logits.shape[-1] * 8 * 4), _ROWS // m))
    return out


_ROWS = 16  # texts x models per scoring pass: larger passes only move more memory (measured, 2-core CPU)
# A CPU training step's logits at most (bytes, at full text length): larger steps fault fresh pages in for
# every temporary of that size (glibc maps them anew above 32 MiB) and leave the cache; 16 GPT-2 fine-tunes
# of the benchmark trained in 10.8 s as one stack of 16, 8.1-8.8 s as stacks of 2-4.
_CPU_STEP_LOGITS = 32 << 20


@dataclass
class FineTuned:
    """One fine-tune's statistics on every text and, when asked, the model itself."""

    statistics: dict[str, np.ndarray]
    model: Any = None


def _bytes_per_model(base: nn.Module, recipe: LMRecipe, length: int, vocab: int) -> int:
    """Training memory of one stacked fine-tune: its trained tensors with gradient and two AdamW
    buffers, and one minibatch's activations (every linear layer's output, kept with its gradient) and
    logits (with their softmax and gradient)."""
    outputs = sum(s[1] for s in (linear_shape(m) for m in base.modules()) if s is not None)
    if recipe.lora:
        trained = sum(recipe.lora_rank * sum(s) for s in (linear_shape(m) for m in base.modules()) if s is not None)
    else:
        trained = sum(p.numel() for p in base.parameters())
    return 4 * (4 * int(trained) + recipe.batch_size * length * (2 * outputs + 3 * vocab))


def finetune_models(
    recipe: LMRecipe, base: nn.Module, ids: np.ndarray, mask: np.ndarray, keep: np.ndarray,
    seeds: Sequence[np.random.SeedSequence], *, device: torch.device, budget: int, precision: str,
    keep_models: bool = False, tick: Callable[[int], Any] | None = None,
) -> list[FineTuned]:
    """The fine-tunes ``keep [M, N]`` (row ``m``: the texts model ``m`` trains on) of ``base`` by ``recipe``,
    stacked as far as ``budget`` bytes allow, one at a time when the base cannot be stacked (a warning
    names the layer); each scored on every text."""
    import torch

    base = base.to(device)
    check_causal(base, device)
    reason = unstackable_layer(base, recipe) if len(seeds) > 1 else None
    if reason is not None:
        warnings.warn(
            f"LMRecipe: fine-tuning {len(seeds)} models of {type(base).__name__} one at a time, not as one program: "
            f"{reason}.", LMEngineWarning, stacklevel=3,
        )
    most = 1 if reason is not None else models_per_stack(recipe, base, ids.shape[1], device=device, budget=budget)
    ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
    packed = np.zeros((len(ids), 1), dtype=np.int64)  # the batches draw point indices only
    steps = keep.sum(axis=1) // recipe.batch_size
    out: dict[int, FineTuned] = {}
    # Models with the same number of minibatches per epoch stack (every model takes every step).
    for count in sorted(set(steps.tolist())):
        group = [i for i in range(len(seeds)) if steps[i] == count]
        for at in range(0, len(group), most):
            chunk = group[at : at + most]
            chunk_seeds = [seeds[i] for i in chunk]
            stack = make_stack(base, recipe, chunk_seeds)
            batches = PerModelBatches(packed, np.zeros(len(ids)), keep[chunk], chunk_seeds,
                                      batch_size=recipe.batch_size, steps_per_epoch=int(count))
            finetune(recipe, stack, ids_t, mask_t, batches, precision=precision)
            stats = score(stack, ids, mask, device=device, budget=max(budget // 4, 1 << 24), precision=precision)
            for j, i in enumerate(chunk):
                out[i] = FineTuned(stats[j], stack.alone(j).cpu() if keep_models else None)
            if tick is not None:
                tick(len(chunk))
    return [out[i] for i in range(len(seeds))]


def models_per_stack(recipe: LMRecipe, base: nn.Module, length: int, *, device: torch.device, budget: int) -> int:
    """How many fine-tunes train as one stack: as many as ``budget`` bytes hold and, on a CPU, no more than
    keep a step's logits near the cache (a CPU step is fastest so: measured, stacks of 2-4)."""
    vocab = vocabulary(base, device)
    most = max(1, budget // _bytes_per_model(base, recipe, length, vocab))
    if device.type == "cpu":
        most = min(most, max(1, _CPU_STEP_LOGITS // (recipe.batch_size * length * vocab * 4)))
    return most


def check_causal(base: nn.Module, device: torch.device) -> None:
    """Refuse a model whose logits at a token depend on the tokens after it: the engine reads texts without
    an attention mask and trims padding off, which is exact for a causal model only."""
    import torch

    from .stacked_lm import output_logits

    ids = torch.tensor([[1, 0, 1, 0, 0, 1]], device=device)
    with torch.no_grad():
        whole, prefix = output_logits(base(ids)), output_logits(base(ids[:, :3]))
    if not torch.allclose(whole[:, :3].float(), prefix.float(), rtol=1e-4, atol=1e-5):
        raise ValueError(
            f"LMRecipe fine-tunes causal language models, but {type(base).__name__}'s logits at a token change with "
            "the tokens after it: train it with privacy_train_fn (your own loop, with its attention mask)."
        )


def vocabulary(base: nn.Module, device: torch.device) -> int:
    """The base's vocabulary (the last axis of its logits on a two-token text)."""
    import torch

    from .stacked_lm import output_logits

    with torch.no_grad():
        return int(output_logits(base(torch.zeros(1, 2, dtype=torch.long, device=device))).shape[-1])
