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


def _plain_sgd_loop(x, y, *, seed, device):
    """A team's own loop with no DP at all (plain SGD), shipped under a DP claim."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(30):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model


@pytest.mark.parametrize("seed", [0, 1])
def test_a_plain_sgd_loop_fails_a_claim_of_two_with_input_canaries(seed):
    """Mislabelled canaries let this loop pass a claim of eps = 2 (eps >= 0.93 proven): a model that
    generalises predicts their true labels. Input-space canaries are memorised (20 of 20 seeds FAIL
    in benchmarks/dp_claim_power.py)."""
    run = PrivacyTrainer().canary_run(_plain_sgd_loop, load_example_dataset("digits"), n_canaries=898, seed=seed)
    with pytest.raises(PrivacyLeakError, match="claim violated"):
        assert_dp_claim_holds(run, epsilon=2.0, delta=1e-5)
