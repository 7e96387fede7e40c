"""The store's warm path: local stores without fsspec, copy-free digests, and a lock-free first read
that trusts only entries passing every check (issue 15). Every guarantee of test_store.py holds."""

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import damage_entry

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.engine import store as store_module
from pytest_privacy.engine.store import ModelStore, StoreWarning, digest

KEY = "ab" * 32
RECIPE = TrainingRecipe(hidden=(16,), epochs=2)


def _digest_with_copies(*parts):
    """digest() as it was written before (every array copied by tobytes): the reference."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not contiguous
    np.arange(20, dtype=np.int64)[::3],  # strided
    np.array(2.5),  # 0-d
    np.zeros((3, 0), dtype=np.float32),  # empty
    np.array([True, False, True]),
    np.arange(6, dtype=">i4"),  # big-endian
    np.arange(4, dtype=np.float16),
    np.arange(3) + 1j,
    np.array(["2020-01-01"], dtype="M8[D]"),
    np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
    np.arange(5, dtype=np.uint8),
]


@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_digest_is_unchanged_without_its_copies(arr):
    # Keys, data identities and entry checksums are the same as before: stored entries stay valid.
    assert digest(arr) == _digest_with_copies(arr)
    assert digest("k", b"raw", arr, 3, arr) == _digest_with_copies("k", b"raw", arr, 3, arr)


def test_checksums_of_entries_written_before_still_verify(tmp_path):
    store = ModelStore(tmp_path / "s")
    tensors = {"logits": np.arange(30, dtype=np.float32).reshape(3, 1, 10), "param.0.weight": np.ones((4, 3))}
    store.put(KEY, tensors)
    meta = store_module._metadata(Path(store._entry(KEY)).read_bytes())
    names = sorted(tensors)
    assert meta["sha256"] == _digest_with_copies(KEY, *[x for n in names for x in (n, tensors[n])])


@pytest.mark.parametrize("root", ["/abs/path", "/abs/path/", "rel", "rel/sub/", "./rel", ".", "~", "~/c", "/"])
def test_a_local_path_resolves_as_fsspec_resolves_it(root):
    import fsspec

    _, path = fsspec.core.url_to_fs(root)
    assert store_module._local_path(root) == (path.rstrip("/") or "/")


@pytest.mark.parametrize("root", ["memory://x", "file:///tmp/x", "c:/x", "data:x", ""])
def test_anything_but_a_plain_path_is_left_to_fsspec(root):
    assert store_module._local_path(root) is None


def test_a_local_store_works_without_importing_fsspec(tmp_path):
    code = f"""
import sys, warnings
import numpy as np
from pytest_privacy.engine.store import ModelStore, StoreWarning
s = ModelStore({str(tmp_path / 's')!r})
assert s.local and s.writable
s.put({KEY!r}, {{"logits": np.ones(3, dtype=np.float32)}})
assert {KEY!r} in s and (s.get({KEY!r})["logits"] == 1).all() and (s.get_valid({KEY!r})["logits"] == 1).all()
assert "fsspec" not in sys.modules, "fsspec imported"
from fsspec.implementations.local import LocalFileSystem
assert isinstance(s.fs, LocalFileSystem)  # there when asked for
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_a_plain_path_and_a_file_url_are_the_same_store(tmp_path):
    plain, url = ModelStore(tmp_path / "s"), ModelStore(f"file://{tmp_path / 's'}")
    assert plain.path == url.path and plain.local and url.local
    url.put(KEY, {"logits": np.full(4, 3.0, dtype=np.float32)})
    assert (plain.get(KEY)["logits"] == 3).all()


@pytest.mark.parametrize("damage", ["truncate", "flip_data_byte", "flip_header_byte", "garbage", "empty"])
@pytest.mark.parametrize("kind", ["local", "memory"])
def test_the_lock_free_read_trusts_no_damaged_entry_and_changes_nothing(tmp_path, damage, kind):
    store = ModelStore(tmp_path / "s") if kind == "local" else ModelStore(f"memory://{tmp_path.name}-{damage}")
    store.put(KEY, {"logits": np.arange(100, dtype=np.float32), "param.w": np.ones((5, 5))})
    damage_entry(store, KEY, damage)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, nothing deleted: get() under the lock does that
        assert store.get_valid(KEY) is None
    assert KEY in store
    with pytest.warns(StoreWarning, match="corrupt"):
        assert store.get(KEY) is None
    assert KEY not in store
    if kind == "memory":
        store.clear()


def test_the_lock_free_read_rejects_another_keys_entry_and_unsigned_ones(tmp_path, monkeypatch):
    root = tmp_path / "s"
    store = ModelStore(root)
    other = "cd" * 32
    store.put(KEY, {"logits": np.zeros(10, dtype=np.float32)})
    store.put(other, {"logits": np.ones(10, dtype=np.float32)})
    shutil.copyfile(store._entry(KEY), store._entry(other))
    assert store.get_valid(other) is None and (store.get_valid(KEY)["logits"] == 0).all()
    monkeypatch.setenv("PYTEST_PRIVACY_STORE_KEY", "s3cret")
    signed = ModelStore(root)
    assert signed.get_valid(KEY) is None  # written without the secret
    signed.put(KEY, {"logits": np.full(10, 2.0, dtype=np.float32)})
    assert (signed.get_valid(KEY)["logits"] == 2).all()
    assert ModelStore(root, signing_key="another").get_valid(KEY) is None


def test_an_unreadable_entry_is_warned_about_and_kept(tmp_path):
    store = ModelStore(tmp_path / "s")
    os.makedirs(store._entry(KEY))  # a folder where the entry should be
    assert store.get_valid(KEY) is None
    with pytest.warns(StoreWarning, match="unreadable"):
        assert store.get(KEY) is None
    assert os.path.isdir(store._entry(KEY))


def test_a_read_only_store_keeps_a_corrupt_entry(tmp_path):
    store = ModelStore(tmp_path / "s")
    store.put(KEY, {"logits": np.arange(10, dtype=np.float32)})
    Path(store._entry(KEY)).write_bytes(Path(store._entry(KEY)).read_bytes()[:-3])
    store.writable = False
    with pytest.warns(StoreWarning, match="corrupt"):
        assert store.get(KEY) is None
    assert KEY in store  # not ours to delete


# ------------------------------------------------------------------------------ the trainer


@pytest.fixture(scope="module")
def small_data():
    return load_example_dataset("synthetic", n=200, seed=0)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory, small_data):
    root = tmp_path_factory.mktemp("trained") / "store"
    trainer = PrivacyTrainer(store=ModelStore(root))
    setup = trainer.audit(RECIPE, small_data, n_references=2, seed=0)
    assert trainer.models_trained == 3
    return root, setup


def _copy(trained_store, tmp_path):
    root, setup = trained_store
    shutil.copytree(root, tmp_path / "store", ignore=shutil.ignore_patterns("locks"))  # the cold run's
    return ModelStore(tmp_path / "store"), setup


class _Locks:
    """Counts the model locks taken (one per model that is missing; blocking or not)."""

    def __init__(self, store, monkeypatch):
        self.taken = 0
        for method in ("lock", "try_lock"):
            real = getattr(store, method)

            def counted(name, real=real):
                self.taken += 1
                return real(name)

            monkeypatch.setattr(store, method, counted)


@pytest.mark.slow
def test_a_warm_audit_takes_no_lock_and_matches(trained_store, tmp_path, monkeypatch, small_data):
    store, cold = _copy(trained_store, tmp_path)
    locks = _Locks(store, monkeypatch)
    warm = PrivacyTrainer(store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        setup = warm.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (warm.models_trained, warm.models_loaded, locks.taken) == (0, 3, 0)
    assert not (tmp_path / "store" / "locks").exists()
    np.testing.assert_array_equal(setup.references.logits, cold.references.logits)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate"])
def test_a_corrupt_entry_on_the_warm_path_is_retrained_under_the_lock(trained_store, tmp_path, monkeypatch, small_data, damage):
    store, cold = _copy(trained_store, tmp_path)
    victim = min((tmp_path / "store").rglob("*.safetensors"))
    blob = bytearray(victim.read_bytes())
    if damage == "flip_data_byte":
        blob[-5] ^= 0xFF
    else:
        blob = blob[:-10]
    victim.write_bytes(bytes(blob))
    locks = _Locks(store, monkeypatch)
    again = PrivacyTrainer(store=store)
    with pytest.warns(StoreWarning, match="corrupt") as caught:
        setup = again.audit(RECIPE, small_data, n_references=2, seed=0)
    assert len([w for w in caught if issubclass(w.category, StoreWarning)]) == 1  # warned once, not per pass
    assert (again.models_trained, again.models_loaded, locks.taken) == (1, 2, 1)
    np.testing.assert_allclose(setup.references.logits, cold.references.logits, rtol=1e-5, atol=1e-6)
    # Replaced by a valid entry: the next run is warm again.
    third = PrivacyTrainer(store=ModelStore(tmp_path / "store"))
    third.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (third.models_trained, third.models_loaded) == (0, 3)


@pytest.mark.slow
def test_a_partly_warm_audit_locks_and_trains_only_what_is_missing(trained_store, tmp_path, monkeypatch, small_data):
    store, _ = _copy(trained_store, tmp_path)
    locks = _Locks(store, monkeypatch)
    trainer = PrivacyTrainer(store=store)
    trainer.audit(RECIPE, small_data, n_references=2, seed=0)
    assert (trainer.models_trained, trainer.models_loaded, locks.taken) == (0, 3, 0)
    trainer.audit(RECIPE, small_data, n_references=4, seed=0)  # same split prefix: two new references
    assert (trainer.models_trained, trainer.models_loaded, locks.taken) == (2, 6, 2)  # a lock per model
