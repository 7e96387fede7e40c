"""The paired comparison behind assert_no_more_vulnerable_than: known answers, and its false-alarm
rate when two attacks are equally strong (a simulation with a known answer)."""

import numpy as np

from pytest_privacy.stats.comparisons import paired_tpr_comparison


def test_paired_comparison_known_answers():
    rng = np.random.default_rng(3)
    n = 2000
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    leaky = np.r_[rng.normal(2.0, 1, n), rng.normal(0, 1, n)]
    safe = np.r_[rng.normal(0.3, 1, n), rng.normal(0, 1, n)]
    c = paired_tpr_comparison(leaky, safe, member, fpr=0.01)
    assert c.worse and c.diff_low > 0 and c.tpr > c.tpr_baseline
    same = paired_tpr_comparison(safe, safe, member, fpr=0.01)
    assert not same.worse and same.diff == 0 and same.diff_low == same.diff_high == 0
    assert not paired_tpr_comparison(leaky, safe, member, fpr=0.01, margin=0.5).worse


def test_paired_comparison_errs_at_most_alpha_over_two_when_equal():
    # Two attacks of equal power on the same members: claiming "worse" is a false alarm.
    rng = np.random.default_rng(4)
    runs, n = 300, 500
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    alarms = 0
    for _ in range(runs):
        a = np.r_[rng.normal(1.5, 1, n), rng.normal(0, 1, n)]
        b = np.r_[rng.normal(1.5, 1, n), rng.normal(0, 1, n)]
        alarms += paired_tpr_comparison(a, b, member, fpr=0.05).worse
    from scipy import stats

    assert alarms <= stats.binom.ppf(0.999, runs, 0.025)
