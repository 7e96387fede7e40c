"""Attack registry: a name maps to a function from what the model reveals to membership scores.

Two kinds of attack, scores always ``[N]`` with higher = more likely member:

- score attacks (``score``) read the target's logits on the audit queries ``[N, A, C]`` with the
  labels ``[N]`` and the references (or None);
- label-only attacks (``score_labels``) may only ask a counted labels oracle (a ``LabelQuery``).

Each returns ``(scores, variant)``; ``variant`` says which flavour ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .baselines import BASELINES
from .lira import lira_scores

if TYPE_CHECKING:
    from ..data import References
    from .label_only import QueryCounter

__all__ = ["ATTACKS", "SUITES", "Attack", "LabelQuery", "expand_attacks", "get_attack"]

# Below this many references per-example variances are too noisy (Carlini et al. 2022, Fig. 9).
FIXED_VARIANCE_BELOW = 64

# (target logits [N, A, C], labels [N], references, target logits on the population [Z, A, C] or None)
ScoreFn = Callable[..., tuple[np.ndarray, str]]


@dataclass(frozen=True)
class LabelQuery:
    """What a label-only attack may use: a labels oracle that counts queries, the audit points, and
    (for white-box variants and trained attacks) the raw model and the references."""

    oracle: QueryCounter
    model: Any
    x: np.ndarray
    y: np.ndarray
    references: References | None
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)


LabelScoreFn = Callable[[LabelQuery], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class Attack:
    """A registered attack: its ``suite`` (for markers and ``--privacy-attacks``), whether it needs
    reference models, and its scoring function (``score`` from logits or ``score_labels``)."""

    name: str
    suite: str
    needs_references: bool
    description: str
    score: ScoreFn | None = None
    score_labels: LabelScoreFn | None = None
    needs_population: bool = False

    @property
    def label_only(self) -> bool:
        """Whether the attack needs only predicted labels."""
        return self.score_labels is not None


def _lira(variant: str, fixed: bool | None) -> ScoreFn:
    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
        assert refs is not None
        use_fixed = refs.n_references < FIXED_VARIANCE_BELOW if fixed is None else fixed
        # Offline also needs keep: it fits the OUT references of each point only.
        s = lira_scores(logits, refs.logits, labels, refs.keep, variant=variant, fixed_variance=use_fixed)
        return s, f"{variant}, {'fixed' if use_fixed else 'per-example'} variance"

    return score


def _rmia(variant: str) -> ScoreFn:
    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop_logits: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        from .rmia import rmia_scores

        assert refs is not None and refs.population is not None and pop_logits is not None
        pop = refs.population
        s = rmia_scores(
            logits, refs.logits, labels, refs.keep, population_target_logits=pop_logits,
            population_reference_logits=pop.logits, population_labels=pop.y, variant=variant,
        )
        return s, f"{variant}, {len(pop.y)} population points"

    return score


def _baseline(name: str) -> ScoreFn:
    fn = BASELINES[name]

    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
        return fn(logits, labels), "population threshold"

    return score


def _global(logits: np.ndarray, labels: np.ndarray, refs: References | None, pop: Any = None) -> tuple[np.ndarray, str]:
    return lira_scores(logits, None, labels, variant="global"), "global"


def _gap(q: LabelQuery) -> tuple[np.ndarray, str]:
    from .label_only import gap_scores

    return gap_scores(q.oracle, q.x, q.y), "correctness"


def _augmentation(q: LabelQuery) -> tuple[np.ndarray, str]:
    from .label_only import augmentation_scores

    d, r = int(q.options.get("d", 1)), int(q.options.get("r", 0))
    return augmentation_scores(q.oracle, q.x, q.y, d=d, r=r), f"translations d={d}, rotations r={r}"


def _augmentation_trained(q: LabelQuery) -> tuple[np.ndarray, str]:
    from .label_only import augmentation_bits, augmented_views, fit_bit_attack

    refs = q.references
    if refs is None or refs.predict is None:
        raise ValueError(
            "label_only_augmentation_trained needs reference models it can query: use the "
            "membership_data fixture, or References.from_ensemble(...)."
        )
    d, r = int(q.options.get("d", 1)), int(q.options.get("r", 0))
    # The references' bits on the same copies: [M, N, Q]; no target membership is used to fit.
    views = augmented_views(q.x, d=d, r=r)  # the target is queried on the same copies
    ref_bits = np.stack([refs.predict(v).argmax(-1) == q.y for v in views], axis=2)
    attack = fit_bit_attack(ref_bits, refs.keep, q.y)
    bits = augmentation_bits(q.oracle, q.x, q.y, views=views)
    return attack.score(bits, q.y), f"logistic on {bits.shape[1]} bits, {refs.n_references} references"


def _noise(q: LabelQuery) -> tuple[np.ndarray, str]:
    from .label_only import noise_scores

    sigma, k = float(q.options.get("sigma", 0.025)), int(q.options.get("k", 100))
    return noise_scores(q.oracle, q.x, q.y, sigma=sigma, k=k, seed=q.seed), f"sigma={sigma:g} of range, k={k}"


def _boundary(q: LabelQuery) -> tuple[np.ndarray, str]:
    from ..querying import is_module
    from .label_only import boundary_scores_blackbox, boundary_scores_whitebox

    if is_module(q.model) and not q.options.get("black_box", False):
        return boundary_scores_whitebox(q.model, q.x, q.y), "white-box gradient search"
    budget = int(q.options.get("max_queries", 1000))
    return (
        boundary_scores_blackbox(q.oracle, q.x, q.y, max_queries=budget, seed=q.seed),
        f"black-box HopSkipJump, <= {budget} queries per point",
    )


ATTACKS: dict[str, Attack] = {
    "lira": Attack("lira", "lira", True, "LiRA online; fixed variance below 64 references", _lira("online", None)),
    "lira_offline": Attack(
        "lira_offline", "lira", True, "LiRA offline (OUT references only); fixed variance below 64 references",
        _lira("offline", None),
    ),
    "lira_online_fixed": Attack("lira_online_fixed", "lira", True, "LiRA online, one shared variance", _lira("online", True)),
    "lira_online_per_example": Attack(
        "lira_online_per_example", "lira", True, "LiRA online, per-example variances", _lira("online", False)
    ),
    "lira_offline_fixed": Attack("lira_offline_fixed", "lira", True, "LiRA offline, one shared variance", _lira("offline", True)),
    "lira_offline_per_example": Attack(
        "lira_offline_per_example", "lira", True, "LiRA offline, per-example variances", _lira("offline", False)
    ),
    "rmia": Attack(
        "rmia", "rmia", True, "RMIA offline (Zarifzadeh et al. 2024): likelihood ratio against population points",
        _rmia("offline"), needs_population=True,
    ),
    "rmia_online": Attack(
        "rmia_online", "rmia", True, "RMIA online: IN and OUT references", _rmia("online"), needs_population=True
    ),
    "lira_global": Attack("lira_global", "baseline", False, "LiRA's global threshold on the logit-scaled confidence", _global),
    **{
        name: Attack(name, "baseline", False, fn.__doc__.splitlines()[0], _baseline(name))  # type: ignore[union-attr]
        for name, fn in BASELINES.items()
    },
    "label_only_gap": Attack(
        "label_only_gap", "label_only", False, "member iff correctly classified (the baseline to beat)",
        score_labels=_gap,
    ),
    "label_only_augmentation": Attack(
        "label_only_augmentation", "label_only", False,
        "fraction of translated (and rotated) copies classified correctly", score_labels=_augmentation,
    ),
    "label_only_augmentation_trained": Attack(
        "label_only_augmentation_trained", "label_only", True,
        "per-class logistic model on augmentation bits, fit on the references' IN/OUT points",
        score_labels=_augmentation_trained,
    ),
    "label_only_noise": Attack(
        "label_only_noise", "label_only", False, "fraction of Gaussian-noised copies still correct",
        score_labels=_noise,
    ),
    "label_only_boundary": Attack(
        "label_only_boundary", "label_only", False,
        "distance to the decision boundary: gradient search for torch modules, HopSkipJump otherwise",
        score_labels=_boundary,
    ),
}

# What a suite name runs when it selects attacks (``--privacy-attacks``, the privacy_attack fixture).
SUITES: dict[str, tuple[str, ...]] = {
    "lira": ("lira", "lira_offline"),
    "rmia": ("rmia", "rmia_online"),
    "baseline": tuple(BASELINES),
    "label_only": ("label_only_gap", "label_only_augmentation", "label_only_noise", "label_only_boundary"),
    # Relative gates against the MMD baseline run LiRA themselves; the name only selects tests.
    "mmd_baseline": (),
}


def get_attack(name: str) -> Attack:
    """Look up an attack by name; an unknown name lists the registered ones."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; registered: {', '.join(sorted(ATTACKS))}.") from None


def expand_attacks(names: str | list[str]) -> list[str]:
    """Expand suite names (see ``SUITES``) and attack names into attack names, in order.

    A name that is both (``lira``) means the suite.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in SUITES:
            expanded = list(SUITES[item])
        elif item in ATTACKS:
            expanded = [item]
        else:
            raise ValueError(
                f"unknown attack or suite {item!r}; suites: {', '.join(SUITES)}; "
                f"attacks: {', '.join(sorted(ATTACKS))}."
            )
        out += [a for a in expanded if a not in out]
    return out
