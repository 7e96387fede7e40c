"""``audit="recipe"``: every model of an audit is the target in turn, the others its references, and
the TPR gates pool the trials with the cluster-aware bound (the statistics are tested in
``tests/statistical/test_pooled_gate.py``; here, the wiring)."""

import numpy as np
import pytest

from pytest_privacy import MembershipData, References, assert_tpr_at_fpr_below
from pytest_privacy.assertions import PrivacyInconclusiveWarning
from pytest_privacy.attacks.runner import attack_scores, recipe_scores
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.report.summary import format_summary
from pytest_privacy.stats.pooled import pooled_gate

K, N, C = 9, 400, 3


def _audit(leak: float = 2.0) -> tuple[object, MembershipData]:
    """K models whose correct-class logit is ``leak`` higher on their members; model 0 the target."""
    rng = np.random.default_rng(0)
    x = np.arange(N, dtype=np.float32)[:, None]  # the point's index: how the target finds its row
    y = rng.integers(0, C, N)
    keep = np.concatenate([rng.random((1, N)) < 0.5, balanced_keep(K - 1, N, 0)])
    logits = rng.normal(size=(K, N, 1, C))
    logits[np.arange(K)[:, None], np.arange(N)[None], 0, y[None]] += 1.0 + leak * keep

    def target(xb: np.ndarray) -> np.ndarray:
        return logits[0, np.asarray(xb)[:, 0].astype(int), 0]

    data = MembershipData(x, y, keep[0], References(logits[1:], keep[1:], seed=0))
    return target, data.with_recipe_trials(target)


def test_the_gate_pools_every_model_as_the_target_in_turn():
    target, data = _audit()
    assert data.recipe.n_models == K and np.array_equal(data.recipe.keep[0], data.is_member)
    r = assert_tpr_at_fpr_below(target, data, fpr=0.01, max_tpr=0.99)
    scores, member, _ = recipe_scores(data, "lira")
    assert scores.shape == (K, N) and np.array_equal(member, data.recipe.keep)
    g = pooled_gate(scores, member, fpr=0.01, max_tpr=0.99)
    assert (r.verdict, r.tpr_low, r.tpr_high) == (g.verdict, g.tpr_low, g.tpr_high)
    assert r.audit == "recipe" and r.n_models == K and r.n_members + r.n_nonmembers == K * N
    assert "audit: recipe of 9 models" in format_summary([r])[0] and r.epsilon_low is None
    # Row 0 is the target's own audit: the single-model LiRA scores against the other K - 1.
    np.testing.assert_allclose(scores[0], attack_scores(target, data, "lira").scores)
    # The most exposed records are distinct points.
    assert len({p.index for p in r.most_vulnerable}) == len(r.most_vulnerable) == 10


def test_a_leak_is_proven_from_the_pooled_trials():
    target, data = _audit(leak=3.0)
    with pytest.raises(AssertionError, match="privacy leak"):
        assert_tpr_at_fpr_below(target, data, fpr=0.01, max_tpr=0.05)


def test_families_pool_too_and_label_only_attacks_audit_the_target_alone():
    target, data = _audit()
    results = assert_tpr_at_fpr_below(target, data, fpr=[0.01, 0.05], max_tpr=0.99, attack=["lira", "lira_offline"])
    assert all(r.audit == "recipe" and r.n_models == K for r in results)
    with pytest.warns(PrivacyInconclusiveWarning, match="too coarse"):  # two score values: it cannot decide
        r = assert_tpr_at_fpr_below(target, data, fpr=0.1, max_tpr=0.99, attack="label_only_gap", on_inconclusive="warn")
    assert r.audit == "model" and r.n_members + r.n_nonmembers == N


def test_a_recipe_audit_needs_references():
    with pytest.raises(ValueError, match="needs reference models"):
        MembershipData(np.zeros((4, 1)) + np.arange(4)[:, None], np.zeros(4, int), np.arange(4) < 2).with_recipe_trials(
            lambda xb: np.zeros((len(xb), 2))
        )
