"""Attack registry: a name maps to a function from model outputs to membership scores.

Score attacks take the target's logits on the audit queries ``[N, A, C]``, the labels ``[N]`` and
the reference models (or None) and return ``(scores [N], variant)``, higher = more likely member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .baselines import BASELINES
from .lira import lira_scores

if TYPE_CHECKING:
    from ..data import References

__all__ = ["ATTACKS", "SUITES", "Attack", "get_attack", "expand_attacks"]

# Below this many references per-example variances are too noisy (Carlini et al. 2022, Fig. 9).
FIXED_VARIANCE_BELOW = 64

ScoreFn = Callable[[np.ndarray, np.ndarray, "References | None"], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class Attack:
    """A registered attack: its ``suite`` (for markers and ``--privacy-attacks``), whether it needs
    reference models, and the scoring function."""

    name: str
    suite: str
    needs_references: bool
    score: ScoreFn
    description: str


def _lira(variant: str, fixed: bool | None) -> ScoreFn:
    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None) -> tuple[np.ndarray, str]:
        assert refs is not None
        use_fixed = refs.n_references < FIXED_VARIANCE_BELOW if fixed is None else fixed
        # Offline also needs keep: it fits the OUT references of each point only.
        s = lira_scores(logits, refs.logits, labels, refs.keep, variant=variant, fixed_variance=use_fixed)
        return s, f"{variant}, {'fixed' if use_fixed else 'per-example'} variance"

    return score


def _baseline(name: str) -> ScoreFn:
    fn = BASELINES[name]

    def score(logits: np.ndarray, labels: np.ndarray, refs: References | None) -> tuple[np.ndarray, str]:
        return fn(logits, labels), "population threshold"

    return score


def _global(logits: np.ndarray, labels: np.ndarray, refs: References | None) -> tuple[np.ndarray, str]:
    return lira_scores(logits, None, labels, variant="global"), "global"


ATTACKS: dict[str, Attack] = {
    "lira": Attack("lira", "lira", True, _lira("online", None),
                   "LiRA online; fixed variance below 64 references"),
    "lira_offline": Attack("lira_offline", "lira", True, _lira("offline", None),
                           "LiRA offline (OUT references only); fixed variance below 64 references"),
    "lira_online_fixed": Attack("lira_online_fixed", "lira", True, _lira("online", True),
                                "LiRA online, one shared variance"),
    "lira_online_per_example": Attack("lira_online_per_example", "lira", True, _lira("online", False),
                                      "LiRA online, per-example variances"),
    "lira_offline_fixed": Attack("lira_offline_fixed", "lira", True, _lira("offline", True),
                                 "LiRA offline, one shared variance"),
    "lira_offline_per_example": Attack("lira_offline_per_example", "lira", True, _lira("offline", False),
                                       "LiRA offline, per-example variances"),
    "lira_global": Attack("lira_global", "baseline", False, _global,
                          "LiRA's global threshold on the logit-scaled confidence"),
    **{
        name: Attack(name, "baseline", False, _baseline(name), fn.__doc__.splitlines()[0])  # type: ignore[union-attr]
        for name, fn in BASELINES.items()
    },
}

# What a suite name runs when it selects attacks (``--privacy-attacks``, the privacy_attack fixture).
SUITES: dict[str, tuple[str, ...]] = {
    "lira": ("lira", "lira_offline"),
    "baseline": tuple(BASELINES),
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
