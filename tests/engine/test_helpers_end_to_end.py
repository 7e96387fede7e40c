"""assert_* helpers on trained models, with known answers: noise labels must leak, unseen data must
not; label-only attacks through the helpers, RMIA with a held-out population, and the errors and
policies around them."""

import numpy as np
import pytest
from helpers import noise_labels

from pytest_privacy import (
    MembershipData,
    PrivacyInconclusiveError,
    PrivacyInconclusiveWarning,
    PrivacyLeakError,
    TrainingRecipe,
    Verdict,
    assert_auc_below,
    assert_no_more_vulnerable_than,
    assert_tpr_at_fpr_below,
    attack_scores,
    measure_attack,
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


@pytest.mark.slow
def test_a_model_trained_on_noise_labels_leaks(noise_setup):
    data = noise_setup.membership_data()
    with recording("a-test") as recorded, pytest.raises(PrivacyLeakError) as info:
        assert_tpr_at_fpr_below(noise_setup.target, data, fpr=0.05, max_tpr=0.1)
    msg = str(info.value)
    for part in ("privacy leak", "lira (online, fixed variance)", "95% CI", "300 members", "8 reference models", "what to try"):
        assert part in msg
    [result] = recorded  # recorded even though the helper raised, tagged with the block's test id
    assert result.test_id == "a-test"
    assert result.verdict is Verdict.FAIL and result.tpr_low > 0.1 and result.fpr_high <= 0.05
    assert result.seed == 0 and result.n_references == 8


@pytest.mark.slow
def test_a_model_that_never_saw_the_data_does_not_leak(noise_setup, stranger):
    data = noise_setup.membership_data()
    r = assert_tpr_at_fpr_below(stranger, data, fpr=0.05, max_tpr=0.2)
    assert r.verdict is Verdict.PASS
    auc_result = assert_auc_below(stranger, data, max_auc=0.6)
    assert auc_result.verdict is Verdict.PASS and auc_result.gate == "auc" and auc_result.max_auc == 0.6
    with pytest.raises(PrivacyLeakError, match="AUC"):
        assert_auc_below(noise_setup.target, data, max_auc=0.6)


@pytest.mark.slow
def test_shuffled_membership_labels_do_not_leak(noise_setup):
    shuffled = noise_setup.membership_data().shuffled_membership(seed=1)
    for attack in ("lira", "lira_offline", "loss"):
        assert assert_tpr_at_fpr_below(noise_setup.target, shuffled, fpr=0.05, max_tpr=0.2, attack=attack).verdict is Verdict.PASS


@pytest.mark.slow
def test_probabilities_and_logits_give_the_same_scores(noise_setup):
    import torch

    data, model = noise_setup.membership_data(), noise_setup.target

    def probabilities(x):
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(x)), -1).numpy()

    s1 = attack_scores(model, data).scores
    s2 = attack_scores(probabilities, data).scores
    np.testing.assert_allclose(s1, s2, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_inconclusive_policies(noise_setup):
    data = noise_setup.membership_data()  # 300 non-members cannot certify FPR <= 1e-3
    with pytest.raises(PrivacyInconclusiveError, match="needs >= 3,688 non-members"):
        assert_tpr_at_fpr_below(noise_setup.target, data, fpr=1e-3, max_tpr=0.05)
    with pytest.warns(PrivacyInconclusiveWarning):
        r = assert_tpr_at_fpr_below(noise_setup.target, data, fpr=1e-3, max_tpr=0.05, on_inconclusive="warn")
    assert r.verdict is Verdict.INCONCLUSIVE


@pytest.mark.slow
def test_helpful_errors(noise_setup):
    data = noise_setup.membership_data()
    no_refs = MembershipData(data.x, data.y, data.is_member)
    with pytest.raises(ValueError, match="needs reference models"):
        assert_tpr_at_fpr_below(noise_setup.target, no_refs, fpr=0.01, max_tpr=0.1)
    with pytest.raises(ValueError, match="label_only"):
        assert_tpr_at_fpr_below(lambda x: np.zeros(len(x), int), no_refs, fpr=0.01, max_tpr=0.1, attack="loss")
    one_hot = lambda x: np.eye(4)[np.zeros(len(x), int)]  # noqa: E731
    with pytest.raises(ValueError, match="one-hot rows .* returns labels.*label_only"):
        assert_tpr_at_fpr_below(one_hot, no_refs, fpr=0.01, max_tpr=0.1, attack="loss")
    with pytest.raises(ValueError, match="NaN/inf"):
        assert_tpr_at_fpr_below(lambda x: np.full((len(x), 4), np.nan), no_refs, fpr=0.01, max_tpr=0.1, attack="loss")
    with pytest.raises(ValueError, match="3 queries x 4 classes|classes"):
        assert_tpr_at_fpr_below(lambda x: np.zeros((len(x), 5)), data, fpr=0.01, max_tpr=0.1)
    with pytest.raises(TypeError, match="MembershipData"):
        assert_tpr_at_fpr_below(noise_setup.target, (data.x, data.y), fpr=0.01, max_tpr=0.1)


def _never_called(x):
    raise AssertionError("a bad parameter must be rejected before the model is queried")


@pytest.mark.slow
@pytest.mark.parametrize(
    "call, match",
    [
        # Guessing already reaches TPR = FPR: max_tpr <= fpr would call a model without signal a leak.
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=0.2, max_tpr=0.1, attack="loss"), "random guessing"),
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=0.1, max_tpr=0.1, attack="loss"), "random guessing"),
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=True, max_tpr=0.1, attack="loss"), "fpr must be"),
        # A typo in a policy must never fall through to xfail.
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=0.01, max_tpr=0.1, on_inconclusive="fial"), "on_inconclusive: unknown policy 'fial'. Did you mean 'fail'"),
        (lambda d: assert_auc_below(_never_called, d, max_auc=0.6, on_inconclusive="xfial"), "on_inconclusive: unknown policy"),
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=0.01, max_tpr=0.1, confidence=1.5), "confidence must be"),
        (lambda d: assert_auc_below(_never_called, d, max_auc=float("nan")), "max_auc must be"),
        (lambda d: assert_tpr_at_fpr_below(_never_called, d, fpr=0.01, max_tpr=0.1, attack="lria"), "Did you mean .*'lira'"),
        *[
            (lambda d, c=c: assert_no_more_vulnerable_than(_never_called, _never_called, d, fpr=0.01, confidence=c), "confidence must be")
            for c in (0, 1, -1, float("nan"))
        ],
        (lambda d: assert_no_more_vulnerable_than(_never_called, _never_called, d, fpr=0.01, margin=-0.1), "margin must be"),
    ],
)
def test_bad_parameters_are_errors_before_any_query(noise_setup, call, match):
    with pytest.raises(ValueError, match=match):
        call(noise_setup.membership_data())


@pytest.mark.slow
def test_label_only_attacks_accept_a_labels_only_callable(noise_setup):
    import torch

    data, target = noise_setup.membership_data(), noise_setup.target

    def labels_only(x):
        with torch.no_grad():
            return target(torch.from_numpy(x)).argmax(-1).numpy()

    r = measure_attack(labels_only, data, fpr=0.05, attack="label_only_boundary", attack_options={"max_queries": 60})
    assert "HopSkipJump" in r.variant and 0 < r.queries <= 60 * len(data)
    with pytest.raises(ValueError, match="label_only"):  # a score attack cannot use labels
        measure_attack(labels_only, data, fpr=0.05, attack="loss")
    with pytest.raises(ValueError, match="takes no attack_options"):
        measure_attack(target, data, fpr=0.05, attack="loss", attack_options={"k": 1})


@pytest.mark.slow
def test_trained_augmentation_attack_fits_on_references_only(noise_setup):
    data = noise_setup.membership_data()
    r = measure_attack(noise_setup.target, data, fpr=0.05, attack="label_only_augmentation_trained")
    assert "8 references" in r.variant
    no_refs = MembershipData(data.x, data.y, data.is_member)
    with pytest.raises(ValueError, match="needs reference models"):
        measure_attack(noise_setup.target, no_refs, fpr=0.05, attack="label_only_augmentation_trained")


