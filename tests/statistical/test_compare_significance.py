"""Release-to-release comparison judged by significance: the same model re-audited with other seeds
does not fail (a false alarm is a failure of a model that did not change), and a real rise does."""

import numpy as np
from scipy import stats

from pytest_privacy.report.compare import compare_reports, parse_criteria
from pytest_privacy.report.session_report import build_report
from pytest_privacy.results import AttackResult
from pytest_privacy.stats.gates import gate

N = 900  # members and non-members: digits' audit size


def _audit(shift: float, seed: int) -> AttackResult:
    """A LiRA-like audit of a model whose member scores sit ``shift`` above non-members'."""
    rng = np.random.default_rng(seed)
    member = np.r_[np.ones(N, bool), np.zeros(N, bool)]
    scores = np.r_[rng.normal(shift, 1, N), rng.normal(0, 1, N)]
    g = gate(scores, member, fpr=0.01, max_tpr=0.2)
    return AttackResult(**g.model_dump(), attack="lira", variant="-", n_references=16, seed=seed, test_id="t::gate")


def _failed(old: AttackResult, new: AttackResult, criteria: str) -> bool:
    reports = [build_report([r], {}) for r in (old, new)]
    return compare_reports(*reports, parse_criteria(criteria)).failed


def test_the_same_model_re_audited_with_20_seeds_does_not_fail():
    old = _audit(1.0, seed=0)
    alarms = sum(_failed(old, _audit(1.0, seed=s), "tpr:+0.01") for s in range(1, 21))
    # at most the 99.9% binomial tail of 5% false alarms in 20 comparisons (measured: 0)
    assert alarms <= stats.binom.ppf(0.999, 20, 0.05)


def test_a_model_whose_tpr_rose_fails_and_a_point_comparison_would_have_failed_the_same_model():
    old = _audit(1.0, seed=0)
    # TPR at 1% FPR from Phi(1 - 2.33) = 0.09 to Phi(1.6 - 2.33) = 0.23: a real rise of 0.14
    assert sum(_failed(old, _audit(1.6, seed=s), "tpr:+0.01") for s in range(1, 21)) >= 19
    # Without the significance test, seed noise alone moves the TPR past a 0.01 tolerance often: in
    # most of 20 re-audits of the same model the point comparison fails, the significance test never.
    point_alarms = significant_alarms = 0
    for s in range(1, 21):
        reports = [build_report([r], {}) for r in (old, _audit(1.0, seed=s))]
        point_alarms += compare_reports(*reports, parse_criteria("tpr:+0.01"), significant=False).failed
        significant_alarms += compare_reports(*reports, parse_criteria("tpr:+0.01")).failed
    assert point_alarms >= 5 and significant_alarms <= stats.binom.ppf(0.999, 20, 0.05)


def test_newly_vulnerable_records_count_against_the_accepted_snapshot(tmp_path):
    from pytest_privacy.report.storage import RunStorage
    from pytest_privacy.results import VulnerablePoint

    def with_records(keys):
        r = _audit(1.0, seed=0)
        points = [VulnerablePoint(index=i, label=0, score=1.0, member=True, key=k) for i, k in enumerate(keys)]
        return build_report([r.model_copy(update={"most_vulnerable": points})], {})

    old, new = with_records(["a", "b", "c"]), with_records(["a", "b", "x", "y"])
    criteria = parse_criteria("new-vulnerable:1")
    assert compare_reports(old, new, criteria).failed  # x and y are new: 2 > 1
    storage = RunStorage(str(tmp_path))
    assert storage.accept_vulnerable(with_records(["a", "b", "x"])) == 1  # the team accepted x
    accepted = storage.accepted_vulnerable()
    assert not compare_reports(old, new, criteria, accepted=accepted).failed  # only y is new
    assert compare_reports(old, new, criteria, accepted=accepted).changes[0].newly_vulnerable == ["y"]


# ----------------------------------------------------------------- paired: the same points audited

POINTS = np.random.default_rng(123)
VULNERABILITY = POINTS.exponential(1.0, 2 * N)  # heterogeneous: a few points leak much more
DIFFICULTY = POINTS.normal(0, 1, 2 * N)  # each point's own score level, carried over between runs
MEMBER = np.r_[np.ones(N, bool), np.zeros(N, bool)]
STABLE = 0.98  # share of a point's score variance that is the point's own (the rest is the run's noise)


def _scores(shift: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 1, 2 * N)
    return shift * VULNERABILITY * MEMBER + np.sqrt(STABLE) * DIFFICULTY + np.sqrt(1 - STABLE) * noise


def _point_audit(shift: float, seed: int, *, paired: bool) -> AttackResult:
    from pytest_privacy.results import PointScores

    s = _scores(shift, seed)
    g = gate(s, MEMBER, fpr=0.01, max_tpr=0.6)  # both runs PASS: only the rise can fail them
    points = PointScores.of("the-same-points", s, MEMBER) if paired else None
    return AttackResult(**g.model_dump(), attack="lira", variant="-", n_references=16, seed=seed,
                        test_id="t::gate", point_scores=points)


def test_paired_comparison_of_the_same_model_re_audited_keeps_its_false_alarm_rate():
    old = _point_audit(1.0, seed=0, paired=True)
    alarms = sum(_failed(old, _point_audit(1.0, seed=s, paired=True), "tpr:+0") for s in range(1, 61))
    # The swap test is exact under "no change": at most the 99.9% binomial tail of 5% of 60 (measured: 1).
    assert alarms <= stats.binom.ppf(0.999, 60, 0.05)


def test_paired_comparison_finds_a_rise_of_003_that_the_interval_test_misses():
    from pytest_privacy.stats.roc import tpr_at_fpr

    truth = [np.mean([tpr_at_fpr(_scores(shift, s), MEMBER, 0.01) for s in range(1000, 1100)]) for shift in (1.0, 1.15)]
    assert 0.025 <= truth[1] - truth[0] <= 0.035  # the oracle's rise is 0.03 at 1% FPR (Monte Carlo)
    paired = sum(
        _failed(_point_audit(1.0, 0, paired=True), _point_audit(1.15, s, paired=True), "tpr:+0") for s in range(1, 21)
    )
    intervals = sum(
        _failed(_point_audit(1.0, 0, paired=False), _point_audit(1.15, s, paired=False), "tpr:+0") for s in range(1, 21)
    )
    # Measured 18/20 paired against 4/20 by intervals. Bounds: the 0.1% binomial tails at power 0.85
    # (paired) and at 0.25 (intervals), so a regression of either test shows.
    assert paired >= stats.binom.ppf(0.001, 20, 0.85) and intervals <= stats.binom.ppf(0.999, 20, 0.25)
    assert paired > intervals
