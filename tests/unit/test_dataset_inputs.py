"""privacy_dataset as a torch Dataset, a memory map or arrays; checked and hashed once per session."""

import time

import numpy as np
import pytest

from pytest_privacy.audit import PrivacyDataWarning
from pytest_privacy.audit import dataset as ds
from pytest_privacy.audit.fingerprint import fingerprint


@pytest.fixture(autouse=True)
def _fresh_cache():
    ds.clear_dataset_cache()
    yield
    ds.clear_dataset_cache()


def _data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, 3, n)


class Pairs:
    """A map-style Dataset without torch's base class: __len__ and __getitem__ only."""

    def __init__(self, x, y, bad=None):
        self.rows, self.labels, self.bad = x, y, bad

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        if i == self.bad:
            return self.rows[i]  # no label
        return self.rows[i], int(self.labels[i])


def test_torch_datasets_give_the_tuples_arrays():
    torch = pytest.importorskip("torch")
    from torch.utils.data import Dataset, TensorDataset

    x, y = _data()
    want_x, want_y, _ = ds.checked_dataset((x, y))

    class Custom(Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return torch.from_numpy(x[i]), torch.tensor(y[i])

    for dataset in (TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), Custom(), Pairs(x, y)):
        got_x, got_y, kept = ds.checked_dataset(dataset)
        assert got_x.dtype == np.float32 and got_y.dtype == np.int64 and kept.all()
        np.testing.assert_array_equal(got_x, want_x)
        np.testing.assert_array_equal(got_y, want_y)
        assert ds.dataset_identity(got_x, got_y) == ds.dataset_identity(want_x, want_y)


@pytest.mark.parametrize(
    "change,error,says",
    [
        (lambda x, y: Pairs(x, y, bad=7), TypeError, r"item 7 is not an \(x, y\) pair"),
        (lambda x, y: Pairs([r if i != 3 else r[:4] for i, r in enumerate(x)], y), ValueError, r"item 3: x has shape \[4\]"),
        (lambda x, y: Pairs(x, y.astype(float) + 0.5), None, None),  # int() of the label: fine
        (lambda x, y: [(r, float(c)) for r, c in zip(x, y)], TypeError, "item 0: y must be an integer class label"),
        (lambda x, y: [(r, np.array([c])) for r, c in zip(x, y)], TypeError, r"item 0: y .* shape \[1\]"),
        (lambda x, y: [], ValueError, "the data set is empty"),
        (lambda x, y: (x, y, y), TypeError, "got tuple"),
        (lambda x, y: {"x": x, "y": y}, TypeError, "got a dict"),
    ],
)
def test_bad_items_are_errors_naming_the_index(change, error, says):
    dataset = change(*_data())
    if error is None:
        ds.checked_dataset(dataset)
        return
    with pytest.raises(error, match=says):
        ds.checked_dataset(dataset)


def test_items_that_change_between_reads_are_an_error():
    x, y = _data()
    rng = np.random.default_rng(1)

    class Random(Pairs):
        def __getitem__(self, i):
            return self.rows[i] + rng.normal(size=self.rows[i].shape), int(self.labels[i])

    with pytest.raises(ValueError, match="item 0 differs between two reads"):
        ds.checked_dataset(Random(x, y))


def test_memory_map_is_read_in_place(tmp_path):
    x, y = _data(n=64, d=8)
    mm = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="r", shape=x.shape)
    got_x, got_y, _ = ds.checked_dataset((ro, y))
    np.testing.assert_array_equal(got_x, x)
    assert np.shares_memory(got_x, ro)  # float32 without duplicates: no copy
    assert ds.dataset_identity(got_x, got_y) == ds.digest(x, y.astype(np.int64))


def _counting(monkeypatch, name):
    calls = []
    real = getattr(ds, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ds, name, spy)
    return calls


@pytest.mark.parametrize("kind", ["tuple", "dataset"])
def test_the_same_object_is_checked_and_hashed_once(monkeypatch, kind):
    x, y = _data(n=3000, d=200)  # 2.4 MB: fingerprinted by sample, not in full
    x = x.astype(np.float64)  # checking copies it to float32
    dataset = (x, y) if kind == "tuple" else Pairs(x, y)
    digests = _counting(monkeypatch, "digest")
    reads = _counting(monkeypatch, "materialise")
    checks = _counting(monkeypatch, "check_inputs")
    first = ds.checked_dataset(dataset)
    first_id = ds.dataset_identity(*first[:2])
    assert (len(digests), len(checks)) == (1, 1)
    for _ in range(3):
        again = ds.checked_dataset(dataset if kind == "dataset" else (x, y))  # a new tuple of the same arrays
        assert all(a is b for a, b in zip(again, first))
        assert ds.dataset_identity(*again[:2]) == first_id
    assert (len(digests), len(checks), len(reads)) == (1, 1, int(kind == "dataset"))


@pytest.mark.parametrize("kind", ["tuple", "dataset"])
@pytest.mark.parametrize("row", [0, -1])
def test_an_in_place_edit_of_the_first_or_last_row_is_checked_again(kind, row):
    x, y = _data(n=3000, d=200)
    x = x.astype(np.float64)
    dataset = (x, y) if kind == "tuple" else Pairs(x, y)
    before_x, before_y, _ = ds.checked_dataset(dataset)
    before_id = ds.dataset_identity(before_x, before_y)
    x[row] += 1
    after_x, after_y, _ = ds.checked_dataset(dataset)
    assert after_x is not before_x
    np.testing.assert_array_equal(after_x[row], x[row].astype(np.float32))
    assert ds.dataset_identity(after_x, after_y) not in (before_id, None)


def test_an_in_place_edit_of_a_float32_array_changes_its_identity():
    x, y = _data(n=3000, d=200)
    got_x, got_y, _ = ds.checked_dataset((x, y))
    assert got_x is x  # nothing to convert: the checked array is the user's
    before = ds.dataset_identity(got_x, got_y)
    x[0, 0] += 1
    got_x, got_y, _ = ds.checked_dataset((x, y))
    assert ds.dataset_identity(got_x, got_y) != before


def test_small_arrays_are_fingerprinted_in_full():
    x, y = _data(n=100, d=8)
    mark = fingerprint(x, y)
    x[50, 3] += 1e-3
    assert fingerprint(x, y) != mark


def test_duplicates_warn_on_every_use_through_the_cache():
    x, y = _data()
    x[1] = x[0]
    for dataset in [(x, y), (x, y), Pairs(x, y)]:  # checked, cached, read from items
        with pytest.warns(PrivacyDataWarning, match="1 rows whose inputs duplicate"):
            got_x, got_y, kept = ds.checked_dataset(dataset)
        assert got_x.shape == (39, 6) and got_y.shape == (39,) and not kept[1] and kept.sum() == 39


def test_a_dead_dataset_leaves_the_cache():
    import gc

    x, y = _data()
    for make in (lambda: Pairs(x, y), lambda: (x.copy(), y.astype(np.int64))):  # the arrays are checked in place
        dataset = make()
        ds.checked_dataset(dataset)
        assert len(ds._CACHE) == 1
        del dataset
        gc.collect()
        assert len(ds._CACHE) == 0


def test_fingerprint_is_cheap_for_a_large_array():
    x = np.zeros((5000, 3072), np.float32)  # 61 MB; 50,000 rows measured in the report
    fingerprint(x)
    start = time.perf_counter()
    for _ in range(5):
        fingerprint(x)
    assert (time.perf_counter() - start) / 5 < 0.05


def test_a_stray_label_is_an_error_unless_the_classes_are_named():
    from types import SimpleNamespace

    from pytest_privacy.audit.dataset import as_dataset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), np.arange(60) % 10
    y[7] = 100  # one typo'd label among 10 classes: once a 101-class model without a word
    with pytest.raises(ValueError, match=r"skip 90 of the classes 0\.\.100.*np\.unique\(y, return_inverse=True\)"):
        as_dataset((x, y))
    assert as_dataset(SimpleNamespace(x=x, y=y, n_classes=101))[1].max() == 100
    with pytest.raises(ValueError, match="n_classes must be an integer above the largest label"):
        as_dataset(SimpleNamespace(x=x, y=y, n_classes=50))
