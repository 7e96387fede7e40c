"""Known answers for the DP-claim gate on real training: honest DP-SGD at epsilon = 1 on digits
never fails over seeds (its canaries cannot prove more than it gives), and the same recipe with
DP-SGD forgotten, still claiming epsilon = 1, fails on every seed (its canaries prove > 2)."""

import pytest

from pytest_privacy import (
    PrivacyLeakError,
    PrivacyTrainer,
    TrainingRecipe,
    assert_dp_claim_holds,
    load_example_dataset,
)
from pytest_privacy.engine.defenses import DPSGD

pytestmark = pytest.mark.slow
RECIPE = {"model": "mlp", "hidden": (256,), "epochs": 40, "lr": 3e-3}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_honest_dp_sgd_never_fails_its_claim(seed):
    pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    recipe = TrainingRecipe(**RECIPE, defense=DPSGD(epsilon=1.0, delta=1e-5))
    run = PrivacyTrainer().canary_run(recipe, load_example_dataset("digits"), n_canaries=300, seed=seed)
    r = assert_dp_claim_holds(run, epsilon=1.0, delta=1e-5)
    assert r.verdict.value == "pass" and r.accountant_epsilon == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_forgotten_dp_sgd_fails_the_same_claim(seed):
    run = PrivacyTrainer().canary_run(TrainingRecipe(**RECIPE), load_example_dataset("digits"), n_canaries=300, seed=seed)
    with pytest.raises(PrivacyLeakError, match="claim violated"):
        assert_dp_claim_holds(run, epsilon=1.0, delta=1e-5)
