"""Check a differential-privacy claim in one training run (a one-run audit with canaries).

The release claims (epsilon=1, delta=1e-5) for a DP-SGD recipe. ``dp_canary_run`` trains the recipe
once with input-space canaries (points out of the data's distribution with random labels), each
included with probability 1/2, and ``assert_dp_claim_holds``
turns the canaries' scores into a lower bound on epsilon (Steinke, Nasr & Jagielski 2023). The
honest recipe passes: nothing proves more than it claims. The same claim on a recipe whose
DP-SGD was forgotten (the bug a missing ``make_private`` call makes) fails: its canaries prove an
epsilon far above 1. A PASS never proves the claim true; the audit can only find false claims.
"""

import pytest

from pytest_privacy import PrivacyLeakError, TrainingRecipe, assert_dp_claim_holds
from pytest_privacy.engine.defenses import DPSGD

CLAIM = {"epsilon": 1.0, "delta": 1e-5}
RECIPE = {"model": "mlp", "hidden": (256,), "epochs": 40, "lr": 3e-3}

# 300 canaries beside the 1,797 digits: enough for this audit to refute a claim of 1 from a true epsilon of 1.5.
pytestmark = pytest.mark.privacy(canaries=300)


class TestHonestDPSGD:
    @pytest.fixture
    def privacy_recipe(self):
        """DP-SGD calibrated to the claim by opacus's accountant (clip 1, noise for epsilon 1)."""
        return TrainingRecipe(**RECIPE, defense=DPSGD(**CLAIM))

    def test_the_claim_holds(self, dp_canary_run):
        assert_dp_claim_holds(dp_canary_run, **CLAIM)


class TestForgottenDPSGD:
    @pytest.fixture
    def privacy_recipe(self):
        """The same recipe with DP-SGD forgotten, shipped under the same claim."""
        return TrainingRecipe(**RECIPE)

    @pytest.mark.xfail(raises=PrivacyLeakError, strict=True, reason="no noise, no clipping: the claim is false")
    def test_the_claim_holds(self, dp_canary_run):
        assert_dp_claim_holds(dp_canary_run, **CLAIM)
