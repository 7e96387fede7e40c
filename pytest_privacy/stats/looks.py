"""As many reference models as the verdict needs (``n_references="auto"``).

A gate starts with 4 references and, only while its verdict is INCONCLUSIVE, looks again with 8, 16,
32 and 64, training only the new ones (references are cached and the split's keep matrix of M
references is a prefix of that of 2M). The error ``1 - confidence`` is spent over the five planned
looks in fixed shares, :data:`AUTO_SPENDING` (a weighted Bonferroni split): look ``k`` is judged at
``1 - (1 - confidence) * share[k]``, so a model at the limit is falsely FAILed (or falsely PASSed) at
some look with probability at most the sum of the shares times the error, ``1 - confidence``, however
the looks depend on each other (``tests/statistical/test_adaptive_references.py`` measures it).

Each look picks its own default attack (:func:`~pytest_privacy.attacks.default.default_attack`: RMIA's
ratio at 4 references, LiRA from 8); the split holds whatever each look runs.

Why these shares: 4 and 8 references make a weak attack, so the looks there decide only clear cases
and need little of the error; 16 (the ``ci`` count) gets 40%, so that a borderline leak the ``ci``
profile proves is still proven at the look with 16 (the memorising digits example: p = 0.011, proven at
16 with 0.4 x 5% = 2%, not with an equal split's 1%). The price is a stricter level per look; the gain
is that a clear verdict stops at 4 or 8 references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data import MembershipData

__all__ = ["AUTO_SCHEDULE", "AUTO_SPENDING", "FIXED_LOOK", "AdaptiveReferences", "look_confidence"]

AUTO_SCHEDULE = (4, 8, 16, 32, 64)  # LiRA's gain flattens past ~64 (Carlini et al. 2022, Fig. 9)
AUTO_SPENDING = (0.1, 0.1, 0.4, 0.2, 0.2)  # each look's share of the error (see the module docstring)
FIXED_LOOK = 16  # what helpers that cannot be INCONCLUSIVE use under "auto": the ci profile's count


def look_confidence(confidence: float, share: float) -> float:
    """The confidence a look with ``share`` of the error is judged at: all looks together (shares
    summing to 1) err at most ``1 - confidence`` (a weighted Bonferroni split)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"a look's share of the error is in (0, 1], got {share}")
    return 1.0 - (1.0 - confidence) * share


class AdaptiveReferences:
    """The same audit with more references on demand: ``at(m)`` is the audit with ``m`` references
    (built once, by ``build``), for ``m`` in ``schedule``."""

    def __init__(
        self, build: Callable[[int], MembershipData], schedule: tuple[int, ...] = AUTO_SCHEDULE,
        spending: tuple[float, ...] = AUTO_SPENDING,
    ) -> None:
        if list(schedule) != sorted(set(schedule)) or any(m < 2 or m % 2 for m in schedule):
            raise ValueError(f"a schedule of references is increasing and even, got {schedule}")
        if len(spending) != len(schedule) or abs(sum(spending) - 1.0) > 1e-9 or min(spending) <= 0:
            raise ValueError(f"the error's shares are positive, one per look, and sum to 1: got {spending} for {schedule}")
        self.schedule = tuple(schedule)
        self.spending = tuple(spending)
        self._build = build
        self._built: dict[int, MembershipData] = {}

    def at(self, m: int) -> MembershipData:
        """The audit with ``m`` references (trained now if never asked for)."""
        if m not in self._built:
            self._built[m] = self._build(m).with_plan(looks=self)
        return self._built[m]

    def looks(self) -> list[tuple[int, float, Callable[[], MembershipData]]]:
        """``(m, share of the error, audit)`` for every planned look, in order; each audit is built
        when called."""
        return [(m, w, lambda m=m: self.at(m)) for m, w in zip(self.schedule, self.spending)]

    def derived(self, derive: Callable[[MembershipData], MembershipData]) -> AdaptiveReferences:
        """The same plan over derived data (``derive`` applied to every look's audit, e.g. a subset or
        shuffled membership): deriving data never turns an ``auto`` audit into a fixed one."""
        return AdaptiveReferences(lambda m: derive(self.at(m)), self.schedule, self.spending)

    def fixed(self) -> MembershipData:
        """The audit for helpers whose verdict cannot be INCONCLUSIVE: ``FIXED_LOOK`` references."""
        return self.at(FIXED_LOOK if FIXED_LOOK in self.schedule else self.schedule[-1])
