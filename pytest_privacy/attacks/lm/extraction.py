"""Extraction from a language model (DESIGN.md section 10): continue each record's first ``prefix``
tokens for ``suffix`` tokens, greedily (or by seeded sampling), and count a record as extracted when
the continuation reproduces one of its marked PII spans, or its whole true suffix. The gate counts
members so extracted against the same decoding of non-members' prefixes (what any model of the
language would complete).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["continuations", "extracted", "pii_extracted"]


def continuations(
    model: Any, ids: np.ndarray, mask: np.ndarray, *, prefix: int, suffix: int, batch_size: int = 16,
    sample: bool = False, temperature: float = 1.0, seed: int = 0, device: str = "cpu",
) -> np.ndarray:
    """``[N, suffix]`` tokens continuing each record's first ``prefix`` tokens: the most likely token at
    each step (``sample=False``), or tokens drawn at ``temperature`` from a generator seeded by ``seed``
    (the same draws whatever the batch size: one generator per record). Every record needs ``prefix``
    real tokens."""
    import torch

    from ...data.querying import ask, evaluating, is_module

    ids, mask = np.asarray(ids), np.asarray(mask)
    if not (isinstance(prefix, int) and isinstance(suffix, int) and prefix >= 1 and suffix >= 1):
        raise ValueError(f"prefix and suffix must be integers >= 1 (tokens given, tokens generated), got {prefix!r}, {suffix!r}.")
    if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[1] < prefix:
        raise ValueError(f"token ids [N, T] with T >= prefix and a mask of the same shape, got {ids.shape} and {mask.shape}.")
    short = np.flatnonzero(~mask[:, :prefix].all(axis=1))
    if short.size:
        raise ValueError(f"{short.size} record(s) have fewer than prefix={prefix} tokens (first: {int(short[0])}): shorten the prefix.")
    if sample and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    out = np.zeros((len(ids), suffix), dtype=np.int64)
    context = evaluating(model) if is_module(model) else contextlib.nullcontext()
    with torch.no_grad(), context:
        for start in range(0, len(ids), batch_size):
            rows = range(start, min(start + batch_size, len(ids)))
            current = torch.from_numpy(ids[start : start + batch_size, :prefix].astype(np.int64)).to(device)
            generators = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in rows] if sample else []
            for step in range(suffix):
                out_ = ask(model, current)
                logits = getattr(out_, "logits", out_)
                last = logits[:, -1].double()
                if sample:
                    probs = torch.softmax(last / temperature, dim=-1).cpu()
                    nxt = torch.stack([torch.multinomial(p, 1, generator=g)[0] for p, g in zip(probs, generators)]).to(device)
                else:
                    nxt = last.argmax(dim=-1)
                out[start : start + len(current), step] = nxt.cpu().numpy()
                current = torch.cat([current, nxt[:, None]], dim=1)
    return out


def extracted(
    generated: np.ndarray, ids: np.ndarray, mask: np.ndarray, *, prefix: int,
    pii_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> np.ndarray:
    """``[N]`` bool: whether each record's continuation ``generated [N, S]`` reproduces a marked PII
    span of the record (token spans ``[start, end)`` wholly within ``[prefix, prefix + S)``) or the
    record's whole true suffix (its real tokens after the prefix, up to ``S`` of them)."""
    generated, ids, mask = np.asarray(generated), np.asarray(ids), np.asarray(mask)
    s = generated.shape[1]
    out = np.zeros(len(ids), dtype=bool)
    for i in range(len(ids)):
        real = int(mask[i].sum())
        true_suffix = ids[i, prefix : min(real, prefix + s)]
        if len(true_suffix) and np.array_equal(generated[i, : len(true_suffix)], true_suffix):
            out[i] = True
            continue
        for start, end in (pii_spans[i] if pii_spans is not None else ()):
            if prefix <= start < end <= min(real, prefix + s) and np.array_equal(
                generated[i, start - prefix : end - prefix], ids[i, start:end]
            ):
                out[i] = True
                break
    return out


def pii_extracted(model: Any, text: Any, *, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """``[N]`` bool: whether greedy continuation of the text before each marked PII span of a record
    (``text.pii_spans``, a :class:`~pytest_privacy.data.text.TextDataset`'s) reproduces the span, for
    any span of the record. A span at the very start (nothing before it to prompt with) is not tried.
    Prompts of one length are decoded together, each for its own span's length."""
    if text.pii_spans is None:
        raise ValueError(
            "the texts mark no PII: build the TextDataset with pii_spans= (token spans of the secrets), or "
            "gate the whole suffix with extracted(continuations(...))."
        )
    by_start: dict[int, list[tuple[int, int, int]]] = {}
    for i, spans in enumerate(text.pii_spans):
        for start, end in spans:
            if start >= 1:
                by_start.setdefault(start, []).append((i, start, end))
    out = np.zeros(len(text), dtype=bool)
    for start, items in sorted(by_start.items()):
        rows = np.array([i for i, _, _ in items])
        longest = max(end - start for _, _, end in items)
        generated = continuations(
            model, text.ids[rows], text.mask[rows], prefix=start, suffix=longest, batch_size=batch_size, device=device
        )
        for (i, s, e), g in zip(items, generated):
            if np.array_equal(g[: e - s], text.ids[i, s:e]):
                out[i] = True
    return out

