"""MembershipData and References reject bad input early, naming the field and the fix."""

import numpy as np
import pytest

from pytest_privacy import MembershipData, References
from pytest_privacy.engine.seeds import balanced_keep


def _ok(n=10):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 3, n), np.arange(n) % 2 == 0


def test_valid_data_round_trip():
    x, y, m = _ok()
    d = MembershipData(x, y, m)
    assert (len(d), d.n_members, d.n_nonmembers) == (10, 5, 5)
    assert "members=5" in repr(d)
    shuffled = d.shuffled_membership(0)
    assert shuffled.n_members == 5 and not np.array_equal(shuffled.is_member, d.is_member)


@pytest.mark.parametrize(
    "change,error,match",
    [
        (lambda x, y, m: (x[:9], y, m), ValueError, r"y must have shape \(9,\)"),
        (lambda x, y, m: (x, y.astype(float) + 0.5, m), TypeError, "integer class labels"),
        (lambda x, y, m: (x, y - 5, m), ValueError, "negative label"),
        (lambda x, y, m: (np.where(np.eye(10, 3) > 0, np.nan, x), y, m), ValueError, "NaN/inf"),
        (lambda x, y, m: (x, y, np.ones(10, bool)), ValueError, "needs both"),
        (lambda x, y, m: (x, y, np.zeros(10, bool)), ValueError, "needs both"),
        (lambda x, y, m: (x, y, m[:5]), ValueError, "is_member must have shape"),
        (lambda x, y, m: (x, y, np.arange(10)), ValueError, "boolean or 0/1"),
        (lambda x, y, m: (x[:, 0], y, m), ValueError, r"\[N, \.\.\.\]"),
        (lambda x, y, m: (np.array([["a"] * 3] * 10), y, m), TypeError, "numeric"),
    ],
)
def test_bad_input_raises_with_the_fix(change, error, match):
    with pytest.raises(error, match=match):
        MembershipData(*change(*_ok()))


def test_members_overlapping_nonmembers_are_rejected():
    x, y, m = _ok()
    x[1] = x[0]  # point 0 is a member, point 1 a non-member, and they are the same input
    with pytest.raises(ValueError, match=r"x\[1\] == x\[0\].*members overlap non-members"):
        MembershipData(x, y, m)
    x[2] = x[0]  # duplicates on the same side are fine
    rows = [0, 2, 3, 5]  # points 0 and 2 are identical members
    MembershipData(x[rows], y[rows], m[rows])


def test_references_are_checked_against_the_points():
    x, y, m = _ok()
    refs = References(np.zeros((4, 9, 1, 3)), balanced_keep(4, 9, 0))
    with pytest.raises(ValueError, match="cover 9 points"):
        MembershipData(x, y, m, refs)
    with pytest.raises(ValueError, match="keep must be bool"):
        References(np.zeros((4, 10, 1, 3)), np.ones((4, 10)))
    with pytest.raises(ValueError, match="diverged"):
        References(np.full((4, 10, 1, 3), np.nan), balanced_keep(4, 10, 0))
    with pytest.raises(ValueError, match="out of range"):
        MembershipData(x, y + 3, m, References(np.zeros((4, 10, 3)), balanced_keep(4, 10, 0)))
    with pytest.raises(TypeError, match="References or a trained Ensemble"):
        MembershipData(x, y, m, references=object())


def test_balanced_keep_properties():
    for m, n in [(2, 7), (16, 101), (64, 50)]:
        k = balanced_keep(m, n, 3)
        assert (k.sum(0) == m // 2).all()
        assert set(k.sum(1)) <= {n // 2, (n + 1) // 2}
    assert not np.array_equal(balanced_keep(4, 50, 0), balanced_keep(4, 50, 1))
    np.testing.assert_array_equal(balanced_keep(4, 50, 0), balanced_keep(4, 50, 0))
    with pytest.raises(ValueError, match="even"):
        balanced_keep(3, 10, 0)


def test_as_dataset_drops_duplicate_rows_before_any_split():
    from pytest_privacy.audit import PrivacyDataWarning, as_dataset

    x, y, m = _ok()
    x[1] = x[0]
    with pytest.warns(PrivacyDataWarning, match="1 rows whose inputs duplicate"):
        got_x, got_y = as_dataset((x, y))  # a split could put x[1] among non-members while x[0] trains
    assert got_x.shape == (9, 3) and got_y.dtype == np.int64 and (got_x[0] == x[0]).all()
    with pytest.raises(TypeError, match="integer class labels"):
        as_dataset((x, y + 0.5))


