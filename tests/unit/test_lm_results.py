"""A language model's gate results travel and compare like every other: they read back whole from
JSON (how xdist workers and stored runs carry them), and a stored run's comparison flags a release
whose extraction or exposure gate got worse."""

from pytest_privacy.report import from_json, to_json
from pytest_privacy.report.compare import compare_reports, parse_criteria
from pytest_privacy.report.session_report import build_report
from pytest_privacy.results import ExposureRow, LMAuditResult, Verdict


def _extraction(verdict, extracted):
    return LMAuditResult(
        verdict=verdict, reason="-", gate="extraction", attack="pii_extraction", variant="greedy", confidence=0.95,
        extracted=extracted, n_members=100, extracted_nonmembers=0, n_nonmembers=100, max_extracted=0, p_value=0.5,
        seed=0, test_id="t.py::test_pii", data_id="d",
    )


def _exposure(verdict, bits):
    return LMAuditResult(
        verdict=verdict, reason="-", gate="exposure", attack="canary_exposure", variant="4 digits", confidence=0.95,
        exposures=[ExposureRow(repetitions=16, canaries=4, exposure=bits, low=bits, high=bits, space_bits=13.3)],
        max_exposure=10.0, seed=0, test_id="t.py::test_canaries", data_id="d",
    )


def test_lm_results_read_back_whole():
    for r in (_extraction(Verdict.FAIL, 7), _exposure(Verdict.PASS, 2.5)):
        assert from_json(to_json(r)) == r


def test_a_release_whose_lm_gates_got_worse_regresses_and_one_that_did_not_is_unchanged():
    config = {"seed": 0}
    old = build_report([_extraction(Verdict.PASS, 0), _exposure(Verdict.PASS, 2.5)], config)
    same = compare_reports(old, build_report([_extraction(Verdict.PASS, 0), _exposure(Verdict.PASS, 2.5)], config),
                           parse_criteria("tpr:+0.01"))
    assert {c.status for c in same.changes} == {"unchanged"}
    worse = compare_reports(old, build_report([_extraction(Verdict.FAIL, 9), _exposure(Verdict.FAIL, 13.3)], config),
                            parse_criteria("tpr:+0.01"))
    assert {c.status for c in worse.changes} == {"regressed"}
    assert {c.measure for c in worse.changes} == {"extracted", "exposure"}
