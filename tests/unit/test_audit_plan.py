"""Deriving data keeps the audit's plan: ``subset`` and ``shuffled_membership`` of a recipe audit stay
a recipe audit, of an ``auto`` audit stay ``auto`` (each later look derived the same way). Before,
``membership_data.shuffled_membership(1)`` under ``audit="recipe"`` or ``n_references="auto"``
silently became a fixed single-model audit."""

import numpy as np

from pytest_privacy import MembershipData, References
from pytest_privacy.stats.looks import AdaptiveReferences

N, C = 200, 3
RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(N, 4)).astype(np.float32), RNG.integers(0, C, N)


def _audit(m: int) -> MembershipData:
    rng = np.random.default_rng(m)
    keep = np.zeros((m, N), bool)
    for n in range(N):
        keep[rng.permutation(m)[: m // 2], n] = True
    refs = References(rng.normal(size=(m, N, C)).astype(np.float32), keep)
    return MembershipData(X, Y, np.arange(N) % 2 == 0, refs)


def test_a_recipe_audit_shuffled_or_subset_is_still_a_recipe_audit():
    data = _audit(4).with_recipe_trials(lambda xb: np.zeros((len(xb), C)))
    shuffled = data.shuffled_membership(1)
    assert shuffled.recipe is not None and shuffled.recipe.n_models == 5
    # every model's membership permuted by one permutation: the target's row is the data's is_member
    np.testing.assert_array_equal(shuffled.recipe.keep[0], shuffled.is_member)
    assert not np.array_equal(shuffled.recipe.keep, data.recipe.keep)
    np.testing.assert_array_equal(np.sort(shuffled.recipe.keep.sum(0)), np.sort(data.recipe.keep.sum(0)))
    sub = data.subset(np.arange(50))
    assert sub.recipe is not None and sub.recipe.keep.shape == (5, 50) and len(sub) == 50


def test_an_auto_audit_shuffled_still_looks_again_on_shuffled_data():
    plan = AdaptiveReferences(_audit)
    data = plan.at(4)
    shuffled = data.shuffled_membership(1)
    assert shuffled.adaptive is not None and shuffled.references.n_references == 4
    later = shuffled.adaptive.at(16)
    assert later.references.n_references == 16
    np.testing.assert_array_equal(later.is_member, np.random.default_rng(1).permutation(plan.at(16).is_member))
    assert data.subset(np.arange(10)).adaptive.at(8).x.shape[0] == 10


def test_auto_stops_when_more_references_cannot_refine_a_coarse_score():
    """RMIA's score is a share of its population points: with 20 of them it lives on a 1/20 grid and
    can never reach FPR 1e-3, however many references train. The looks once went on to 64 references
    (4, 8, 16, 32, 64, all INCONCLUSIVE); now they stop at the first, saying why."""
    import warnings

    import pytest

    from pytest_privacy import (
        Population,
        PrivacyInconclusiveWarning,
        assert_tpr_at_fpr_below,
    )

    rng = np.random.default_rng(3)
    pop_x, pop_y = rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, C, 20)
    w = rng.normal(size=(4, C))
    built = []

    def with_population(m: int) -> MembershipData:
        built.append(m)
        data = _audit(m)
        refs = data.references
        population = Population(pop_x, pop_y, rng.normal(size=(m, 20, 1, C)))
        refs = References(refs.logits, refs.keep, population=population)
        return MembershipData(X, Y, data.is_member, refs)

    model = lambda xb: np.asarray(xb, dtype=np.float64) @ w  # noqa: E731
    data = AdaptiveReferences(with_population).at(4)
    with pytest.warns(PrivacyInconclusiveWarning):
        r = assert_tpr_at_fpr_below(model, data, fpr=1e-3, max_tpr=0.5, attack="rmia", on_inconclusive="warn")
    assert built == [4] and r.n_references == 4
    assert "more references cannot decide" in r.variant and "rmia's scores are too coarse" in r.variant
    # the default attack changes with the references (RMIA's ratio at 4, LiRA from 8): it looks again
    built.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyInconclusiveWarning)
        assert_tpr_at_fpr_below(model, AdaptiveReferences(with_population).at(4), fpr=1e-3, max_tpr=0.5,
                                on_inconclusive="warn")
    assert len(built) > 1


def test_the_plan_is_immutable_and_travels_beside_the_data():
    """The plan cannot be changed in place (nothing can drop it by assignment); with_plan derives new
    data judged another way and leaves the original as it was."""
    import dataclasses

    import pytest

    from pytest_privacy.data import AuditPlan

    data = _audit(4)
    assert data.plan == AuditPlan() and data.adaptive is None and data.recipe is None
    with pytest.raises(AttributeError):
        data.adaptive = AdaptiveReferences(_audit)
    with pytest.raises(AttributeError):
        data.recipe = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.plan.looks = None
    looks = AdaptiveReferences(_audit)
    planned = data.with_plan(looks=looks)
    assert planned.adaptive is looks and data.adaptive is None  # the original unchanged
    assert planned.x is data.x and planned.references is data.references
    first = looks.at(4)
    assert first.adaptive is looks and first.shuffled_membership(0).adaptive is not None
