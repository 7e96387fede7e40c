"""The model cache: content-addressed, atomic, checksummed, shared safely between processes."""

import multiprocessing as mp
import warnings

import numpy as np
import pytest

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.trainer import PrivacyTrainer
from pytest_privacy.training.store import ModelStore, StoreWarning

RECIPE = TrainingRecipe(hidden=(16,), epochs=2)
KEY = "ab" * 32


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        yield ModelStore(tmp_path / "store")
    else:
        s = ModelStore(f"memory://{tmp_path.name}")
        yield s
        s.clear()


def test_round_trip(store):
    tensors = {"logits": np.arange(6, dtype=np.float32).reshape(3, 2), "param.w": np.ones(4)}
    assert store.get(KEY) is None and KEY not in store
    store.put(KEY, tensors)
    got = store.get(KEY)
    assert KEY in store and set(got) == set(tensors)
    for name in tensors:
        np.testing.assert_array_equal(got[name], tensors[name])


@pytest.mark.parametrize("damage", ["truncate", "flip_data_byte", "garbage"])
def test_corrupt_entries_are_detected_and_deleted(store, damage):
    store.put(KEY, {"logits": np.arange(100, dtype=np.float32)})
    path = store._entry(KEY)
    blob = bytearray(store.fs.cat_file(path))
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip_data_byte":
        blob[-5] ^= 0xFF  # inside the tensor bytes: only the checksum can notice
    else:
        blob = b"not a safetensors file"
    store.fs.pipe_file(path, bytes(blob))
    with pytest.warns(StoreWarning, match="corrupt"):
        assert store.get(KEY) is None
    assert KEY not in store


def _writer(root, seed):
    s = ModelStore(root)
    for _ in range(20):
        s.put(KEY, {"logits": np.full(50_000, 7.0, dtype=np.float32)})


def test_concurrent_writers_publish_one_valid_entry(tmp_path):
    root = str(tmp_path / "shared")
    procs = [mp.get_context("spawn").Process(target=_writer, args=(root, i)) for i in range(2)]
    for p in procs:
        p.start()
    reader = ModelStore(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)  # a reader must never see half an entry
        while any(p.is_alive() for p in procs):
            got = reader.get(KEY)
            assert got is None or (got["logits"] == 7.0).all()
    assert all(p.exitcode == 0 for p in procs)
    assert (reader.get(KEY)["logits"] == 7.0).all()
    assert not list((tmp_path / "shared").rglob("*.tmp"))


def test_concurrent_writers_in_one_process_publish_one_valid_entry(store):
    """Threads (Ray workers in one process, a runner's driver) writing the same key at once: a
    reader never sees half an entry, and one valid entry remains."""
    import threading

    def write():
        for _ in range(20):
            store.put(KEY, {"logits": np.full(50_000, 7.0, dtype=np.float32)})

    writers = [threading.Thread(target=write) for _ in range(3)]
    for w in writers:
        w.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)
        while any(w.is_alive() for w in writers):
            got = store.get(KEY)
            assert got is None or (got["logits"] == 7.0).all()
    for w in writers:
        w.join()
    assert (store.get(KEY)["logits"] == 7.0).all()
    assert [p for p in store.fs.find(store.path) if not p.endswith(".safetensors")] == []


@pytest.fixture(scope="module")
def small_data():
    return load_example_dataset("synthetic", n=200, seed=0)


def test_warm_run_trains_nothing_and_matches(tmp_path, small_data):
    cold = PrivacyTrainer(store=ModelStore(tmp_path))
    a = cold.audit(RECIPE, small_data, n_references=4, seed=0)
    assert (cold.models_trained, cold.models_loaded) == (5, 0)
    warm = PrivacyTrainer(store=ModelStore(tmp_path))
    b = warm.audit(RECIPE, small_data, n_references=4, seed=0)
    assert (warm.models_trained, warm.models_loaded) == (0, 5)
    np.testing.assert_array_equal(a.references.logits, b.references.logits)
    np.testing.assert_array_equal(a.is_member, b.is_member)
    x = small_data.x[:5]
    import torch

    with torch.no_grad():
        np.testing.assert_array_equal(a.target(torch.from_numpy(x)).numpy(), b.target(torch.from_numpy(x)).numpy())


def test_more_references_train_only_the_new_ones(tmp_path, small_data):
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    four = trainer.audit(RECIPE, small_data, n_references=4, seed=0)
    six = trainer.audit(RECIPE, small_data, n_references=6, seed=0)
    assert (trainer.models_trained, trainer.models_loaded) == (5 + 2, 5)
    np.testing.assert_array_equal(six.references.logits[:4], four.references.logits)


def test_changed_data_or_recipe_never_reuses_stale_models(tmp_path, small_data):
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    trainer.audit(RECIPE, small_data, n_references=2, seed=0)
    x, y = small_data
    x2 = x.copy()
    x2[0, 0] += 1.0
    trainer.audit(RECIPE, (x2, y), n_references=2, seed=0)
    trainer.audit(RECIPE.model_copy(update={"epochs": 3}), small_data, n_references=2, seed=0)
    trainer.audit(RECIPE, small_data, n_references=2, seed=1)
    assert (trainer.models_trained, trainer.models_loaded) == (12, 0)


def test_corrupt_model_is_retrained_with_a_warning(tmp_path, small_data):
    store = ModelStore(tmp_path)
    first = PrivacyTrainer(store=store).audit(RECIPE, small_data, n_references=2, seed=0)
    victim = sorted(tmp_path.rglob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    again = PrivacyTrainer(store=store)
    with pytest.warns(StoreWarning):
        second = again.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (again.models_trained, again.models_loaded) == (1, 2)
    np.testing.assert_array_equal(first.references.logits, second.references.logits)


def test_xdist_workers_train_a_shared_reference_set_once(pytester):
    pytester.makeconftest(
        """
        import pytest
        from pytest_privacy import TrainingRecipe, load_example_dataset

        @pytest.fixture(scope="session")
        def privacy_dataset():
            return load_example_dataset("synthetic", n=300)

        @pytest.fixture(scope="session")
        def privacy_recipe():
            return TrainingRecipe(hidden=(64,), epochs=30)
        """
    )
    pytester.makepyfile(
        """
        import os, pathlib, pytest

        @pytest.mark.parametrize("i", range(4))
        def test_uses_references(i, privacy_trainer, membership_data):
            pathlib.Path(f"trained-{os.getpid()}").write_text(str(privacy_trainer.models_trained))
        """
    )
    pytester.runpytest_subprocess("-n", "2", "--privacy-references=4").assert_outcomes(passed=4)
    counts = [int(p.read_text()) for p in pytester.path.glob("trained-*")]
    assert len(counts) == 2 and sum(counts) == 5  # one worker trained the 5 models, the other loaded them
    again = pytester.runpytest_subprocess("--privacy-references=4")
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(["models: 0 trained in *, 5 loaded from cache*"])
    fresh = pytester.runpytest_subprocess("--privacy-references=4", "--privacy-no-cache")
    fresh.stdout.fnmatch_lines(["models: 5 trained in *, 0 loaded from cache (cache off)"])
