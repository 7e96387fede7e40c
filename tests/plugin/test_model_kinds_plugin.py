"""Through pytest: a checkpoint trained elsewhere gated with ``reference_models_for`` (only its
references train, counted in the summary), and a cache key that covers the code a training
function reaches (an edit to the model class it uses retrains; the summary says what is covered)."""

import pytest
from helpers import NOISE_LABELS_DATASET

pytestmark = pytest.mark.slow

CONFTEST = NOISE_LABELS_DATASET + """
import torch
from torch import nn

DROPOUT = 0.2

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(64, 4))

    def forward(self, x):
        return self.body(x)

def fit(x, y, *, seed, device, epochs=30):
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()

@pytest.fixture(scope="session")
def privacy_train_fn():
    return fit
"""

CHECKPOINT_TEST = """
import numpy as np
import pytest
from pytest_privacy import PrivacyLeakError, assert_auc_below
from conftest import fit

@pytest.mark.xfail(raises=PrivacyLeakError, strict=True)
def test_the_checkpoint_leaks(reference_models_for, privacy_dataset):
    x, y = privacy_dataset
    is_member = np.random.default_rng(3).random(len(x)) < 0.5
    checkpoint = fit(x[is_member], y[is_member], seed=123, device="cpu")  # trained elsewhere
    data = reference_models_for(x, y, is_member)
    assert data.references.n_references == 4
    assert_auc_below(checkpoint, data, max_auc=0.6)
"""

AUDIT_TEST = """
from pytest_privacy import measure_attack

def test_audit(target_model, membership_data):
    measure_attack(target_model, membership_data)
"""


def test_a_checkpoint_gets_references_and_no_target(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_checkpoint=CHECKPOINT_TEST)
    result = pytester.runpytest_subprocess("--privacy-references=4")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*models: 4 trained*", "*cache key covers training function fit + 1 function/class*Net*"])


def test_editing_the_model_class_a_function_uses_retrains(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_audit=AUDIT_TEST)
    first = pytester.runpytest_subprocess("--privacy-references=2")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*models: 3 trained*", "*covers*DROPOUT*"])
    pytester.runpytest_subprocess("--privacy-references=2").stdout.fnmatch_lines(["*models: 0 trained*3 loaded*"])
    pytester.makeconftest(CONFTEST.replace("DROPOUT = 0.2", "DROPOUT = 0.5"))  # a constant the class reads
    pytester.runpytest_subprocess("--privacy-references=2").stdout.fnmatch_lines(["*models: 3 trained*"])
    pytester.makeconftest(CONFTEST.replace("nn.Linear(20, 64), nn.ReLU()", "nn.Linear(20, 64), nn.Tanh()"))
    pytester.runpytest_subprocess("--privacy-references=2").stdout.fnmatch_lines(["*models: 3 trained*"])


POPULATION_TESTS = """
import pytest
from pytest_privacy import measure_attack
from pytest_privacy.attacks import ATTACKS

def test_unrelated_gate(target_model, membership_data):
    assert len(membership_data) == 600  # every point audited: nothing held out for it

@pytest.mark.rmia
def test_each_attack(target_model, membership_data, privacy_attack):
    # rmia and rmia_online hold 20% out; rmia_ratio, in the same suite, needs no population
    assert len(membership_data) == (480 if ATTACKS[privacy_attack].needs_population else 600)
    assert privacy_attack != "rmia_ratio" or len(membership_data) == 600
    measure_attack(target_model, membership_data, attack=privacy_attack)

@pytest.mark.privacy(population=0.2)
def test_names_rmia_itself(target_model, membership_data):
    assert len(membership_data) == 480
    measure_attack(target_model, membership_data, attack="rmia")
"""


def test_a_population_is_held_out_only_for_the_tests_that_need_one(pytester):
    from helpers import NOISE_LABELS_CONFTEST

    pytester.makeconftest(NOISE_LABELS_CONFTEST.replace("epochs=40", "epochs=2"))
    pytester.makepyfile(test_population=POPULATION_TESTS)
    result = pytester.runpytest_subprocess("--privacy-references=2", "--privacy-population=0.2", "--privacy-attacks=rmia,lira")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 4
