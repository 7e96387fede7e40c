"""MembershipData: the audit points, who is a member, and the reference models' outputs on them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "AuditPlan", "Baseline", "MembershipData", "Population", "RecipeTrials", "References", "as_float32", "as_membership_data",
    "check_exact_in_float32", "check_inputs", "check_labels", "row_ids",
]


_HASHED_IN_FULL = 64 << 20  # bytes of inputs an audit id reads whole; larger inputs are sampled by row


@dataclass(frozen=True)
class Population:
    """Points no model trained on, with every reference's logits on them (RMIA's ``z``)."""

    x: np.ndarray
    y: np.ndarray
    logits: np.ndarray  # [M, Z, A, C]


@dataclass(frozen=True)
class References:
    """Reference (shadow) models' logits on the audit queries, and which point each trained on.

    ``logits [M, N, A, C]``: model m on query a of audit point n (A = original + augmentations,
    in the order of :func:`pytest_privacy.data.augmentations.make_queries`); ``keep [M, N]`` bool.
    The target is queried with the same ``augmentations``, as LiRA requires. ``predict``, when
    given, maps a batch ``[B, ...]`` to every reference's logits ``[M, B, C]``: attacks that must
    query the references on new inputs (the trained label-only attack) need it.
    """

    logits: np.ndarray
    keep: np.ndarray
    augmentations: tuple[str, ...] = ()
    seed: int | None = None
    predict: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    population: Population | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        logits = np.asarray(self.logits)
        if logits.ndim == 3:
            logits = logits[:, :, None, :]
        if logits.ndim != 4:
            raise ValueError(f"references.logits must be [M, N, A, C], got shape {logits.shape}.")
        if not np.isfinite(logits).all():
            raise ValueError("references.logits contain NaN/inf: a reference model diverged; retrain it with a lower lr.")
        keep = np.asarray(self.keep)
        if keep.dtype != np.bool_ or keep.shape != logits.shape[:2]:
            raise ValueError(
                f"references.keep must be bool [M, N] = {list(logits.shape[:2])}, got {keep.dtype} {list(keep.shape)}."
            )
        object.__setattr__(self, "logits", logits)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "augmentations", tuple(self.augmentations))

    @property
    def n_references(self) -> int:
        """Number of reference models M."""
        return int(self.logits.shape[0])

    @classmethod
    def from_ensemble(cls, ensemble: Any, x: np.ndarray, *, models: Any = None) -> References:
        """Query a trained :class:`~pytest_privacy.engine.ensemble.Ensemble` on ``x``."""
        idx = list(range(len(ensemble))) if models is None else list(models)
        return cls(
            logits=ensemble.logits(x, models=idx),
            keep=ensemble.keep[idx],
            augmentations=tuple(ensemble.recipe.augmentations),
            seed=getattr(ensemble, "seed", None),
            predict=ensemble.predictor(idx),
        )


@dataclass(frozen=True)
class RecipeTrials:
    """Every model of an audit scored as the target in turn (``audit="recipe"``): the recipe is
    audited, not one draw of it. Model 0 is ``target_model``; each model's references are the others.

    ``logits [K, N, A, C]`` every model on the audit queries, ``keep [K, N]`` which point each trained
    on, ``population_logits [K, Z, A, C]`` (or None) every model on RMIA's population points.
    """

    logits: np.ndarray
    keep: np.ndarray
    population_logits: np.ndarray | None = None

    @property
    def n_models(self) -> int:
        """Number of models K (each one a target in turn)."""
        return int(self.keep.shape[0])

    def references_without(self, k: int, references: References) -> References:
        """Model ``k``'s references: every other model (``references`` gives augmentations, seed and
        population points)."""
        others = np.arange(self.n_models) != k
        population = references.population
        if population is not None and self.population_logits is not None:
            population = Population(population.x, population.y, self.population_logits[others])
        return References(
            self.logits[others], self.keep[others], references.augmentations, references.seed, population=population
        )


@dataclass(frozen=True)
class AuditPlan:
    """How an audit is judged, beside its data and as immutable as it: ``looks`` (an
    :class:`~pytest_privacy.stats.looks.AdaptiveReferences`: more references on demand, for
    ``n_references="auto"``; None: the references at hand) and ``trials`` (a :class:`RecipeTrials`, or
    a language model's :class:`~pytest_privacy.data.text_membership.TextRecipeTrials`: every model of
    the recipe the target in turn, for ``audit="recipe"``; None: the one target).
    Data derived from an audit (``subset``, ``shuffled_membership``) keeps its plan."""

    looks: Any = None
    trials: Any = None  # RecipeTrials, TextRecipeTrials (text_membership builds on this module) or None


class MembershipData:
    """Audit points ``x``, labels ``y``, membership flags, and optionally reference models.

    Validated on construction: every problem raises a ``ValueError``/``TypeError`` naming the field
    and the fix. ``references`` is a :class:`References` or a trained ``Ensemble`` (queried on
    ``x`` here). Identical inputs flagged both member and non-member are rejected: such a point
    makes any attack look better or worse than it is.
    """

    def __init__(self, x: Any, y: Any, is_member: Any, references: Any = None, *, plan: AuditPlan | None = None) -> None:
        self.x = check_inputs(x)
        n = self.x.shape[0]
        self.y = check_labels(y, n)
        self.is_member = _check_membership(is_member, n)
        _check_no_overlap(self.x, self.is_member)
        if references is not None and not isinstance(references, References):
            if not hasattr(references, "logits") or not hasattr(references, "keep"):
                raise TypeError(
                    "references must be pytest_privacy.References or a trained Ensemble, got "
                    f"{type(references).__name__}."
                )
            references = References.from_ensemble(references, self.x)
        if references is not None and references.logits.shape[1] != n:
            raise ValueError(
                f"references cover {references.logits.shape[1]} points but x has {n}; compute "
                "their logits on exactly these audit points, in this order."
            )
        if references is not None and int(self.y.max()) >= references.logits.shape[-1]:
            raise ValueError(
                f"label {int(self.y.max())} is out of range for reference models with "
                f"{references.logits.shape[-1]} classes."
            )
        self.references: References | None = references
        self._plan = plan if plan is not None else AuditPlan()

    @property
    def plan(self) -> AuditPlan:
        """How this audit is judged (:class:`AuditPlan`); read-only: :meth:`with_plan` derives a new one."""
        return self._plan

    @property
    def adaptive(self) -> Any:
        """The plan's looks at more references (``n_references="auto"``), or None."""
        return self._plan.looks

    @property
    def recipe(self) -> Any:
        """The plan's recipe trials (``audit="recipe"``), or None."""
        return self._plan.trials

    def with_plan(self, **changes: Any) -> MembershipData:
        """The same data judged by this plan with ``changes`` (``looks=``, ``trials=``)."""
        import copy

        out = copy.copy(self)
        out._plan = replace(self._plan, **changes)
        return out

    def with_recipe_trials(self, model: Any) -> MembershipData:
        """The same audit as a recipe audit: ``model`` (the target, whose members ``is_member`` says)
        and every reference each scored as the target in turn, pooled by the TPR gates
        (:func:`pytest_privacy.stats.pooled.pooled_gate`)."""
        from .querying import query_logits

        refs = self.references
        if refs is None:
            raise ValueError("a recipe audit needs reference models: they are the other targets.")
        target = query_logits(model, self.x, refs.augmentations)[None]
        population = None
        if refs.population is not None:
            pop_target = query_logits(model, refs.population.x, refs.augmentations)[None]
            population = np.concatenate([pop_target, refs.population.logits])
        trials = RecipeTrials(
            np.concatenate([target, refs.logits]), np.concatenate([self.is_member[None], refs.keep]), population
        )
        return self.with_plan(trials=trials)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @functools.cached_property
    def audit_id(self) -> str:
        """What makes two audits pairable across runs: the same points (inputs and labels, in
        order) with the same membership. Computed once per audit (every gate's result carries it);
        inputs over 64 MiB are hashed through 4,096 evenly spaced rows plus their shape."""
        import hashlib

        h = hashlib.sha256(f"{self.x.shape}|{self.x.dtype}".encode())
        rows = self.x if self.x.nbytes <= _HASHED_IN_FULL else self.x[np.linspace(0, len(self.x) - 1, 4096).astype(np.int64)]
        h.update(np.ascontiguousarray(rows).tobytes())
        h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        h.update(np.packbits(self.is_member).tobytes())
        return h.hexdigest()[:24]

    @functools.cached_property
    def data_id(self) -> str:
        """The audited data's identity, whatever the split: a hash of the audit points (inputs and
        labels) as a multiset, free of their order and membership, so the same data audited with
        another seed has the same id and other data another. The plugin's audits set it to the whole
        data set's digest instead (their audit points change with the seed when a pool is held out).
        Stored runs of other data are not compared (``report.compare``)."""
        import hashlib

        # Each record (its input's bytes, then its label) as one fixed-width byte string, sorted in C:
        # the multiset's canonical order, without a Python loop over the points.
        rows = np.ascontiguousarray(self.x).reshape(len(self.x), -1).view(np.uint8).reshape(len(self.x), -1)
        labels = np.ascontiguousarray(self.y, dtype="<i8").view(np.uint8).reshape(len(self.y), -1)
        records = np.ascontiguousarray(np.concatenate([rows, labels], axis=1))
        ordered = np.sort(records.view(np.dtype((np.void, records.shape[1]))).ravel())
        h = hashlib.sha256(f"{self.x.shape[1:]}|{self.x.dtype}".encode())
        h.update(ordered.tobytes())
        return h.hexdigest()[:24]

    @property
    def n_members(self) -> int:
        """Number of members."""
        return int(self.is_member.sum())

    @property
    def n_nonmembers(self) -> int:
        """Number of non-members."""
        return len(self) - self.n_members

    def subset(self, indices: Any) -> MembershipData:
        """The same audit restricted to ``indices`` (references, a recipe audit's trials and an
        ``auto`` audit's later looks included: deriving data keeps the audit's plan)."""
        idx = np.asarray(indices)
        return self._derive(lambda d: d._subset(idx))

    def shuffled_membership(self, seed: int) -> MembershipData:
        """The same data with ``is_member`` randomly permuted: labels no model ever saw.

        A sound attack must not find a leak here (the sanity check behind every gate). The plan is
        kept: an ``auto`` audit still looks again on shuffled data, and a recipe audit permutes every
        model's membership by the same permutation (each model in turn the target, none trained on
        the labels it is judged by).
        """
        return self._derive(lambda d: d._shuffled(seed))

    def _derive(self, derive: Callable[[MembershipData], MembershipData]) -> MembershipData:
        """``derive`` applied to this audit, its plan (``recipe`` trials, ``adaptive`` looks) kept."""
        if self.adaptive is not None:
            current = next(m for m in self.adaptive.schedule if self.adaptive.at(m) is self)
            return self.adaptive.derived(derive).at(current)
        return derive(self)

    def _subset(self, idx: np.ndarray) -> MembershipData:
        refs = self.references
        if refs is not None:
            refs = References(
                refs.logits[:, idx], refs.keep[:, idx], refs.augmentations, refs.seed, refs.predict, refs.population
            )
        t = self.recipe
        trials = None if t is None else RecipeTrials(t.logits[:, idx], t.keep[:, idx], t.population_logits)
        return MembershipData(self.x[idx], self.y[idx], self.is_member[idx], refs, plan=AuditPlan(trials=trials))

    def _shuffled(self, seed: int) -> MembershipData:
        rng = np.random.default_rng(seed)
        if self.recipe is None:
            out = MembershipData(self.x, self.y, rng.permutation(self.is_member), self.references)
        else:
            perm = rng.permutation(len(self))
            t, refs = self.recipe, self.references
            assert refs is not None
            refs = References(refs.logits, refs.keep[:, perm], refs.augmentations, refs.seed, refs.predict, refs.population)
            trials = RecipeTrials(t.logits, t.keep[:, perm], t.population_logits)
            out = MembershipData(self.x, self.y, self.is_member[perm], refs, plan=AuditPlan(trials=trials))
        out.data_id = self.data_id
        return out

    def __repr__(self) -> str:
        refs = self.references.n_references if self.references is not None else 0
        return (
            f"MembershipData(n={len(self)}, members={self.n_members}, "
            f"non_members={self.n_nonmembers}, references={refs})"
        )


def check_inputs(x: Any) -> np.ndarray:
    """``x [N, *example_shape]`` as finite float32, or as int64 when it holds integers (token ids,
    categorical codes: kept integer end to end, never rounded through float32), or an error that
    names the problem."""
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"x must be [N, ...] with one row per audit point, got shape {arr.shape}.")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"x must be a real numeric array, got dtype {arr.dtype}; convert booleans with x.astype(np.int64).")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError("x holds uint64 values above 2**63 - 1, which int64 cannot hold; map them to smaller ids.")
        return arr.astype(np.int64, copy=False)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[:5].tolist()
        raise ValueError(f"x contains NaN/inf (rows {bad}...); clean or impute these points first.")
    return arr


_EXACT_IN_FLOAT32 = 2**24  # every integer up to this magnitude has an exact float32


def as_float32(x: np.ndarray, *, what: str = "the inputs") -> np.ndarray:
    """``x`` as float32 for a model that computes in floats (the built-in recipes): floats as they
    are, integers only when every value is exact in float32 (``|v| <= 2**24``); larger integers
    (ids) are an error, never silently rounded (123456789 would become 123456792)."""
    if x.dtype.kind == "f":
        return x if x.dtype == np.float32 else np.asarray(x, dtype=np.float32)
    arr = np.asarray(x)
    check_exact_in_float32(arr, what=what)
    return arr.astype(np.float32)


def check_exact_in_float32(x: np.ndarray, *, what: str = "the inputs") -> None:
    """A ValueError when ``x`` holds integers that float32 cannot hold exactly (``|v| > 2**24``)."""
    if x.dtype.kind in "iu" and x.size and int(np.abs(x).max()) > _EXACT_IN_FLOAT32:
        raise ValueError(
            f"{what} hold integers up to {int(np.abs(x).max()):,}, beyond 2**24 = 16,777,216, which float32 would "
            "round (the built-in recipes compute in float32): use a training function (privacy_train_fn), whose "
            "model receives them as int64, or map the values to smaller ids."
        )


def check_labels(y: Any, n: int) -> np.ndarray:
    """``y [n]`` as non-negative int64 class labels, or an error that names the problem."""
    arr = np.asarray(y)
    if n == 0:
        raise ValueError("the data set is empty: x has no rows; an audit needs points to train and test on.")
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one label per row of x; got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"y must hold integer class labels, got dtype {arr.dtype}; convert with "
            "y.astype(int) if they are whole numbers, or encode them (sklearn LabelEncoder)."
        )
    if arr.min() < 0:
        raise ValueError(f"y contains negative label {int(arr.min())}; labels must be 0..C-1.")
    return arr.astype(np.int64, copy=False)


def _check_membership(is_member: Any, n: int) -> np.ndarray:
    arr = np.asarray(is_member)
    if arr.shape != (n,):
        raise ValueError(f"is_member must have shape ({n},), one flag per row of x; got {arr.shape}.")
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"is_member must be boolean or 0/1, got values {np.unique(arr)[:5].tolist()}.")
        arr = arr.astype(bool)
    k = int(arr.sum())
    if k == 0 or k == n:
        raise ValueError(
            f"is_member has {k} members and {n - k} non-members: a membership audit needs both "
            "(add held-out points the model never trained on)."
        )
    return arr


def row_ids(x: np.ndarray) -> np.ndarray:
    """An integer per row of ``x``, equal for rows with identical inputs (and only for those)."""
    rows = np.ascontiguousarray(x.reshape(len(x), -1))
    _, inverse = np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))), return_inverse=True)
    return inverse.ravel()


def _check_no_overlap(x: np.ndarray, is_member: np.ndarray) -> None:
    inverse = row_ids(x)
    in_member = np.zeros(inverse.max() + 1, dtype=bool)
    in_member[inverse[is_member]] = True
    clash = np.flatnonzero(in_member[inverse] & ~is_member)
    if clash.size:
        j = int(clash[0])
        i = int(np.flatnonzero((inverse == inverse[j]) & is_member)[0])
        raise ValueError(
            f"{clash.size} non-member points are identical to members (e.g. x[{j}] == x[{i}]): "
            "members overlap non-members. Deduplicate before splitting train/holdout."
        )


@dataclass(frozen=True)
class Baseline:
    """A yardstick model with its own audit: what :func:`assert_no_more_vulnerable_than` compares
    a release against.

    ``membership_data`` carries the baseline's own references (trained like it) and covers
    ``points``, the indices of the audit points it may be judged on: a defended model's validation
    pool is left out, since the model has seen it. ``description`` records how it was made.
    """

    model: Any
    membership_data: MembershipData
    points: np.ndarray
    description: str


def as_membership_data(data: Any) -> MembershipData:
    """``data`` itself when it is a :class:`MembershipData`; else a TypeError that says how to build one."""
    if not isinstance(data, MembershipData):
        raise TypeError(
            f"data must be a pytest_privacy.MembershipData, got {type(data).__name__}; build one "
            "with MembershipData(x, y, is_member, references=...) or use the membership_data fixture."
        )
    return data
