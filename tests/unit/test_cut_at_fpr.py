"""One cut at an FPR, made the same way everywhere: the most false positives allowed among n
non-members is the largest k with k / n <= fpr as floating point compares it, and the operating point,
tpr_at_fpr, the paired comparison and the swap test all read their TPR at that cut."""

import numpy as np
import pytest

from pytest_privacy.stats.comparisons import paired_tpr_comparison, swap_test
from pytest_privacy.stats.roc import false_positives_allowed, tpr_at_fpr


def test_the_cut_is_the_largest_count_the_float_comparison_allows():
    for n in (1, 2, 3, 7, 10, 30, 100, 999, 1000, 4096):
        for fpr in (1e-4, 1e-3, 0.01, 0.07, 0.1, 0.3, 0.57, 0.5, 0.999):
            k = false_positives_allowed(fpr, n)
            assert k / n <= fpr and (k + 1) / n > fpr  # k is allowed, k + 1 is not
    assert false_positives_allowed(0.57, 100) == 57  # 0.57 * 100 = 56.99999999999999 in floating point
    assert false_positives_allowed(1e-3, 999) == 0


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.1, 0.57])
def test_every_reader_of_a_tpr_cuts_where_tpr_at_fpr_does(fpr):
    rng = np.random.default_rng(0)
    member = rng.random(400) < 0.5
    a = rng.normal(member * 0.8, 1.0)
    b = rng.normal(member * 0.3, 1.0)
    expected_a, expected_b = tpr_at_fpr(a, member, fpr), tpr_at_fpr(b, member, fpr)
    c = paired_tpr_comparison(a, b, member, fpr=fpr, margin=0.0, confidence=0.95, seed=0)
    assert (c.tpr, c.tpr_baseline) == pytest.approx((expected_a, expected_b))
    t = swap_test(a, b, member, fpr=fpr, margin=0.0, confidence=0.95)
    assert (t.tpr, t.tpr_baseline) == pytest.approx((expected_a, expected_b))
