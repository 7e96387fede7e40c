"""Canaries for a language model's fine-tune ("The Secret Sharer", Carlini et al. 2019): texts of a fixed
format with a random secret (``my account number is 7 4 1 9``), each planted 1, 4 or 16 times, each
included in the fine-tune with probability 1/2, and every secret of the space ranked by the fine-tuned
model: a canary's exposure is how far up its own secret comes.

All canaries share the format, so one pass over the secret space (:func:`~pytest_privacy.data.likelihood.
candidate_log_likelihoods`) ranks every canary's secret; the log-likelihoods of the whole space are what
the store keeps for the run. A space too large to enumerate (more than 10^6 secrets) is sampled, as the
paper does: :data:`SAMPLED_CANDIDATES` secrets drawn uniformly and seeded, scored beside the canaries'
own (:func:`~pytest_privacy.data.likelihood.sequence_log_likelihoods`); the exposure is then bounded
exactly from the count above the secret and estimated by the paper's fitted distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.likelihood import candidate_log_likelihoods, sequence_log_likelihoods
from ..data.text import DEFAULT_CANARY_FORMAT, TextDataset
from ..engine.executors import Trained
from ..engine.store import digest
from .job import library_versions
from .text_source import TextFunctionSource

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["DEFAULT_REPETITIONS", "SAMPLED_CANDIDATES", "LMCanaryRun", "LMCanarySet", "TextCanarySource"]

DEFAULT_REPETITIONS = (1, 4, 16)  # how often each canary is planted, as in the paper's figures
DEFAULT_PER_COUNT = 8  # canaries drawn per repetition count (about half of them planted)
DEFAULT_LENGTH = 4  # secret digits: 10^4 secrets, every one ranked exactly (13.3 bits at most)
_MAX_ENUMERATED = 10**6
SAMPLED_CANDIDATES = 20_000  # secrets scored when the space is sampled: exposures certified up to ~12 bits
_MAX_LENGTH = 18  # digits: a secret's index stays an int64


@dataclass(frozen=True)
class LMCanarySet:
    """The canaries of one run: the format's tokens, the secret alphabet's token ids, each canary's
    secret (alphabet indices ``[K, length]``), its repetition count and whether it was planted; and,
    for a space too large to enumerate, the uniformly sampled secrets it is ranked by (``sampled [n,
    length]``; None: every secret is ranked)."""

    prefix: np.ndarray
    alphabet: np.ndarray
    secrets: np.ndarray
    repetitions: np.ndarray
    included: np.ndarray
    format: str
    sampled: np.ndarray | None = None

    @classmethod
    def draw(
        cls, text: TextDataset, *, seed: int, repetitions: tuple[int, ...] = DEFAULT_REPETITIONS,
        per_count: int = DEFAULT_PER_COUNT, length: int = DEFAULT_LENGTH, format: str = DEFAULT_CANARY_FORMAT,
    ) -> LMCanarySet:
        """Draw ``per_count`` canaries for each repetition count, secrets of ``length`` digits, each planted
        with probability 1/2, from ``seed``. The format and every digit must be tokens of ``text``'s
        tokenizer (each digit one token): an error says so before anything trains."""
        if not repetitions or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in repetitions):
            raise ValueError(f"repetitions must be integers >= 1 (copies of a canary), got {repetitions!r}.")
        for name, v, low in (("per_count", per_count, 1), ("length", length, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
        if length > _MAX_LENGTH:
            raise ValueError(f"length={length} digits: use length <= {_MAX_LENGTH} (10^{length} secrets cannot be indexed).")
        prefix = np.asarray(text.encode(format), dtype=np.int64)
        digits = [text.encode(str(d)) for d in range(10)]
        if any(len(d) != 1 for d in digits) or len({d[0] for d in digits}) != 10:
            raise ValueError(
                "the tokenizer must spell each digit 0-9 as one token of its own (the secrets' alphabet); it gives "
                f"{digits}. Train it on a corpus with the digits as words."
            )
        if len(prefix) + length + 1 > text.ids.shape[1]:
            raise ValueError(f"a canary of {len(prefix) + length} tokens does not fit the texts' {text.ids.shape[1]}.")
        rng = np.random.default_rng([seed, 0x6C6D63])
        k = per_count * len(repetitions)
        sampled = None
        if 10**length > _MAX_ENUMERATED:  # (a stream of its own: the canaries are the same either way)
            sampled = np.random.default_rng([seed, 0x736D70]).integers(0, 10, (SAMPLED_CANDIDATES, length))
        return cls(
            prefix, np.array([d[0] for d in digits], dtype=np.int64), rng.integers(0, 10, (k, length)),
            np.repeat(np.asarray(repetitions, dtype=np.int64), per_count), rng.random(k) < 0.5, format, sampled,
        )

    @property
    def space_size(self) -> int:
        """How many secrets the format can hold."""
        return len(self.alphabet) ** self.secrets.shape[1]

    @property
    def secret_index(self) -> np.ndarray:
        """Each canary's secret as its index in the lexicographic order of the space."""
        return self.secrets @ (len(self.alphabet) ** np.arange(self.secrets.shape[1])[::-1])

    def training_text(self, text: TextDataset) -> TextDataset:
        """``text`` with each planted canary appended as many times as its repetition count (its secret
        marked as a PII span when the texts mark theirs)."""
        rows = [k for k in np.flatnonzero(self.included) for _ in range(int(self.repetitions[k]))]
        t = text.ids.shape[1]
        tokens = np.concatenate([np.broadcast_to(self.prefix, (len(self.secrets), len(self.prefix))), self.alphabet[self.secrets]], 1)
        ids = np.zeros((len(rows), t), dtype=np.int64)
        ids[:, : tokens.shape[1]] = tokens[rows]
        mask = np.zeros((len(rows), t), dtype=bool)
        mask[:, : tokens.shape[1]] = True
        # A canary's secret is PII like any other: marked, so a scrubber that reads the spans sees it too.
        secret = (len(self.prefix), len(self.prefix) + self.secrets.shape[1])
        spans = None if text.pii_spans is None else [*text.pii_spans, *([secret] for _ in rows)]
        out = TextDataset(ids=np.concatenate([text.ids, ids]), mask=np.concatenate([text.mask, mask]), pii_spans=spans)
        if text.texts is not None:
            out.texts = [*text.texts, *(f"{self.format} {' '.join(map(str, self.secrets[k]))}" for k in rows)]
        out.tokenizer = text.tokenizer
        return out

    def describe(self) -> str:
        counts = ", ".join(f"{int(r)}x" for r in np.unique(self.repetitions))
        return (
            f"{len(self.secrets)} canaries '{self.format} <{self.secrets.shape[1]} digits>' planted {counts}, "
            f"{int(self.included.sum())} included"
        )


@dataclass(frozen=True)
class TextCanarySource(TextFunctionSource):
    """One fine-tune by the user's function on the texts with the canaries planted; what is stored is
    the fine-tuned model's log-likelihood of every secret of the space after the format."""

    canaries: LMCanarySet | None = None

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        c = self.canaries
        assert c is not None
        return digest(
            "pytest-privacy-lm-canaries/1", self.identity, data_id, np.packbits(keep_row), seed.entropy, seed.spawn_key,
            c.prefix, c.alphabet, c.secrets, c.repetitions, np.packbits(c.included), *library_versions(device_type),
            *(() if c.sampled is None else ("sampled", c.sampled)),
        )

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..engine.ensemble import resolve_device

        c = self.canaries
        assert c is not None
        device = str(resolve_device(job.device))
        model = self.train_fn(self.text, seed=self.seed_of(job.seeds[0]), device=device)
        if c.sampled is None:
            entry = {"candidate_ll": candidate_log_likelihoods(model, c.prefix, c.alphabet, c.secrets.shape[1], device=device)}
        else:  # the sample ranks the canaries' secrets, scored the same way
            entry = {"candidate_ll": sequence_log_likelihoods(model, c.prefix, c.alphabet, c.sampled, device=device),
                     "secret_ll": sequence_log_likelihoods(model, c.prefix, c.alphabet, c.secrets, device=device)}
        return [Trained(entry, model if job.keep_models else None)]


@dataclass(frozen=True)
class LMCanaryRun:
    """One fine-tune with planted canaries: the canaries, and the fine-tuned model's log-likelihood of
    every secret of the space after the format (``candidate_ll``, lexicographic order): what
    ``assert_canary_exposure_below`` ranks each canary's secret among. For a sampled space,
    ``candidate_ll`` holds the sampled secrets' (``canaries.sampled``) and ``secret_ll`` the canaries'."""

    canaries: LMCanarySet
    candidate_ll: np.ndarray
    seed: int
    seconds: float
    trained: bool
    data_id: str
    accountant_epsilon: float | None = None  # (no recipe: a DP claim is the team's own)
    secret_ll: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray:
        """Each canary's secret's log-likelihood after the format: higher, more likely planted (the
        one-run DP audit's score; every canary shares the format, so the scores are comparable)."""
        if self.secret_ll is not None:
            return np.asarray(self.secret_ll)
        return np.asarray(self.candidate_ll)[self.canaries.secret_index]

    @property
    def included(self) -> np.ndarray:
        """Which canaries the fine-tune trained on."""
        return self.canaries.included

    @property
    def description(self) -> str:
        return self.canaries.describe()

    @property
    def no_trace(self) -> str | None:
        """Why the canaries cannot have left a trace: a model that gives every secret the same
        likelihood (constant, or never updated from a uniform start)."""
        ll = np.asarray(self.candidate_ll)
        if np.ptp(ll) <= 1e-9 * max(1.0, float(np.abs(ll).max(initial=0.0))):
            return "the canaries left no trace: the model gives every secret the same likelihood"
        return None


def lm_canary_texts(how: Callable[..., Any], text: TextDataset, canaries: LMCanarySet) -> TextCanarySource:
    """The source of a canary run from a text audit's source: the same function, the planted texts."""
    return TextCanarySource(how, canaries.training_text(text), canaries=canaries)
