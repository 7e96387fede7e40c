"""Executors: the Ray executor gives the local executor's results, survives killed workers, names
the model that keeps failing, and an interrupted run trains only what is missing."""

import os
from dataclasses import replace

import numpy as np
import pytest
from helpers import NOISE_LABELS_TRAIN_FN_CONFTEST as CONFTEST
from helpers import TINY_LM_SOURCE, noise_labels
from helpers import TRAIN_FN_TESTS as TESTS

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.data.querying import query_logits
from pytest_privacy.engine.executors import (
    LocalExecutor,
    RayExecutor,
    TrainingFailed,
    make_executor,
)
from pytest_privacy.engine.seeds import model_seeds
from pytest_privacy.engine.store import MARKER, ModelStore

N_REFS = 4  # + the target: 5 models


def train_mlp(x, y, *, seed, device):
    """A plain PyTorch loop: small enough to train in a second, deterministic given its seed."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        for idx in torch.randperm(len(xt), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model


class DiesOnce:
    """``train_mlp`` whose first attempt at model ``victim_seed`` kills its worker process."""

    def __init__(self, marker, victim_seed):
        self.marker, self.victim_seed = str(marker), victim_seed

    def __call__(self, x, y, *, seed, device):
        if seed == self.victim_seed and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # no exception, no cleanup: the worker is simply gone
        return train_mlp(x, y, seed=seed, device=device)


class Flaky:
    """``train_mlp`` with a bug at one model: it raises ``error`` there while ``broken``; the
    object (and so its cache identity) stays the same when the test "fixes" it."""

    def __init__(self, victim_seed, error):
        self.victim_seed, self.error, self.broken = victim_seed, error, True

    def __call__(self, x, y, *, seed, device):
        if self.broken and seed == self.victim_seed:
            raise self.error
        return train_mlp(x, y, seed=seed, device=device)


def _seeds(trainer, data):
    """The integer seeds the training function receives, per model (the target's last), from a
    cheap dry run; the target trains first (a labels-only model needs no references)."""
    seen = []
    trainer.audit(lambda x, y, *, seed, device: seen.append(seed) or _Const(), data, n_references=N_REFS, seed=0)
    return seen[1:] + seen[:1]


class _Const:
    def __call__(self, xb):
        return np.zeros((len(xb), 4), dtype=np.float32)


@pytest.fixture(scope="module")
def data():
    return noise_labels(200, 10)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _entries_valid(root):
    """Every file in the store is a complete, checksummed entry; nothing half-written remains."""
    store = ModelStore(root)
    files = [p for p in root.rglob("*") if p.is_file() and "locks" not in p.parts]
    assert not [p for p in files if not p.name.endswith((".safetensors", MARKER))]
    files = [p for p in files if p.name != MARKER]
    for p in files:
        assert store.get(p.name.removesuffix(".safetensors")) is not None
    return len(files)


def test_make_executor_and_its_errors():
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ValueError, match="choose local or ray"):
        make_executor("dask")
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="gpus_per_task >= 0"):
        RayExecutor(gpus_per_task=-1)
    with pytest.raises(ValueError, match="--privacy-ray-gpus-per-task"):
        RayExecutor().device_type("cuda")
    assert RayExecutor(gpus_per_task=0.25).device_type("auto") == "cuda"


@pytest.mark.slow
def test_a_fractional_gpu_task_budgets_its_share_of_memory(monkeypatch, data):
    from pytest_privacy import TrainingRecipe
    from pytest_privacy.audit import RecipeSource, TrainJob
    from pytest_privacy.engine import ensemble

    monkeypatch.setattr(ensemble, "default_memory_budget", lambda device: 1000)
    x, y = data
    job = TrainJob(RecipeSource(TrainingRecipe()), x, y, np.ones((1, len(x)), bool), tuple(model_seeds(0, [0])))
    on = lambda j, share: j.on_worker(device="cuda", gpu_share=share)
    assert on(job, 0.25).max_memory == 250
    assert on(replace(job, max_memory=64), 0.25).max_memory == 64  # a budget the user set
    assert on(job, 1.0).max_memory is None  # a whole GPU: the engine's default
    assert on(job, 0.25).device == "cuda"


@pytest.mark.slow
def test_local_failure_names_the_model_and_its_seed(data):
    seeds = _seeds(PrivacyTrainer(), data)
    fn = Flaky(seeds[2], ValueError("loss is NaN at step 3"))
    with pytest.raises(TrainingFailed, match=rf"(?s)reference model 2 \(seed {seeds[2]}\).*loss is NaN") as info:
        PrivacyTrainer().audit(fn, data, n_references=N_REFS, seed=0)
    assert isinstance(info.value.__cause__, ValueError)  # the user's traceback is chained


@pytest.mark.slow
def test_interrupted_run_trains_only_what_is_missing(tmp_path, data):
    seeds = _seeds(PrivacyTrainer(), data)
    fn = Flaky(seeds[3], KeyboardInterrupt())  # Ctrl-C while model 3 trains
    first = PrivacyTrainer(store=ModelStore(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        first.audit(fn, data, n_references=N_REFS, seed=0)
    # the target (a training function's trains first) and references 0-2 were published
    assert first.models_trained == 4 and _entries_valid(tmp_path) == 4
    fn.broken = False
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    again.audit(fn, data, n_references=N_REFS, seed=0)
    assert (again.models_trained, again.models_loaded) == (1, 4)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_gives_the_local_results(ray_cluster, tmp_path, data):
    local = PrivacyTrainer().audit(train_mlp, data, n_references=N_REFS, seed=0)
    remote_trainer = PrivacyTrainer(store=ModelStore(tmp_path), executor=RayExecutor())
    remote = remote_trainer.audit(train_mlp, data, n_references=N_REFS, seed=0)
    assert remote_trainer.models_trained == N_REFS + 1
    np.testing.assert_allclose(remote.references.logits, local.references.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(remote.target(data[0]), query_logits(local.target, data[0])[:, 0], rtol=1e-5, atol=1e-5)
    assert _entries_valid(tmp_path) == N_REFS + 1  # the workers published every model

    recipe = TrainingRecipe(hidden=(16,), epochs=3)
    digits = load_example_dataset("synthetic", n=300, seed=1)
    ray_exec = RayExecutor()
    assert ray_exec.units(list(range(5)), vectorised=True) == [[0, 1, 2], [3, 4]]  # a chunk per CPU
    local_setup = PrivacyTrainer().audit(recipe, digits, n_references=N_REFS, seed=0)
    ray_setup = PrivacyTrainer(executor=ray_exec).audit(recipe, digits, n_references=N_REFS, seed=0)
    np.testing.assert_allclose(ray_setup.references.logits, local_setup.references.logits, rtol=1e-4, atol=1e-5)
    for name, value in local_setup.ensemble.params.items():
        np.testing.assert_allclose(ray_setup.ensemble.params[name], value, rtol=1e-4, atol=1e-6)


def _finetune_checking_ids(data, *, seed, device):
    """The tests' tiny LM fine-tune, refusing token ids that are not int64 (what Ray's workers receive)."""
    assert data.ids.dtype == np.int64 and data.mask.dtype == np.bool_, (data.ids.dtype, data.mask.dtype)
    return finetune_tiny(data, seed=seed, device=device, epochs=2, vocab=_TICKETS_VOCAB)  # noqa: F821 (exec below)


_TICKETS_VOCAB = len(load_example_dataset("tickets", n=80).tokenizer)
exec(TINY_LM_SOURCE)  # TinyLM, finetune_tiny: defined here, so Ray ships them with this module by value


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_language_models_fine_tunes_on_ray_get_int64_ids_and_give_the_local_results(ray_cluster, tmp_path):
    text = load_example_dataset("tickets", n=80)
    local = PrivacyTrainer().audit(_finetune_checking_ids, text, n_references=2, seed=0).membership_data()
    trainer = PrivacyTrainer(store=ModelStore(tmp_path), executor=RayExecutor())
    remote = trainer.audit(_finetune_checking_ids, text, n_references=2, seed=0).membership_data()
    assert trainer.models_trained == 3 and remote.x.dtype == np.int64
    np.testing.assert_allclose(remote.references.lp, local.references.lp, rtol=1e-5, atol=1e-5)
    again = PrivacyTrainer(store=ModelStore(tmp_path), executor=RayExecutor())
    again.audit(_finetune_checking_ids, text, n_references=2, seed=0)
    assert again.models_trained == 0  # what the workers stored is read back


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_killed_worker_is_retried_and_leaves_no_partial_entry(ray_cluster, tmp_path, data):
    seeds = _seeds(PrivacyTrainer(), data)
    marker = tmp_path / "died-once"
    store_root = tmp_path / "store"
    trainer = PrivacyTrainer(store=ModelStore(store_root), executor=RayExecutor(max_retries=2))
    setup = trainer.audit(DiesOnce(marker, seeds[1]), data, n_references=N_REFS, seed=0)
    assert marker.exists()  # the first attempt really died
    assert trainer.models_trained == N_REFS + 1 and _entries_valid(store_root) == N_REFS + 1
    local = PrivacyTrainer().audit(train_mlp, data, n_references=N_REFS, seed=0)
    np.testing.assert_allclose(setup.references.logits, local.references.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_task_that_keeps_failing_names_model_seed_and_traceback(ray_cluster, tmp_path, data):
    seeds = _seeds(PrivacyTrainer(), data)
    fn = Flaky(seeds[2], ValueError("loss is NaN at step 3"))
    trainer = PrivacyTrainer(store=ModelStore(tmp_path), executor=RayExecutor(max_retries=1))
    with pytest.raises(TrainingFailed) as info:
        trainer.audit(fn, data, n_references=N_REFS, seed=0)
    message = str(info.value)
    assert f"reference model 2 (seed {seeds[2]})" in message and "2 attempts" in message
    assert "the worker's traceback" in message and "raise self.error" in message  # the user's line
    assert "ValueError: loss is NaN at step 3" in message and "\x1b[" not in message
    # What finished before the failure is published; the fixed re-run trains only the rest.
    published = _entries_valid(tmp_path)
    fn.broken = False
    again = PrivacyTrainer(store=ModelStore(tmp_path), executor=RayExecutor())
    again.audit(fn, data, n_references=N_REFS, seed=0)
    assert (again.models_trained, again.models_loaded) == (N_REFS + 1 - published, published)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_user_training_loop_on_ray_fails_and_passes_for_real_reasons(pytester, ray_cluster):
    """The train_fn suite under --privacy-executor=ray, with the first model's worker killed: the
    session retries it and still reaches the real verdicts, then a second run trains nothing."""
    marker = pytester.path / "died-once"
    dies_once = (
        "    def train(x, y, *, seed, device):\n"
        "        import os\n"
        f"        if not os.path.exists({str(marker)!r}):\n"
        f"            open({str(marker)!r}, 'w').close()\n"
        "            os._exit(1)  # the worker dies mid-task, on the first attempt only\n"
    )
    conftest = CONFTEST.replace("    def train(x, y, *, seed, device):\n", dies_once)
    assert conftest != CONFTEST
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_fn=TESTS)
    args = ("--privacy-references=4", "--privacy-executor=ray")
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=1, failed=1)
    first.stdout.fnmatch_lines(["*PrivacyLeakError: privacy leak*", "models: 5 trained in *, 0 loaded from cache*"])
    assert marker.exists()
    assert _entries_valid(pytester.path / ".pytest_cache" / "d" / "pytest-privacy") == 5
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["models: 0 trained in *, 5 loaded from cache*"])
