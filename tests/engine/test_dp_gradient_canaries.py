"""White-box Dirac canaries inside the built-in DP-SGD (dp_canary_run(kind="gradient")): planted in the
clipped sums, scored by the privatized sum at their coordinates, cached with the model; an honest run does
not fail its own claim; only a DP-SGD recipe can carry them."""

import numpy as np
import pytest

from pytest_privacy import (
    PrivacyTrainer,
    TrainingRecipe,
    assert_dp_claim_holds,
    load_example_dataset,
)
from pytest_privacy.engine.defenses import DPSGD
from pytest_privacy.engine.store import ModelStore

pytestmark = pytest.mark.slow
RECIPE = {"model": "mlp", "hidden": (64,), "epochs": 5, "batch_size": 64, "lr": 0.1, "optimizer": "sgd"}


def test_gradient_canaries_are_scored_inside_dp_sgd_and_cached(tmp_path):
    pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    data = load_example_dataset("digits")
    recipe = TrainingRecipe(**RECIPE, defense=DPSGD(epsilon=2.0))
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    run = trainer.canary_run(recipe, data, seed=0, kind="gradient")
    assert run.trained and run.scores.shape == run.included.shape == (1000,)
    assert "1000 white-box Dirac gradient canaries" in run.description and run.accountant_epsilon == 2.0
    # An included canary joins each step with the sampling rate, about `epochs` times: its score stands
    # about epochs * clip = 5 above an absent one's; the spread of the scores (noise and the data's own
    # gradients, sd s) puts the difference of the two means within 4 s sqrt(1/n_in + 1/n_out) of 5.
    gap = run.scores[run.included].mean() - run.scores[~run.included].mean()
    spread = run.scores[~run.included].std() * np.sqrt(1 / run.included.sum() + 1 / (~run.included).sum())
    assert abs(gap - 5.0) < 4 * spread, (gap, spread)
    assert gap > 0
    assert assert_dp_claim_holds(run, epsilon=2.0, delta=1e-5).verdict.value in ("pass", "inconclusive")
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    warm = again.canary_run(recipe, data, seed=0, kind="gradient")
    assert not warm.trained and again.models_trained == 0
    np.testing.assert_array_equal(warm.scores, run.scores)
    np.testing.assert_array_equal(warm.included, run.included)
    other = PrivacyTrainer(store=ModelStore(tmp_path))
    other.canary_run(recipe, data, seed=0, kind="gradient", n_canaries=500)  # other canaries: another model
    assert other.models_trained == 1


def test_dp_sgd_with_its_noise_all_but_forgotten_fails_a_claim_of_two():
    """epsilon=1000 leaves DP-SGD a noise multiplier near 0: the canaries, on the coordinates the data moves
    least, stand out (20 of 20 seeds FAIL, median eps >= 3.21; the honest eps = 2 recipe 0 of 20, median
    0.29: measured for the README)."""
    pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    from pytest_privacy import PrivacyLeakError

    run = PrivacyTrainer().canary_run(TrainingRecipe(**RECIPE, defense=DPSGD(epsilon=1000.0)),
                                      load_example_dataset("digits"), seed=1, kind="gradient")
    with pytest.raises(PrivacyLeakError, match="claim violated"):
        assert_dp_claim_holds(run, epsilon=2.0, delta=1e-5)


def test_gradient_canaries_need_the_built_in_dp_sgd():
    data = load_example_dataset("digits")
    with pytest.raises(ValueError, match="inside the built-in DP-SGD.*kind='input'"):
        PrivacyTrainer().canary_run(TrainingRecipe(**RECIPE), data, seed=0, kind="gradient")
    with pytest.raises(ValueError, match="inside the built-in DP-SGD"):
        PrivacyTrainer().canary_run(lambda x, y, *, seed, device: None, data, seed=0, kind="gradient")
    with pytest.raises(ValueError, match="n_canaries must be an integer >= 2"):
        PrivacyTrainer().canary_run(TrainingRecipe(**RECIPE, defense=DPSGD()), data, seed=0, kind="gradient", n_canaries=1)


def test_the_dp_canary_run_fixture_plants_gradient_canaries_when_asked(pytester):
    """--privacy-canary-kind=gradient (or the marker's canary_kind) through dp_canary_run: the honest recipe
    passes its claim, the one whose noise was all but forgotten fails it; a recipe without DP-SGD is an
    error before training."""
    pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    pytester.makeconftest(
        "import pytest\n"
        "from pytest_privacy import load_example_dataset\n"
        "@pytest.fixture(scope='session')\n"
        "def privacy_dataset():\n"
        "    return load_example_dataset('digits')\n"
    )
    pytester.makepyfile(test_claims=f"""
import pytest
from pytest_privacy import TrainingRecipe, assert_dp_claim_holds
from pytest_privacy.engine.defenses import DPSGD

RECIPE = {RECIPE!r}

@pytest.mark.parametrize("epsilon", [2.0, 1000.0], ids=["honest", "forgotten"])
def test_claim(epsilon, request, dp_canary_run):
    assert_dp_claim_holds(dp_canary_run, epsilon=2.0, delta=1e-5)

@pytest.fixture
def privacy_recipe(request):
    callspec = getattr(request.node, "callspec", None)
    epsilon = None if callspec is None else callspec.params["epsilon"]
    return TrainingRecipe(**RECIPE, defense=None if epsilon is None else DPSGD(epsilon=epsilon))

def test_no_dp_sgd(dp_canary_run):
    pass
""")
    result = pytester.runpytest_subprocess("--privacy-canary-kind=gradient", "-rfE")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    for line in ("*PASS*test_claim?honest?*1000 white-box Dirac gradient canaries*", "*FAIL*test_claim?forgotten?*",
                 "*gradient canaries are planted inside the built-in DP-SGD*"):
        result.stdout.fnmatch_lines([line])
