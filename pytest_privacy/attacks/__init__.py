"""Attack registry: a name maps to a function from what the model reveals to membership scores.

Two kinds of attack, scores always ``[N]`` with higher = more likely member:

- score attacks (``score``) read the target's logits on the audit queries ``[N, A, C]`` with the
  labels ``[N]`` and the references (or None);
- label-only attacks (``score_labels``) may only ask a counted labels oracle (a ``LabelQuery``).

Each returns ``(scores, variant)``; ``variant`` says which flavour ran. The registry itself
(``register_attack``, suites, selection) is :mod:`pytest_privacy.attacks.registry`; this module
registers the built-in attacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .baselines import BASELINES
from .lira import lira_scores
from .registry import (
    ATTACKS,
    SUITES,
    Attack,
    LabelQuery,
    ScoreFn,
    Selection,
    expand_attacks,
    get_attack,
    register_attack,
    register_suite,
    suite_attacks,
)

if TYPE_CHECKING:
    from ..data import References

__all__ = [
    "ATTACKS", "SUITES", "Attack", "LabelQuery", "Selection", "expand_attacks", "get_attack", "register_attack",
    "register_suite", "suite_attacks",
]

# Below this many references per-example variances are too noisy (Carlini et al. 2022, Fig. 9).
FIXED_VARIANCE_BELOW = 64


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



register_suite("lira", "LiRA likelihood-ratio attacks (needs reference models)")
register_suite("rmia", "RMIA relative membership inference (needs --privacy-population)")
register_suite("baseline", "population baselines: loss, confidence, entropy, modified entropy, LiRA's global threshold")
register_suite("label_only", "label-only attacks (the model exposes only labels)")
# Relative gates against the MMD baseline run LiRA themselves: the suite has no attack of its own.
register_suite("mmd_baseline", "comparisons against the MMD+mixup-defended baseline")

_BUILT_IN = [
    Attack("lira", "lira", True, "LiRA online; fixed variance below 64 references", _lira("online", None)),
    Attack(
        "lira_offline", "lira", True, "LiRA offline (OUT references only); fixed variance below 64 references",
        _lira("offline", None),
    ),
    Attack("lira_online_fixed", "lira", True, "LiRA online, one shared variance", _lira("online", True)),
    Attack(
        "lira_online_per_example", "lira", True, "LiRA online, per-example variances", _lira("online", False)
    ),
    Attack("lira_offline_fixed", "lira", True, "LiRA offline, one shared variance", _lira("offline", True)),
    Attack(
        "lira_offline_per_example", "lira", True, "LiRA offline, per-example variances", _lira("offline", False)
    ),
    Attack(
        "rmia", "rmia", True, "RMIA offline (Zarifzadeh et al. 2024): likelihood ratio against population points",
        _rmia("offline"), needs_population=True,
    ),
    Attack(
        "rmia_online", "rmia", True, "RMIA online: IN and OUT references", _rmia("online"), needs_population=True
    ),
    Attack("lira_global", "baseline", False, "LiRA's global threshold on the logit-scaled confidence", _global),
    *[
        Attack(name, "baseline", False, fn.__doc__.splitlines()[0], _baseline(name))  # type: ignore[union-attr]
        for name, fn in BASELINES.items()
    ],
    Attack(
        "label_only_gap", "label_only", False, "member iff correctly classified (the baseline to beat)",
        score_labels=_gap,
    ),
    Attack(
        "label_only_augmentation", "label_only", False,
        "fraction of translated (and rotated) copies classified correctly", score_labels=_augmentation,
    ),
    Attack(
        "label_only_augmentation_trained", "label_only", True,
        "per-class logistic model on augmentation bits, fit on the references' IN/OUT points",
        score_labels=_augmentation_trained,
    ),
    Attack(
        "label_only_noise", "label_only", False, "fraction of Gaussian-noised copies still correct",
        score_labels=_noise,
    ),
    Attack(
        "label_only_boundary", "label_only", False,
        "distance to the decision boundary: gradient search for torch modules, HopSkipJump otherwise",
        score_labels=_boundary,
    ),
]
for _attack in _BUILT_IN:
    register_attack(_attack)
