"""The attack registry: attacks and the suites they belong to, and what ``--privacy-attacks`` selects.

An attack is registered once, with its suite; a suite's members are read from the registry, never
listed a second time, so a new attack (``register_attack``) is selected by its suite's marker and
name at once. The built-in attacks register themselves in :mod:`pytest_privacy.attacks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..strict import unknown_name_error
from .queries import LabelQuery

__all__ = [
    "ATTACKS",
    "SUITES",
    "Attack",
    "Selection",
    "expand_attacks",
    "get_attack",
    "register_attack",
    "register_suite",
    "suite_attacks",
]

# (target logits [N, A, C], labels [N], references, target logits on the population [Z, A, C] or None)
ScoreFn = Callable[..., tuple[np.ndarray, str]]


LabelScoreFn = Callable[[LabelQuery], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class Attack:
    """A registered attack: its ``suite`` (the marker and ``--privacy-attacks`` name that selects
    it), whether it needs reference models or population points, and its scoring function
    (``score`` from logits, or ``score_labels`` from a labels oracle)."""

    name: str
    suite: str
    needs_references: bool
    description: str
    score: ScoreFn | None = None
    score_labels: LabelScoreFn | None = None
    # (a TextQuery: the target and the audited texts of a language model) -> (scores, variant)
    score_text: Callable[[Any], tuple[np.ndarray, str]] | None = None
    needs_population: bool = False
    # score= also takes ``inputs=`` (the audit points' inputs): an attack that models the points themselves (QMIA)
    needs_inputs: bool = False
    # (references, labels, confidence) -> a check of the attack's own model of the scores, or None
    diagnose: Callable[..., Any] | None = None
    # a text attack that reads the next-token distribution's mean and spread (Min-K%++): reference
    # fine-tunes keep only log-likelihoods, so a recipe audit judges it on the target alone
    needs_spread: bool = False

    @property
    def label_only(self) -> bool:
        """Whether the attack needs only predicted labels."""
        return self.score_labels is not None

    @property
    def pools(self) -> bool:
        """Whether a recipe audit can score every model with it from what the audit kept (logits, or
        a language model's log-likelihoods); label-only and spread-reading attacks query the target."""
        return self.score is not None or (self.score_text is not None and not self.needs_spread)

    @property
    def text(self) -> bool:
        """Whether the attack audits a language model (its data a TextDataset's texts)."""
        return self.score_text is not None


# suite name -> what its marker means (``pytest --markers``)
SUITES: dict[str, str] = {}
# attack name -> Attack, in registration order (the order ``privacy_attack`` runs them)
ATTACKS: dict[str, Attack] = {}


def register_suite(name: str, description: str) -> None:
    """Register a suite: a marker ``@pytest.mark.<name>`` and a ``--privacy-attacks`` name."""
    if not name.isidentifier():
        raise ValueError(f"a suite name must be a Python identifier (it is a marker), got {name!r}.")
    if name in ATTACKS and ATTACKS[name].suite != name:
        raise ValueError(f"suite {name!r} would shadow the attack of that name.")
    SUITES[name] = description


def register_attack(attack: Attack, *, replace: bool = False) -> Attack:
    """Add ``attack`` to the registry: it can then be named in every helper's ``attack=``, is run by
    the ``privacy_attack`` fixture and selected by its suite's marker and ``--privacy-attacks``."""
    if not isinstance(attack, Attack):
        raise TypeError(f"register_attack takes a pytest_privacy.attacks.Attack, got {type(attack).__name__}.")
    if sum(f is not None for f in (attack.score, attack.score_labels, attack.score_text)) != 1:
        raise ValueError(
            f"attack {attack.name!r} needs exactly one of score= (logits), score_labels= (labels) or score_text= "
            "(a language model's texts)."
        )
    if attack.suite not in SUITES:
        raise ValueError(
            f"attack {attack.name!r} names suite {attack.suite!r}, which is not registered; "
            f"suites: {', '.join(SUITES)} (or register_suite() first)."
        )
    if attack.name in ATTACKS and not replace:
        raise ValueError(f"attack {attack.name!r} is already registered (pass replace=True to replace it).")
    if attack.name in SUITES and attack.name != attack.suite:
        # ``lira`` may be the lira suite's headline attack; as a selection the name means the suite.
        raise ValueError(f"attack {attack.name!r} would shadow the suite of that name.")
    ATTACKS[attack.name] = attack
    return attack


def suite_attacks(suite: str) -> tuple[str, ...]:
    """The attacks registered in ``suite``, in registration order."""
    return tuple(name for name, a in ATTACKS.items() if a.suite == suite)


def _unknown(kind: str, name: str, known: Iterable[str]) -> ValueError:
    return ValueError(unknown_name_error(kind, name, sorted(set(known))))


def get_attack(name: str) -> Attack:
    """Look up an attack by name; an unknown name lists the registered ones."""
    if not isinstance(name, str):
        raise TypeError(f"attack must be a name (str), got {type(name).__name__}.")
    try:
        return ATTACKS[name]
    except KeyError:
        raise _unknown("attack", name, ATTACKS) from None


def expand_attacks(names: str | Iterable[str]) -> list[str]:
    """Expand suite names and attack names into attack names, in order (a name that is both, such as
    ``lira``, means the suite)."""
    return Selection.parse(names).attacks


@dataclass(frozen=True)
class Selection:
    """What ``--privacy-attacks`` chose: the suites it named and every attack it selects (the named
    attacks and all attacks of the named suites).

    A test is selected when it belongs to a named suite or runs a selected attack
    (:meth:`selects`): ``--privacy-attacks=loss`` keeps a ``@pytest.mark.baseline`` test, and
    ``--privacy-attacks=label_only_gap`` keeps ``label_only`` tests.
    """

    suites: tuple[str, ...]
    attacks: list[str]

    @classmethod
    def parse(cls, names: str | Iterable[str]) -> Selection:
        """Read ``"lira,loss"`` or ``["lira", "loss"]``; an unknown name is an error with a did-you-mean."""
        items = names.split(",") if isinstance(names, str) else list(names)
        suites: list[str] = []
        attacks: list[str] = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            if item in SUITES:
                suites.append(item)
                expanded = list(suite_attacks(item))
            elif item in ATTACKS:
                expanded = [item]
            else:
                raise _unknown("attack or suite", item, [*SUITES, *ATTACKS])
            attacks += [a for a in expanded if a not in attacks]
        return cls(tuple(dict.fromkeys(suites)), attacks)

    def selects(self, suites: Iterable[str], attacks: Iterable[str]) -> bool:
        """Whether a test of ``suites`` that runs ``attacks`` is selected."""
        return bool(set(suites) & set(self.suites)) or bool(set(attacks) & set(self.attacks))
