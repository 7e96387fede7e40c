"""Text data for a language model's audit: ``TextDataset``, texts tokenised once into int64 ids
``[N, T]`` with a boolean attention mask, or ids given as they are. Ids stay int64 everywhere (never a
float feature), and the texts are kept beside them for the scores that read the text itself (zlib).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CANARY_FORMAT", "TextDataset", "WordTokenizer"]

#: The words before an LM canary's secret digits (``lm_canary_run``), as in "The Secret Sharer".
DEFAULT_CANARY_FORMAT = "my account number is"

_WORD = re.compile(r"\w+|[^\w\s]")


class WordTokenizer:
    """A word-level tokenizer trained on a corpus: words and punctuation marks, each its own token,
    ``<pad>`` = 0 and ``<unk>`` = 1. Callable ``str -> list[int]``; :meth:`offsets` gives each token's
    character span (so character spans, e.g. of PII, map to token spans exactly)."""

    def __init__(self, corpus: Iterable[str]) -> None:
        words = sorted({w for text in corpus for w in _WORD.findall(text)})
        self.vocabulary = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
        self.words = list(self.vocabulary)

    def __call__(self, text: str) -> list[int]:
        return [self.vocabulary.get(w, 1) for w in _WORD.findall(text)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Each token's ``(start, end)`` character span in ``text``."""
        return [m.span() for m in _WORD.finditer(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """The tokens of ``ids`` joined by spaces (padding left out)."""
        return " ".join(self.words[int(i)] for i in ids if int(i) != 0)

    def __len__(self) -> int:
        return len(self.vocabulary)


def _encoder(tokenizer: Any) -> Callable[[str], list[int]]:
    """``str -> list[int]`` for a Hugging Face tokenizer (called, ``input_ids``), a ``tokenizers``
    ``Tokenizer`` (``encode(text).ids``) or any callable returning ids."""
    if hasattr(tokenizer, "encode") and not callable(tokenizer):
        return lambda text: list(tokenizer.encode(text).ids)
    if not callable(tokenizer):
        raise TypeError(
            f"tokenizer must be a Hugging Face tokenizer, a tokenizers.Tokenizer or a callable str -> list[int], "
            f"got {type(tokenizer).__name__}."
        )

    def encode(text: str) -> list[int]:
        out = tokenizer(text)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return list(getattr(out, "ids", out))

    return encode


class TextDataset:
    """Texts for a language model: ``TextDataset(texts, tokenizer=..., max_length=...)`` tokenises each
    text (truncated to ``max_length`` tokens, padded with ``pad_id`` behind a False mask), or
    ``TextDataset(ids=..., mask=...)`` takes int64 ids ``[N, T]`` and a boolean mask as they are.

    A text longer than ``max_length`` tokens is an error unless ``truncate=True`` (then its first
    ``max_length`` tokens are kept, and ``truncated`` counts such texts).

    Attributes: ``ids [N, T]`` int64, ``mask [N, T]`` bool, ``texts`` (None for ids given as they are),
    ``lengths [N]`` real tokens per text, ``truncated`` how many texts were cut to ``max_length``.
    """

    def __init__(
        self,
        texts: Sequence[str] | None = None,
        *,
        tokenizer: Any = None,
        max_length: int | None = None,
        ids: Any = None,
        mask: Any = None,
        pad_id: int = 0,
        pii_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
        truncate: bool = False,
    ) -> None:
        if (texts is None) == (ids is None):
            raise ValueError("give texts (with a tokenizer) or token ids (with their mask), one of the two.")
        if texts is not None:
            if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
                raise TypeError("texts must be a sequence of str, one per record.")
            if len(texts) == 0:
                raise ValueError("texts is empty: an audit needs records.")
            if tokenizer is None:
                raise ValueError("texts need a tokenizer (a Hugging Face tokenizer, a tokenizers.Tokenizer or a callable).")
            if max_length is None or isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
                raise ValueError(f"max_length must be an integer >= 2 (tokens kept per text), got {max_length!r}.")
            if not isinstance(truncate, bool):
                raise TypeError(f"truncate must be True or False, got {truncate!r}.")
            encode = _encoder(tokenizer)
            full = [encode(t) for t in texts]
            longer = [i for i, row in enumerate(full) if len(row) > max_length]
            if longer and not truncate:  # a text cut silently would be audited on what it does not say
                raise ValueError(
                    f"{len(longer)} of {len(texts)} texts are longer than max_length={max_length} tokens (text "
                    f"{longer[0]}: {len(full[longer[0]])}): raise max_length, or pass truncate=True to keep the first "
                    f"{max_length} tokens of each (TextDataset.truncated then counts them)."
                )
            encoded = [row[:max_length] for row in full]
            ids_arr = np.full((len(texts), max_length), pad_id, dtype=np.int64)
            mask_arr = np.zeros((len(texts), max_length), dtype=bool)
            for i, row in enumerate(encoded):
                if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in row):
                    raise TypeError(f"the tokenizer returned non-integer ids for text {i}: {row[:5]!r}...")
                ids_arr[i, : len(row)] = row
                mask_arr[i, : len(row)] = True
            self.texts: list[str] | None = list(texts)
            self.truncated = len(longer)
        else:
            ids_arr, mask_arr = np.asarray(ids), np.asarray(mask) if mask is not None else None
            if ids_arr.ndim != 2 or ids_arr.dtype.kind not in "iu":
                raise ValueError(f"ids must be integer token ids [N, T], got {ids_arr.dtype} {ids_arr.shape}.")
            if mask_arr is None or mask_arr.shape != ids_arr.shape or mask_arr.dtype != np.bool_:
                raise ValueError("ids need their attention mask: a boolean array of the same shape (True on real tokens).")
            ids_arr = ids_arr.astype(np.int64, copy=False)
            self.texts = None
            self.truncated = 0
        lengths = mask_arr.sum(axis=1)
        if (lengths < 2).any():
            i = int(np.flatnonzero(lengths < 2)[0])
            raise ValueError(f"text {i} has {int(lengths[i])} token(s): a text is scored on the tokens after its first, so it needs 2.")
        if (ids_arr < 0).any():
            raise ValueError("token ids must be >= 0.")
        self.ids, self.mask, self.lengths = ids_arr, mask_arr, lengths
        self.tokenizer = tokenizer
        self.pii_spans = None if pii_spans is None else self._checked_spans(pii_spans)

    def _checked_spans(self, spans: Sequence[Sequence[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
        """PII as token spans ``[start, end)`` per record, each within the record's real tokens."""
        if len(spans) != len(self.ids):
            raise ValueError(f"pii_spans needs one list of token spans per record: {len(spans)} for {len(self.ids)}.")
        out = []
        for i, record in enumerate(spans):
            checked = []
            for start, end in record:
                if not (isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer))
                        and 0 <= start < end <= self.lengths[i]):
                    raise ValueError(
                        f"record {i}: a PII span must be token indices 0 <= start < end <= {int(self.lengths[i])}, "
                        f"got ({start!r}, {end!r})."
                    )
                checked.append((int(start), int(end)))
            out.append(checked)
        return out

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, text: str) -> list[int]:
        """``text``'s token ids under this data set's tokenizer (an error for ids given without one)."""
        if self.tokenizer is None:
            raise ValueError("these texts came as token ids without a tokenizer: nothing can encode new text.")
        ids = _encoder(self.tokenizer)(text)
        if isinstance(self.tokenizer, WordTokenizer) and 1 in ids:
            unknown = [w for w, i in zip(_WORD.findall(text), ids) if i == 1]
            raise ValueError(f"the tokenizer does not know {unknown}: train it on a corpus that has them.")
        return ids

    def subset(self, index: Any) -> TextDataset:
        """The records at ``index``, as a TextDataset (texts kept)."""
        index = np.asarray(index)
        rows = np.arange(len(self))[index]
        spans = None if self.pii_spans is None else [self.pii_spans[int(i)] for i in rows]
        out = TextDataset(ids=self.ids[index], mask=self.mask[index], pii_spans=spans)
        out.texts = None if self.texts is None else [self.texts[int(i)] for i in rows]
        out.tokenizer = self.tokenizer
        return out
