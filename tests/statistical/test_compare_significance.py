"""Release-to-release comparison judged by significance: the same model re-audited with other seeds
does not fail (a false alarm is a failure of a model that did not change), and a real rise does."""

import numpy as np
from scipy import stats

from pytest_privacy.metrics import gate
from pytest_privacy.report.compare import compare_reports, parse_criteria
from pytest_privacy.report.session_report import build_report
from pytest_privacy.results import AttackResult

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
    # Without the significance test, seed noise alone moves the TPR past a 0.01 tolerance often.
    reports = [build_report([r], {}) for r in (old, _audit(1.0, seed=3))]
    point = compare_reports(*reports, parse_criteria("tpr:+0.01"), significant=False)
    significant = compare_reports(*reports, parse_criteria("tpr:+0.01"))
    assert not significant.failed and (point.failed or abs(reports[1].results[0].tpr - old.tpr) <= 0.01)


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
    assert "1 newly vulnerable records" in compare_reports(old, new, criteria, accepted=accepted).lines[0]
