"""Per-token statistics of a causal language model on token ids, the inputs of every sequence score
(:mod:`pytest_privacy.attacks.lm.scores`): ``lp[i, t] = log p(x_t | x_<t)`` and, for Min-K%++, the mean ``mu`` and standard
deviation ``sigma`` of ``log p_v`` under the model's next-token distribution at ``t``.

A model is any ``nn.Module`` or callable taking ids ``[B, T]`` (int64) and, when it accepts one, an
``attention_mask`` ``[B, T]``, returning next-token logits ``[B, T, V]`` or an object with ``.logits``
(a Hugging Face model); log-probabilities are logits too, and probabilities (non-negative, summing to 1
over the vocabulary, as an API may return them) are read through their logarithm, as for classifiers. The logits at position ``t - 1`` predict token ``t``. Texts are read in
batches, so no more than one batch's logits ``[B, T, V]`` are ever alive; the statistics are reduced
in float64 as each batch arrives.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["TokenStatistics", "candidate_log_likelihoods", "next_token_statistics", "sequence_log_likelihoods", "token_statistics"]


@dataclass(frozen=True)
class TokenStatistics:
    """``lp``, and when asked ``mu``, ``sigma``, ``[N, T]`` float64 (column 0, which nothing predicts,
    is 0), and the ``mask`` they were read with."""

    lp: np.ndarray
    mu: np.ndarray | None
    sigma: np.ndarray | None
    mask: np.ndarray


def _takes_attention_mask(model: Any) -> bool:
    forward = getattr(model, "forward", model)
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
    return "attention_mask" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def next_token_statistics(
    logits: torch.Tensor, ids: torch.Tensor, *, spread: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One batch's ``lp``, ``mu``, ``sigma`` ``[B, T - 1]`` in float64 from its logits ``[B, T, V]`` on ids
    ``[B, T]`` (position ``t - 1`` predicts token ``t``; ``mu``, ``sigma`` None unless ``spread``).

    Reduced in the logits' precision, float32 at least (float64 logits stay float64): the statistics are
    stored in float32, and a float64 pass over the vocabulary costs four times as much for digits the
    store drops (relative error about 3e-7 at a vocabulary of 1,745)."""
    import torch

    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logp = torch.log_softmax(logits[:, :-1].to(dtype), dim=-1)
    lp = logp.gather(-1, ids[:, 1:, None])[..., 0]
    if not spread:
        return lp.double(), None, None
    p = logp.exp()
    mu = (p * logp).sum(-1)
    sigma = (p * (logp - mu[..., None]).square()).sum(-1).sqrt()  # two passes: no cancellation in float32
    return lp.double(), mu.double(), sigma.double()


def token_statistics(
    model: Any, ids: np.ndarray, mask: np.ndarray, *, spread: bool = False, batch_size: int = 16, device: str = "cpu"
) -> TokenStatistics:
    """The model's per-token statistics on ``ids [N, T]`` (int64) with ``mask [N, T]`` (True on
    real tokens), in batches of ``batch_size`` texts, in eval mode and without gradients;
    ``spread=True`` also reads ``mu`` and ``sigma`` (two more passes over each batch's vocabulary,
    which only Min-K%++ needs)."""
    import torch

    from .querying import ask, evaluating, is_module

    ids, mask = np.asarray(ids), np.asarray(mask)
    if not callable(model):
        raise TypeError(
            f"model must be an nn.Module or a callable taking token ids [B, T] and returning next-token logits "
            f"[B, T, V] (or an object with .logits), got {type(model).__name__}."
        )
    cached = getattr(model, "cached_statistics", None)  # a CachedTextTarget: its audit texts from the cache
    if cached is not None:
        known = cached(ids, mask, spread)
        if known is not None:
            return known
        model = model.model
    if ids.ndim != 2 or ids.shape != mask.shape or ids.dtype.kind not in "iu" or mask.dtype != np.bool_:
        raise ValueError(
            f"token ids must be integers [N, T] with a boolean mask of the same shape, got ids {ids.dtype} "
            f"{ids.shape} and mask {mask.dtype} {mask.shape}."
        )
    n, t = ids.shape
    lp = np.zeros((n, t), dtype=np.float64)
    mu, sigma = (np.zeros((n, t), dtype=np.float64), np.zeros((n, t), dtype=np.float64)) if spread else (None, None)
    with_mask = _takes_attention_mask(model)
    context = evaluating(model) if is_module(model) else contextlib.nullcontext()
    with torch.no_grad(), context:
        for start in range(0, n, batch_size):
            batch = torch.from_numpy(ids[start : start + batch_size].astype(np.int64)).to(device)
            attention = torch.from_numpy(mask[start : start + batch_size]).to(device)
            out = ask(model, batch, attention_mask=attention.long()) if with_mask else ask(model, batch)
            logits = getattr(out, "logits", out)
            if not isinstance(logits, torch.Tensor) or logits.shape[:2] != batch.shape or logits.ndim != 3:
                raise ValueError(
                    f"the model must return next-token logits [B, T, V] for ids [B, T] = {tuple(batch.shape)}, got "
                    f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}."
                )
            if int(batch.max()) >= logits.shape[-1]:
                raise ValueError(
                    f"token id {int(batch.max())} is beyond the model's {logits.shape[-1]} next-token logits: the texts "
                    "were tokenised with another tokenizer than the model's (its vocabulary is smaller)."
                )
            if bool((logits >= 0).all()) and bool(torch.allclose(logits.double().sum(-1), torch.ones((), dtype=torch.float64), atol=1e-4)):
                # probabilities (an API's next-token distribution): their logarithm is what log-softmax reads
                logits = torch.log(logits.double().clamp_min(1e-300))
            rows = slice(start, start + len(batch))
            values = next_token_statistics(logits, batch, spread=spread)
            for dest, value in zip((lp, mu, sigma), values):
                if dest is not None and value is not None:
                    dest[rows, 1:] = value.cpu().numpy()
    return TokenStatistics(lp, mu, sigma, mask)


def candidate_log_likelihoods(
    model: Any, prefix: np.ndarray, alphabet: np.ndarray, length: int, *, batch_size: int = 2048, device: str = "cpu"
) -> np.ndarray:
    """``[A^length]`` float64: ``log p(s | prefix)`` of every secret ``s`` of ``length`` tokens from
    ``alphabet`` (``A`` token ids), in lexicographic order (secret ``i``'s tokens are the base-``A``
    digits of ``i``, most significant first). Secrets sharing a start share its forward passes: depth
    ``d`` reads the next-token distribution after each of the ``A^d`` partial secrets once, so the
    whole space costs ``(A^length - 1) / (A - 1)`` sequences, not ``A^length``."""
    import torch

    from .querying import ask, evaluating, is_module

    prefix, alphabet = np.asarray(prefix, dtype=np.int64), np.asarray(alphabet, dtype=np.int64)
    totals = np.zeros(1)
    partial = np.zeros((1, 0), dtype=np.int64)  # alphabet indices of the secrets' starts
    with_mask = _takes_attention_mask(model)
    context = evaluating(model) if is_module(model) else contextlib.nullcontext()
    with torch.no_grad(), context:
        for _ in range(length):
            rows = np.concatenate([np.broadcast_to(prefix, (len(partial), len(prefix))), alphabet[partial]], axis=1)
            step = np.empty((len(rows), len(alphabet)))
            for start in range(0, len(rows), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(rows[start : start + batch_size])).to(device)
                out = ask(model, batch, attention_mask=torch.ones_like(batch)) if with_mask else ask(model, batch)
                logits = getattr(out, "logits", out)[:, -1].double()
                step[start : start + len(batch)] = torch.log_softmax(logits, dim=-1)[:, torch.from_numpy(alphabet)].cpu().numpy()
            totals = (totals[:, None] + step).reshape(-1)
            partial = np.concatenate(
                [np.repeat(partial, len(alphabet), axis=0), np.tile(np.arange(len(alphabet)), len(partial))[:, None]], axis=1
            )
    return totals



def sequence_log_likelihoods(
    model: Any, prefix: np.ndarray, alphabet: np.ndarray, secrets: np.ndarray, *, batch_size: int = 512, device: str = "cpu"
) -> np.ndarray:
    """``[K]`` float64: ``log p(s | prefix)`` of each secret of ``secrets [K, length]`` (alphabet
    indices): each canary text read whole by :func:`token_statistics` (its checks included), the
    secret's tokens summed. What a sample of a space too large to enumerate
    (:func:`candidate_log_likelihoods`) is scored by."""
    prefix, alphabet, secrets = (np.asarray(a, dtype=np.int64) for a in (prefix, alphabet, secrets))
    rows = np.concatenate([np.broadcast_to(prefix, (len(secrets), len(prefix))), alphabet[secrets]], axis=1)
    lp = token_statistics(model, rows, np.ones(rows.shape, dtype=bool), batch_size=batch_size, device=device).lp
    return lp[:, len(prefix) :].sum(axis=1)
