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

TOKEN_IDS_CONFTEST = """
import numpy as np
import pytest
import torch
from torch import nn

OFFSET = 123_456_789  # ids above 2**24: float32 would round them (and an EmbeddingBag refuses floats)

@pytest.fixture(scope="session")
def privacy_dataset():
    # Short 'texts' of token ids with random labels: a classifier fits them by memorising.
    rng = np.random.default_rng(0)
    return rng.integers(0, 5000, size=(600, 6)) + OFFSET, rng.integers(0, 4, 600)

class BagClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(5000, 32, mode="sum")
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(32, 4))

    def forward(self, ids):
        return self.out(self.bag(ids - OFFSET))

@pytest.fixture(scope="session")
def privacy_train_fn():
    def train(x, y, *, seed, device):
        assert x.dtype == np.int64 and x.min() >= OFFSET  # the ids, exactly
        torch.manual_seed(seed)
        model = BagClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(30):
            for idx in torch.randperm(len(xt)).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
        return model
    return train
"""

LOGITS_OUTPUT_CONFTEST = NOISE_LABELS_TRAIN_FN_CONFTEST.replace(
    "        return model\n",
    "        return WithLogits(model)\n",
) + """
class Output(dict):
    # What a Hugging Face classifier returns (ModelOutput): a mapping with attribute access.
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

class WithLogits(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return Output(logits=self.net(x), hidden_states=None)
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
    "token-id-text-classifier": (TOKEN_IDS_CONFTEST, {**TPR, "attack": "lira"}),
    "model-returning-logits-output": (LOGITS_OUTPUT_CONFTEST, {**TPR, "attack": "lira"}),
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


OUTER_CONFTEST = NOISE_LABELS_DATASET  # tests/conftest.py: the data, shared by every folder

INNER_CONFTEST = """
import pytest
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.{act}(), nn.Linear(64, 4))

    def forward(self, x):
        return self.body(x)

@pytest.fixture(scope="session")
def privacy_train_fn():
    def train(x, y, *, seed, device):
        torch.manual_seed(seed)
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
        return model
    return train
"""

INNER_GATE = """
from pytest_privacy import measure_attack

def test_gate(target_model, membership_data):
    measure_attack(target_model, membership_data)
"""


def test_two_conftests_an_edited_model_class_is_retrained_whichever_folders_run(pytester):
    """``tests/conftest.py`` + ``tests/privacy/conftest.py`` (+ ``tests/unit/conftest.py``, collected
    after it): the model class lives in ``tests/privacy/conftest.py``, and ``sys.modules["conftest"]`` is
    whichever conftest pytest imported last. Editing the class once served the old models (``0 trained,
    5 loaded``, the cache key naming the class 'by name only')."""
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(OUTER_CONFTEST)
    unit = tests / "unit"
    unit.mkdir()
    (unit / "conftest.py").write_text("import pytest\n")
    (unit / "test_other.py").write_text("def test_other():\n    pass\n")
    inner = tests / "privacy"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST.format(act="ReLU"))
    (inner / "test_gate.py").write_text(INNER_GATE)
    first = pytester.runpytest_subprocess("tests", "--privacy-profile=smoke")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*models: 5 trained*", "*cache key covers training function*Net*"])
    assert "by name only" not in first.stdout.str()
    alone = pytester.runpytest_subprocess("tests/privacy", "--privacy-profile=smoke")
    alone.stdout.fnmatch_lines(["*models: 0 trained*5 loaded*"])  # the same code, the same keys
    (inner / "conftest.py").write_text(INNER_CONFTEST.format(act="Tanh"))  # the model changed
    edited = pytester.runpytest_subprocess("tests", "--privacy-profile=smoke")
    edited.assert_outcomes(passed=2)
    edited.stdout.fnmatch_lines(["*models: 5 trained*"])


# A gate that passes whatever the model: what fails the session is the comparison with the stored run.
RELEASE_GATE = """
from pytest_privacy import assert_auc_below

def test_release(target_model, membership_data):
    assert_auc_below(target_model, membership_data, max_auc=1.0)
"""


def test_a_memorising_release_fails_against_the_stored_one_and_a_ci_retry_still_fails(pytester, capsys):
    """Release to release through CI: a regression fails the session, its run is stored but never the
    default baseline, so re-running the failed job (a CI retry) compares with the last good release
    again (it once compared with itself: UNCHANGED, exit 0); every report opens with the outcome."""
    from pytest_privacy.__main__ import main as cli

    pytester.makepyfile(test_release=RELEASE_GATE)
    pytester.makeconftest(NOISE_LABELS_CONFTEST.replace("epochs=40", "epochs=1"))  # barely trained
    first = pytester.runpytest_subprocess("--privacy-references=4", "--privacy-autosave", "--privacy-save=v1")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*privacy run stored as 1:v1 in .privacy*"])
    same = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-compare=v1", "--privacy-compare-fail=auc:+0.02"
    )
    assert same.ret == 0, same.stdout.str()  # the same model again: no regression
    same.stdout.fnmatch_lines(["*UNCHANGED*t*release*"])
    pytester.makeconftest(NOISE_LABELS_CONFTEST)  # 40 epochs on random labels: memorises
    second = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-autosave", "--privacy-compare", "--privacy-compare-fail=auc:+0.02",
        "--privacy-html=r.html", "--privacy-markdown=s.md",
    )
    assert second.ret == 1
    # Its own gate passed, but the session failed: every report opens with the session's outcome.
    html, markdown = (pytester.path / "r.html").read_text(), (pytester.path / "s.md").read_text()
    assert 'class="outcome failed"' in html and "SESSION FAILED" in html and "privacy regression against" in html
    assert "**Session failed**: a privacy regression against stored run 1:v1" in markdown
    second.stdout.fnmatch_lines([
        "*compared with stored run 1:v1 (the latest stored run*", "*REGRESSED*test_release*AUC*",
        "*privacy regression against stored run*",
    ])
    # CI retries the failed job: the failing run was stored, but it is no baseline, so the retry
    # still compares with v1 and still fails (it once compared with itself: UNCHANGED, exit 0).
    retry = pytester.runpytest_subprocess(
        "--privacy-references=4", "--privacy-autosave", "--privacy-compare", "--privacy-compare-fail=auc:+0.02"
    )
    assert retry.ret == 1
    retry.stdout.fnmatch_lines(["*compared with stored run 1:v1 (the latest that passed; newer failing run(s) 2:*"])
    capsys.readouterr()  # (the pytest runs above printed too)
    assert cli(["list", "--storage", str(pytester.path / ".privacy")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and "v1" in listed[0] and "session passed" in listed[0]
    assert "1 pass" in listed[1] and "session failed" in listed[1]
