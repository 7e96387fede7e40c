"""The model cache: content-addressed, atomic, checksummed, shared safely between processes."""

import multiprocessing as mp
import warnings

import numpy as np
import pytest
from helpers import damage_entry, synthetic_conftest

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.engine.store import MARKER, ModelStore, NotAStoreError, StoreWarning

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
    damage_entry(store, KEY, damage)
    with pytest.warns(StoreWarning, match="corrupt"):
        assert store.get(KEY) is None
    assert KEY not in store


def test_an_entry_is_bound_to_its_key(store):
    # A valid entry copied over another key's (reference 0's over the target's) is not trusted.
    other = "cd" * 32
    store.put(KEY, {"logits": np.zeros(10, dtype=np.float32)})
    store.put(other, {"logits": np.ones(10, dtype=np.float32)})
    store.fs.pipe_file(store._entry(other), store.fs.cat_file(store._entry(KEY)))
    with pytest.warns(StoreWarning, match="another key"):
        assert store.get(other) is None
    assert (store.get(KEY)["logits"] == 0).all()


def test_a_signing_key_rejects_entries_planted_without_it(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    planted = ModelStore(root)  # a writer without the secret
    planted.put(KEY, {"logits": np.zeros(3, dtype=np.float32)})
    monkeypatch.setenv("PYTEST_PRIVACY_STORE_KEY", "s3cret")
    signed = ModelStore(root)
    with pytest.warns(StoreWarning, match="not signed"):
        assert signed.get(KEY) is None
    signed.put(KEY, {"logits": np.ones(3, dtype=np.float32)})
    assert (signed.get(KEY)["logits"] == 1).all()
    with pytest.warns(StoreWarning, match="not signed"):
        assert ModelStore(root, signing_key="another").get(KEY) is None


def test_entries_of_an_older_format_are_retrained_silently(tmp_path):
    from safetensors.numpy import save

    store = ModelStore(tmp_path / "s")
    path = store._entry(KEY)
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    store.fs.pipe_file(path, save({"logits": np.zeros(3, dtype=np.float32)}, metadata={"format": "pytest-privacy/1"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)
        assert store.get(KEY) is None


def test_clear_deletes_only_what_the_store_wrote(tmp_path):
    root = tmp_path / "cache"
    store = ModelStore(root)
    store.put(KEY, {"logits": np.zeros(3, dtype=np.float32)})
    with store.lock("ef" * 32):
        pass
    (root / "notes.txt").write_text("mine")  # files the user keeps beside the entries
    (root / KEY[:2] / "README").write_text("mine too")
    (root / "data").mkdir()
    (root / "data" / "x.npy").write_bytes(b"1")
    assert store.clear() == 2  # the entry and the lock file
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == [MARKER, f"{KEY[:2]}/README", "data/x.npy", "notes.txt"]
    assert store.get(KEY) is None


def test_a_directory_that_is_not_a_store_is_refused(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "model.py").write_text("important")
    with pytest.raises(NotAStoreError, match="not a pytest-privacy model store.*src/model.py"):
        ModelStore(project)
    assert (project / "src" / "model.py").read_text() == "important"
    # A store written before the marker existed (its own layout only) is adopted.
    old = tmp_path / "old"
    (old / KEY[:2]).mkdir(parents=True)
    (old / KEY[:2] / f"{KEY}.safetensors").write_bytes(b"x")
    assert ModelStore(old).writable and (old / MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAStoreError, match="cannot create"):
        ModelStore(tmp_path / "file" / "cache")


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    # xdist workers open the same new cache together: one's half-made marker is not a foreign file.
    import threading

    errors = []

    def open_store(root):
        try:
            ModelStore(root)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for i in range(30):
        threads = [threading.Thread(target=open_store, args=(tmp_path / f"s{i}",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_unreadable_and_diverged_entries_are_never_errors(tmp_path):
    store = ModelStore(tmp_path / "s")
    # A folder where the entry should be: a miss with a warning, and storing there fails softly.
    (tmp_path / "s" / KEY[:2] / f"{KEY}.safetensors").mkdir(parents=True)
    with pytest.warns(StoreWarning, match="unreadable"):
        assert store.get(KEY) is None
    with pytest.warns(StoreWarning, match="could not store"):
        assert not store.put(KEY, {"logits": np.zeros(3, dtype=np.float32)})
    # A symlink loop likewise.
    other = "cd" * 32
    loop = tmp_path / "s" / other[:2] / f"{other}.safetensors"
    loop.parent.mkdir()
    loop.symlink_to(loop)
    with pytest.warns(StoreWarning, match="unreadable"):
        assert store.get(other) is None
    # A diverged model is never cached.
    with pytest.warns(StoreWarning, match="NaN/inf"):
        assert not store.put("ee" * 32, {"logits": np.array([np.nan], dtype=np.float32)})
    assert "ee" * 32 not in store


def test_stale_temporary_files_are_removed(tmp_path):
    import os
    import time

    store = ModelStore(tmp_path / "s")
    shard = tmp_path / "s" / KEY[:2]
    shard.mkdir()
    stale, fresh = shard / f"{KEY}.safetensors.{'0' * 32}.tmp", shard / f"{KEY}.safetensors.{'1' * 32}.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    store.put(KEY, {"logits": np.zeros(3, dtype=np.float32)})
    assert not stale.exists() and fresh.exists()


@pytest.fixture
def read_only(tmp_path):
    """A read-only view of a folder (a bind mount, as a CI runner mounts a warm cache)."""
    import subprocess

    src, view = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    view.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(view)], capture_output=True).returncode:
        pytest.skip("needs permission to bind-mount a folder read-only")
    yield src, view
    subprocess.run(["umount", str(view)], check=True)


@pytest.mark.slow
def test_a_read_only_store_serves_every_hit_and_trains_misses_in_memory(read_only, small_data):
    src, view = read_only
    PrivacyTrainer(store=ModelStore(src)).audit(RECIPE, small_data, n_references=2, seed=0)
    store = ModelStore(view)
    assert not store.writable
    warm = PrivacyTrainer(store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every hit, no lock file, no warning
        warm.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (warm.models_trained, warm.models_loaded) == (0, 3)
    with pytest.warns(StoreWarning, match="read-only.*--privacy-no-cache") as caught:
        warm.audit(RECIPE, small_data, n_references=4, seed=0)
    assert (warm.models_trained, warm.models_loaded) == (2, 6)
    assert len([w for w in caught if "read-only" in str(w.message)]) == 1


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
    assert [p for p in store.fs.find(store.path) if not p.endswith((".safetensors", MARKER))] == []


@pytest.fixture(scope="module")
def small_data():
    return load_example_dataset("synthetic", n=200, seed=0)


@pytest.mark.slow
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


@pytest.mark.slow
def test_more_references_train_only_the_new_ones(tmp_path, small_data):
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    four = trainer.audit(RECIPE, small_data, n_references=4, seed=0)
    six = trainer.audit(RECIPE, small_data, n_references=6, seed=0)
    assert (trainer.models_trained, trainer.models_loaded) == (5 + 2, 5)
    np.testing.assert_array_equal(six.references.logits[:4], four.references.logits)


@pytest.mark.slow
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


@pytest.mark.slow
def test_corrupt_model_is_retrained_with_a_warning(tmp_path, small_data):
    store = ModelStore(tmp_path)
    first = PrivacyTrainer(store=store).audit(RECIPE, small_data, n_references=2, seed=0)
    victim = sorted(tmp_path.rglob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    again = PrivacyTrainer(store=store)
    with pytest.warns(StoreWarning):
        second = again.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (again.models_trained, again.models_loaded) == (1, 2)
    # Retrained alone, the model equals itself trained with the others up to float rounding (a
    # batched matmul over 3 models may round differently from one over 1).
    np.testing.assert_allclose(first.references.logits, second.references.logits, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_xdist_workers_train_a_shared_reference_set_once(pytester):
    pytester.makeconftest(synthetic_conftest(n=300, hidden=64, epochs=30))
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


@pytest.mark.slow
def test_clear_cache_under_xdist_and_cache_dirs_that_are_not_stores(pytester):
    pytester.makeconftest(synthetic_conftest(n=200, hidden=16, epochs=2))
    pytester.makepyfile("def test_uses(membership_data): pass\n")
    cache = pytester.path / "cache"
    pytester.runpytest_subprocess(f"--privacy-cache-dir={cache}", "--privacy-references=2").assert_outcomes(passed=1)
    # Under xdist the controller clears before any worker starts: everything retrains.
    cleared = pytester.runpytest_subprocess(
        f"--privacy-cache-dir={cache}", "--privacy-references=2", "--privacy-clear-cache", "-n", "2"
    )
    cleared.assert_outcomes(passed=1)
    cleared.stdout.fnmatch_lines(["cache cleared: * files the store wrote deleted from *", "models: 3 trained in *, 0 loaded*"])
    # A cache dir that holds the project is refused, and nothing in it is touched.
    (pytester.path / "keep.txt").write_text("mine")
    refused = pytester.runpytest_subprocess(f"--privacy-cache-dir={pytester.path}", "--privacy-clear-cache")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "is not a pytest-privacy model store" in refused.stderr.str()
    assert (pytester.path / "keep.txt").read_text() == "mine" and (pytester.path / "conftest.py").exists()
    # Paths that cannot be written are usage errors before anything runs.
    for option in (f"--privacy-cache-dir={pytester.path / 'keep.txt' / 'c'}", f"--privacy-report={pytester.path / 'keep.txt' / 'r.json'}"):
        bad = pytester.runpytest_subprocess(option)
        assert bad.ret == pytest.ExitCode.USAGE_ERROR and "cannot" in bad.stderr.str(), option


def test_overlapping_reference_sets_in_two_workers_train_no_model_twice(tmp_path):
    """Under xdist an auto audit's 4- and 8-reference sets (or smoke beside ci) ran in two workers:
    one lock per set let both train the shared models (26 trained where 17 were needed)."""
    import threading
    import time

    from helpers import noise_labels

    from pytest_privacy import PrivacyTrainer

    trained = []

    def fit(x, y, *, seed, device):
        trained.append(seed)
        time.sleep(0.15)  # long enough for the two workers to overlap
        return lambda xb: np.zeros((len(xb), 4))

    data = noise_labels(80, 4)
    counts = {}
    barrier = threading.Barrier(2)

    def worker(m):
        trainer = PrivacyTrainer(store=ModelStore(tmp_path))
        barrier.wait()
        trainer.audit(fit, data, n_references=m, seed=0)
        counts[m] = (trainer.models_trained, trainer.models_loaded)

    threads = [threading.Thread(target=worker, args=(m,)) for m in (4, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trained) == len(set(trained)) == 9  # 8 references and the target, each once
    assert counts[4][0] + counts[8][0] == 9 and counts[4][0] + counts[4][1] == 5 and counts[8][0] + counts[8][1] == 9
