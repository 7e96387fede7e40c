"""One scenario per way of bringing a model, end to end at smoke size: a fresh pytest run (in a
subprocess, as CI runs it) trains the target and 4 references, the memorising target's leak FAILs
its gate (accepted only as ``xfail(raises=PrivacyLeakError)``), the same gate PASSes on membership
the model never saw, and the summary says the verdict came from the smoke profile.

The data are random labels (``helpers.NOISE_LABELS_DATASET``): fitting them is memorising, so every
one of these models exposes its members, and none can on shuffled membership.
"""

import pytest
from helpers import (
    NOISE_LABELS_CONFTEST,
    NOISE_LABELS_DATASET,
    NOISE_LABELS_TRAIN_FN_CONFTEST,
)

pytestmark = pytest.mark.slow

SKLEARN_CONFTEST = NOISE_LABELS_DATASET + """
from sklearn.ensemble import RandomForestClassifier

@pytest.fixture(scope="session")
def privacy_train_fn():
    def train(x, y, *, seed, device):
        # Unbootstrapped, fully grown trees recall every training label.
        return RandomForestClassifier(n_estimators=20, bootstrap=False, random_state=seed).fit(x, y)
    return train
"""

LABELS_ONLY_CONFTEST = NOISE_LABELS_TRAIN_FN_CONFTEST.replace(
    "        return model\n",
    "        return lambda xb: model(torch.from_numpy(xb)).argmax(-1).numpy()  # answers labels only\n",
)

AUGMENTED_CONFTEST = NOISE_LABELS_DATASET.replace(
    "rng.normal(size=(600, 20))", "rng.normal(size=(600, 4, 5))"  # [H, W] examples: flips apply
) + """
import torch
from torch import nn
from pytest_privacy import training_function

@pytest.fixture(scope="session")
def privacy_train_fn():
    @training_function(augmentations=("flip",))
    def train(x, y, *, seed, device):
        # A loop that trains on random horizontal flips: LiRA queries both views.
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 4))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(40):
            for idx in torch.randperm(len(xt)).split(64):
                xb = torch.where(torch.rand(len(idx), 1, 1) < 0.5, xt[idx].flip(-1), xt[idx])
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yt[idx]).backward()
                opt.step()
        return model
    return train
"""

CHECKPOINT_GATES = """
import numpy as np
import pytest
import torch
from torch import nn
from pytest_privacy import PrivacyLeakError, assert_tpr_at_fpr_below

def checkpoint(x, y):
    # Trained elsewhere, by code the test suite does not own.
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(40):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()

@pytest.fixture(scope="module")
def release(privacy_dataset):
    x, y = privacy_dataset
    is_member = np.random.default_rng(11).random(len(x)) < 0.5
    return x, y, is_member, checkpoint(x[is_member], y[is_member])

@pytest.mark.xfail(raises=PrivacyLeakError, strict=True)
def test_the_memorising_model_leaks(release, reference_models_for):
    x, y, is_member, model = release
    assert_tpr_at_fpr_below(model, reference_models_for(x, y, is_member), fpr=0.05, max_tpr=0.1)

def test_not_on_membership_it_never_saw(release, reference_models_for):
    x, y, is_member, model = release
    data = reference_models_for(x, y, is_member).shuffled_membership(1)
    assert_tpr_at_fpr_below(model, data, fpr=0.05, max_tpr=0.2)
"""

GATES = """
import pytest
from pytest_privacy import PrivacyLeakError, {helper}

@pytest.mark.xfail(raises=PrivacyLeakError, strict=True)
def test_the_memorising_model_leaks(target_model, membership_data):
    {helper}(target_model, membership_data, {gate}attack="{attack}")

def test_not_on_membership_it_never_saw(target_model, membership_data):
    {helper}(target_model, membership_data.shuffled_membership(1), {safe}attack="{attack}")
"""
TPR = {"helper": "assert_tpr_at_fpr_below", "gate": "fpr=0.05, max_tpr=0.1, ", "safe": "fpr=0.05, max_tpr=0.2, "}
AUC = {"helper": "assert_auc_below", "gate": "max_auc=0.6, ", "safe": "max_auc=0.6, "}

SCENARIOS = {
    "recipe": (NOISE_LABELS_CONFTEST, {**TPR, "attack": "lira"}),
    "labels-only-model": (LABELS_ONLY_CONFTEST, {**AUC, "attack": "label_only_gap"}),
    "loop-with-augmentations": (AUGMENTED_CONFTEST, {**AUC, "attack": "lira"}),
    "checkpoint-trained-elsewhere": (NOISE_LABELS_TRAIN_FN_CONFTEST, None),
    "torch-training-function": (NOISE_LABELS_TRAIN_FN_CONFTEST, {**TPR, "attack": "lira"}),
    "sklearn-estimator": (SKLEARN_CONFTEST, {**TPR, "attack": "lira"}),
    "labels-only-attack": (NOISE_LABELS_TRAIN_FN_CONFTEST, {**AUC, "attack": "label_only_gap"}),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_scenario_end_to_end_at_smoke_size(pytester, scenario):
    conftest, gate = SCENARIOS[scenario]
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_gates=CHECKPOINT_GATES if gate is None else GATES.format(**gate))
    result = pytester.runpytest_subprocess("--privacy-profile=smoke")
    result.assert_outcomes(passed=1, xfailed=1)
    # 4 references and a target; a checkpoint trains no target, a labels-only model no references.
    trained = {"checkpoint-trained-elsewhere": 4, "labels-only-model": 1}.get(scenario, 5)
    result.stdout.fnmatch_lines(["*PASS (smoke)*test_not_on_membership_it_never_saw*", f"*models: {trained} trained*"])
