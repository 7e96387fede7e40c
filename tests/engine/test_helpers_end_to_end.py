"""assert_* helpers end to end on trained models: label-only attacks through the helpers, RMIA with a
held-out population."""

import numpy as np
import pytest
from helpers import noise_labels

from pytest_privacy import (
    MembershipData,
    PrivacyLeakError,
    TrainingRecipe,
    Verdict,
    assert_auc_below,
    assert_tpr_at_fpr_below,
    attack_scores,
    train_ensemble,
)
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.report import recording

MEMORISE = TrainingRecipe(hidden=(128,), epochs=40)


@pytest.fixture(scope="module")
def noise_setup():
    # Random labels can only be fit by memorising, so the target's members are exposed.
    return PrivacyTrainer().audit(MEMORISE, noise_labels(600, 20), n_references=8, seed=0)


@pytest.fixture(scope="module")
def stranger(noise_setup):
    """A model of the same recipe that never saw any audit point."""
    x, y = noise_labels(300, 20, seed=1)
    ens = train_ensemble(MEMORISE, x, y, np.ones((1, 300), bool), seed=9)
    return ens.model(0)


















@pytest.mark.slow
def test_label_only_attacks_through_the_helpers(noise_setup, stranger):
    data = noise_setup.membership_data()
    target = noise_setup.target
    with recording() as recorded:
        for attack in ("label_only_gap", "label_only_augmentation", "label_only_noise", "label_only_boundary"):
            # Each proves the memorising model's leak from labels alone (AUC gates: the gap attack's
            # two score values cannot reach a low FPR, see test_metrics).
            with pytest.raises(PrivacyLeakError):
                assert_auc_below(target, data, max_auc=0.55, attack=attack)
    assert [r.attack for r in recorded] == ["label_only_gap", "label_only_augmentation", "label_only_noise", "label_only_boundary"]
    # A model that never saw the points: nothing to find.
    safe = assert_tpr_at_fpr_below(stranger, data, fpr=0.2, max_tpr=0.4, attack="label_only_noise", attack_options={"k": 20})
    assert safe.verdict is Verdict.PASS and safe.queries == 20 * len(data)
    # Each attack's query count is what it must send: one label per point, one per augmented view
    # (the point and its 2 one-pixel shifts along the 20 features' axis), 100 noisy copies; the
    # white-box boundary search reads gradients and sends no label query.
    gap, augmentation, noise, boundary = recorded
    n = len(data)
    assert (gap.queries, augmentation.queries, noise.queries, boundary.queries) == (n, 3 * n, 100 * n, 0)






@pytest.mark.slow
def test_rmia_uses_a_held_out_population_and_beats_lira_with_few_references():
    from pytest_privacy.stats.roc import auc

    setup = PrivacyTrainer().audit(MEMORISE, noise_labels(600, 20), n_references=4, seed=0, population=0.2)
    data = setup.membership_data()
    pop = data.references.population
    assert len(data) == 480 and len(pop.y) == 120
    assert not setup.ensemble.keep[:, np.isin(np.arange(600), setup.points, invert=True)].any()
    rmia = attack_scores(setup.target, data, "rmia").scores
    lira = attack_scores(setup.target, data, "lira").scores
    # 480 points: an AUC's standard error is below 0.03; RMIA's edge with 4 references is larger.
    assert auc(rmia, data.is_member) > auc(lira, data.is_member) + 0.03
    from pytest_privacy import References

    no_population = MembershipData(data.x, data.y, data.is_member, References(data.references.logits, data.references.keep))
    with pytest.raises(ValueError, match="--privacy-population"):
        attack_scores(setup.target, no_population, "rmia")


