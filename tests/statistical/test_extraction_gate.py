"""The extraction gate's false alarms and power, simulated: when members and non-members are extracted
at the same rate (a guessable format, no memorisation) it FAILs at most at 1 - confidence; when
members are extracted far more often it FAILs nearly always."""

import numpy as np
from scipy import stats

from pytest_privacy.results import Verdict
from pytest_privacy.stats.extraction import extraction_verdict

RUNS = 2000


def _fail_rate(member_rate, nonmember_rate, n=150, seed=0):
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(RUNS):
        km, kn = rng.binomial(n, member_rate), rng.binomial(n, nonmember_rate)
        fails += extraction_verdict(km, n, kn, n, max_extracted=0, confidence=0.95)[0] is Verdict.FAIL
    return fails


def test_no_memorisation_fails_at_most_at_the_error_rate():
    for rate in (0.01, 0.05, 0.3):
        # Fisher's conditional test is exact (conservative on discrete counts): the FAIL count is at
        # most Binomial(RUNS, 0.05)'s 99.9% quantile.
        assert _fail_rate(rate, rate, seed=int(rate * 100)) <= stats.binom.ppf(0.999, RUNS, 0.05), rate


def test_memorised_members_fail():
    assert _fail_rate(0.2, 0.02) >= 0.95 * RUNS


def test_an_exact_count_within_the_allowance_passes_and_the_arguments_are_checked():
    import pytest

    assert extraction_verdict(2, 100, 0, 100, max_extracted=2, confidence=0.95)[0] is Verdict.PASS
    assert extraction_verdict(3, 100, 0, 100, max_extracted=2, confidence=0.95)[0] is Verdict.INCONCLUSIVE  # p = 0.125
    with pytest.raises(ValueError, match="extracted members"):
        extraction_verdict(101, 100, 0, 100, max_extracted=0, confidence=0.95)
    with pytest.raises(ValueError, match="max_extracted"):
        extraction_verdict(1, 100, 0, 100, max_extracted=0.5, confidence=0.95)
