"""Extraction from a language model (DESIGN.md section 10): prompt each record with its tokens up to
a secret and decode, greedily and by seeded sampling; a record is extracted when a decoding
reproduces the secret. Secrets are the record's marked PII spans (``TextDataset(pii_spans=...)``),
the strings a user's ``pattern`` (a regular expression) finds in it, or, with a fixed ``prefix``, its
whole true suffix. The gate counts members so extracted against the same decoding of non-members'
prompts (what any model of the language would complete).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...stats.checks import check_number

__all__ = ["Secret", "continuations", "extraction_secrets", "pii_extracted", "reproduced"]


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


@dataclass(frozen=True)
class Secret:
    """What one record could give away: its tokens ``[start, end)`` (``kind`` "pii", "pattern" or
    "suffix"), prompted with the record's first ``prompt`` tokens; reproduced when a continuation of
    ``length`` tokens holds ``tokens`` (the record's ``[start, end)``) at their place ("pii",
    "suffix") or ``string`` anywhere in its decoded text ("pattern")."""

    record: int
    start: int
    end: int
    kind: str
    prompt: int
    length: int
    tokens: tuple[int, ...] = ()
    string: str = ""


def _decoder(text: Any) -> Any:
    decode = getattr(text.tokenizer, "decode", None)
    if decode is None or text.texts is None:
        raise ValueError(
            "pattern= finds secrets in the decoded texts: build the TextDataset from texts with a tokenizer that "
            "decodes (a Hugging Face tokenizer, a tokenizers.Tokenizer, WordTokenizer), or mark them with pii_spans=."
        )
    return lambda ids: decode([int(i) for i in ids])


def _pattern_secrets(text: Any, pattern: re.Pattern[str], prefix: int | None, suffix: int) -> list[Secret]:
    """Each match of ``pattern`` in each record's decoded text, prompted with the record's tokens
    decoded before the match (or its first ``prefix``), continued through the token that ends it."""
    decode = _decoder(text)
    out = []
    for i in range(len(text)):
        real = int(text.lengths[i])
        ids = text.ids[i, :real]
        whole = decode(ids)
        ends = [len(decode(ids[:k])) for k in range(real + 1)]  # decoded length of each token prefix
        for m in pattern.finditer(whole):
            if not m.group():
                continue
            first = max(k for k in range(real + 1) if ends[k] <= m.start())  # tokens wholly before the match
            last = min((k for k in range(real + 1) if ends[k] >= m.end()), default=real)
            prompt = first if prefix is None else prefix
            if prompt < 1 or first < prompt or last - prompt > suffix:
                continue  # nothing to prompt with, inside the prompt, or beyond what is generated
            out.append(Secret(i, first, last, "pattern", prompt, last - prompt, string=m.group()))
    return out


def extraction_secrets(
    text: Any, *, prefix: int | None = None, suffix: int = 32, pattern: str | re.Pattern[str] | None = None,
) -> tuple[list[Secret], np.ndarray]:
    """The secrets of each record of ``text`` (a TextDataset) and which records were tried ``[N]``.

    ``prefix=None``: each marked PII span (and each ``pattern`` match), prompted with everything
    before it; a span at the very start is not tried. ``prefix=k``: every record with more than ``k``
    real tokens, prompted with its first ``k``; its secrets are its true suffix (up to ``suffix``
    tokens) and the PII spans and ``pattern`` matches within that suffix."""
    if prefix is not None:
        prefix = int(check_number("prefix", prefix, "[1, inf)", integer=True, why="tokens each record is prompted with, or None"))
    suffix = int(check_number("suffix", suffix, "[1, inf)", integer=True, why="tokens generated after a fixed prefix"))
    if pattern is not None:
        try:
            pattern = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ValueError(f"pattern must be a regular expression (str or re.Pattern), got {pattern!r}: {exc}.") from None
    if prefix is None and text.pii_spans is None and pattern is None:
        raise ValueError(
            "the texts mark no PII: build the TextDataset with pii_spans= (token spans of the secrets), pass "
            "pattern= (a regular expression finding them), or prefix= to test whole suffixes."
        )
    secrets: list[Secret] = []
    for i in range(len(text)):
        real = int(text.lengths[i])
        if prefix is not None and real > prefix:
            end = min(real, prefix + suffix)
            secrets.append(Secret(i, prefix, end, "suffix", prefix, end - prefix, tuple(int(t) for t in text.ids[i, prefix:end])))
        for start, end in (text.pii_spans[i] if text.pii_spans is not None else ()):
            prompt = start if prefix is None else prefix
            if prompt >= 1 and start >= prompt and end - prompt <= (suffix if prefix is not None else end):
                secrets.append(Secret(i, start, end, "pii", prompt, end - prompt, tuple(int(t) for t in text.ids[i, start:end])))
    if pattern is not None:
        secrets += _pattern_secrets(text, pattern, prefix, suffix)
    tried = np.zeros(len(text), dtype=bool)
    tried[[s.record for s in secrets]] = True
    return secrets, tried


def reproduced(
    model: Any, text: Any, secrets: list[Secret], *, samples: int = 0, temperature: float = 1.0, seed: int = 0,
    batch_size: int = 64, device: str = "cpu",
) -> list[Secret]:
    """The ``secrets`` some decoding gives back: greedy, and ``samples`` draws at ``temperature`` (each
    from a generator seeded by ``seed``, the draw and the record: the same whatever the batch size).
    Prompts of one length are decoded together, for the longest secret among them."""
    samples = int(check_number("samples", samples, "[0, inf)", integer=True, why="sampled decodings beside the greedy one"))
    check_number("temperature", temperature, "(0, inf)", why="the sampled decodings' temperature")
    decode = _decoder(text) if any(s.kind == "pattern" for s in secrets) else None
    by_prompt: dict[int, list[Secret]] = {}
    for s in secrets:
        by_prompt.setdefault(s.prompt, []).append(s)
    found: list[Secret] = []
    for prompt, group in sorted(by_prompt.items()):
        records = sorted({s.record for s in group})
        row = {r: j for j, r in enumerate(records)}
        length = max(s.length for s in group)
        left = set(group)
        for draw in range(samples + 1):
            draw_seed = int(np.random.SeedSequence([seed, draw, prompt]).generate_state(1)[0] % 2**31)
            generated = continuations(
                model, text.ids[records], text.mask[records], prefix=prompt, suffix=length, batch_size=batch_size,
                sample=draw > 0, temperature=temperature, seed=draw_seed, device=device,
            )
            for s in list(left):
                g = generated[row[s.record], : s.length]
                at = s.start - s.prompt  # where the secret's tokens sit in the continuation
                hit = s.string in decode(g) if s.kind == "pattern" else tuple(int(t) for t in g[at : at + len(s.tokens)]) == s.tokens
                if hit:
                    found.append(s)
                    left.discard(s)
            if not left:
                break
    return sorted(found, key=lambda s: (s.record, s.start, s.kind))


def pii_extracted(model: Any, text: Any, *, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """``[N]`` bool: whether greedy continuation of the text before each marked PII span of a record
    (``text.pii_spans``) reproduces the span, for any span of the record (what
    :func:`pytest_privacy.assert_no_extraction` does by default)."""
    secrets, _ = extraction_secrets(text)
    out = np.zeros(len(text), dtype=bool)
    out[[s.record for s in reproduced(model, text, secrets, batch_size=batch_size, device=device)]] = True
    return out
