"""A language model's audit data: the audited texts (a :class:`~pytest_privacy.data.text.TextDataset`),
which of them the target fine-tuned on, and the reference fine-tunes' per-token log-likelihoods of
them. The same object the classifier helpers take (a :class:`~pytest_privacy.data.MembershipData`):
its ``x`` is the token ids, its labels are all 0 (a text has none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import AuditPlan, MembershipData
from .text import TextDataset

__all__ = ["TextMembershipData", "TextRecipeTrials", "TextReferences"]


@dataclass(frozen=True)
class TextReferences:
    """Reference fine-tunes' per-token log-likelihoods ``lp [M, N, T]`` of the audited texts (column 0,
    which nothing predicts, is 0) and which texts each fine-tuned on, ``keep [M, N]``."""

    lp: np.ndarray
    keep: np.ndarray
    seed: int | None = None

    def __post_init__(self) -> None:
        lp, keep = np.asarray(self.lp), np.asarray(self.keep)
        if lp.ndim != 3 or keep.dtype != np.bool_ or keep.shape != lp.shape[:2]:
            raise ValueError(
                f"text references need lp [M, N, T] and a bool keep [M, N], got lp {lp.shape} and keep {keep.dtype} {keep.shape}."
            )
        if not np.isfinite(lp).all():
            raise ValueError("the references' log-likelihoods contain NaN/inf: a reference fine-tune diverged; lower its lr.")
        object.__setattr__(self, "lp", lp)
        object.__setattr__(self, "keep", keep)

    @property
    def n_references(self) -> int:
        """Number of reference fine-tunes M."""
        return int(self.lp.shape[0])

    def subset(self, idx: np.ndarray) -> TextReferences:
        """The references on the texts at ``idx``."""
        return TextReferences(self.lp[:, idx], self.keep[:, idx], self.seed)


@dataclass(frozen=True)
class TextRecipeTrials:
    """Every fine-tune of a language model's audit scored as the target in turn (``audit="recipe"``):
    ``lp [K, N, T]`` each model's per-token log-likelihoods of the audited texts (model 0 is
    ``target_model``) and ``keep [K, N]`` which texts each fine-tuned on; each model's references are
    the others. The text counterpart of :class:`~pytest_privacy.data.RecipeTrials`."""

    lp: np.ndarray
    keep: np.ndarray

    @property
    def n_models(self) -> int:
        """Number of models K (each one a target in turn)."""
        return int(self.keep.shape[0])

    def references_without(self, k: int, references: TextReferences) -> TextReferences:
        """Model ``k``'s references: every other model."""
        others = np.arange(self.n_models) != k
        return TextReferences(self.lp[others], self.keep[others], references.seed)


class TextMembershipData(MembershipData):
    """Audited texts (``text``), ``is_member`` (which the target fine-tuned on), and optionally the
    reference fine-tunes (``references``, a :class:`TextReferences`) and the ``base`` model the
    fine-tunes started from (for ``ref_base``)."""

    def __init__(
        self, text: TextDataset, is_member: Any, references: TextReferences | None = None, *, base: Any = None,
        plan: AuditPlan | None = None,
    ) -> None:
        if not isinstance(text, TextDataset):
            raise TypeError(f"text must be a pytest_privacy.TextDataset, got {type(text).__name__}.")
        super().__init__(text.ids, np.zeros(len(text), dtype=np.int64), is_member, None, plan=plan)
        if references is not None:
            if not isinstance(references, TextReferences):
                raise TypeError(f"references must be TextReferences, got {type(references).__name__}.")
            if references.lp.shape[1:] != text.ids.shape:
                raise ValueError(
                    f"the references cover texts {references.lp.shape[1:]} but the audit has {text.ids.shape}: score "
                    "them on exactly these texts, in this order."
                )
        self.text = text
        self.references = references  # type: ignore[assignment]
        self.base = base

    def with_recipe_trials(self, model: Any) -> MembershipData:
        """The same audit as a recipe audit: ``model`` (the target, whose members ``is_member`` says)
        and every reference fine-tune each scored as the target in turn, pooled by the TPR gates
        (:func:`pytest_privacy.stats.pooled.pooled_gate`). The target's log-likelihoods are read here,
        once; the references' were read when they were trained."""
        from .likelihood import token_statistics

        refs = self.references
        if refs is None:
            raise ValueError("a recipe audit needs reference fine-tunes: they are the other targets.")
        lp = token_statistics(model, self.text.ids, self.text.mask).lp.astype(refs.lp.dtype, copy=False)
        trials = TextRecipeTrials(np.concatenate([lp[None], refs.lp]), np.concatenate([self.is_member[None], refs.keep]))
        return self.with_plan(trials=trials)

    def _subset(self, idx: np.ndarray) -> MembershipData:
        refs = None if self.references is None else self.references.subset(idx)
        t = self.recipe
        trials = None if t is None else TextRecipeTrials(t.lp[:, idx], t.keep[:, idx])
        return TextMembershipData(self.text.subset(idx), self.is_member[idx], refs, base=self.base, plan=AuditPlan(trials=trials))

    def _shuffled(self, seed: int) -> MembershipData:
        perm = np.random.default_rng(seed).permutation(len(self))
        t, refs = self.recipe, self.references
        if t is None:
            out = TextMembershipData(self.text, self.is_member[perm], refs, base=self.base)
        else:  # every model's membership by the same permutation, as for a classifier's recipe audit
            assert refs is not None
            refs = TextReferences(refs.lp, refs.keep[:, perm], refs.seed)
            trials = TextRecipeTrials(t.lp, t.keep[:, perm])
            out = TextMembershipData(self.text, self.is_member[perm], refs, base=self.base, plan=AuditPlan(trials=trials))
        out.data_id = self.data_id
        return out

    def __repr__(self) -> str:
        refs = 0 if self.references is None else self.references.n_references
        return f"TextMembershipData(n={len(self)}, members={self.n_members}, non_members={self.n_nonmembers}, references={refs})"
