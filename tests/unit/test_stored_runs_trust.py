"""Stored runs and release-to-release comparison as an adversary and a busy CI would use them: gates
matched by their whole identity, the default attack compared as requested, signed runs, other data,
results that round-trip infinities, concurrent writers, corrupt runs, run names that read as numbers."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from pytest_privacy.__main__ import main as cli
from pytest_privacy.report.compare import compare_reports, gate_key, parse_criteria
from pytest_privacy.report.recorder import from_json, to_json
from pytest_privacy.report.session_report import build_report
from pytest_privacy.report.storage import (
    RunStorage,
    StoredRunError,
    check_run_name,
    vulnerable_sets,
)
from pytest_privacy.results import (
    AttackResult,
    DPAuditResult,
    PointScores,
    Verdict,
    VulnerablePoint,
)
from pytest_privacy.stats.gates import gate

N = 900
MEMBER = np.r_[np.ones(N, bool), np.zeros(N, bool)]


def _scores(shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(shift, 1, N), rng.normal(0, 1, N)]


def _result(shift: float, *, fpr: float = 0.02, max_tpr: float = 0.9, seed: int = 0, attack: str = "lira",
            test_id: str = "t.py::test_gate", data_id: str | None = "data-a", default: bool = False) -> AttackResult:
    s = _scores(shift, seed)
    g = gate(s, MEMBER, fpr=fpr, max_tpr=max_tpr)
    return AttackResult(
        **g.model_dump(), attack=attack, variant="-", n_references=16, seed=seed, test_id=test_id, data_id=data_id,
        default_attack=default, point_scores=PointScores.of(f"points-{seed}", s, MEMBER),
    )


def _report(*results, outcome: str | None = None):
    return build_report(list(results), {}).model_copy(update={"outcome": outcome})


def _compare(old, new, criteria="tpr:+0.01", **kwargs):
    return compare_reports(old, new, parse_criteria(criteria), **kwargs)


# ------------------------------------------------------------------------------ gate identity


def test_a_family_over_two_fprs_compared_with_itself_is_unchanged():
    # Before: matched on (test, attack, kind) only, the FPR 0.2 gate paired with the FPR 0.02 one: 2 REGRESSED.
    run = _report(_result(1.0, fpr=0.2), _result(1.0, fpr=0.02))
    c = _compare(run, run)
    assert not c.failed and [g.status for g in c.changes] == ["unchanged", "unchanged"]


def test_a_real_rise_at_one_fpr_of_a_family_is_a_regression_not_an_improvement():
    # The FPR 0.02 member's TPR rises ~6x (shift 1.0 -> 2.5); the FPR 0.2 member hardly moves.
    old = _report(_result(1.0, fpr=0.2), _result(1.0, fpr=0.02))
    new = _report(_result(1.0, fpr=0.2, seed=0), _result(2.5, fpr=0.02, seed=0))
    c = _compare(old, new)
    by_fpr = {g.gate: g.status for g in c.changes}
    assert c.failed and by_fpr["tpr_at_fpr:fpr=0.02,max_tpr=0.9,audit=model"] == "regressed"
    assert by_fpr["tpr_at_fpr:fpr=0.2,max_tpr=0.9,audit=model"] == "unchanged"


def test_gates_differing_only_in_their_limit_are_different_gates():
    a, b = _result(1.0, max_tpr=0.5), _result(1.0, max_tpr=0.9)
    assert gate_key(a) != gate_key(b)
    c = _compare(_report(a), _report(b))  # not paired with each other: one gone, one new
    assert sorted(g.status for g in c.changes) == ["gone", "new"] and c.failed


def test_an_extraction_gate_with_another_decoding_is_another_gate():
    """Greedy decoding before each secret is one gate, whatever a stored run from before samples
    and prefixes called it; sampled or fixed-prefix decoding is another (its counts are not comparable)."""
    from pytest_privacy.results import DEFAULT_EXTRACTION, LMAuditResult, Verdict

    def extraction(variant: str) -> LMAuditResult:
        return LMAuditResult(verdict=Verdict.PASS, reason="", gate="extraction", attack="pii_extraction", variant=variant,
                             confidence=0.95, max_extracted=0, test_id="t::x")

    default = gate_key(extraction(DEFAULT_EXTRACTION))
    assert gate_key(extraction("greedy, prompted with the text before each PII span")) == default
    sampled = gate_key(extraction("greedy and 4 samples at temperature 1 (seed 0), prompted with the text before each secret"))
    assert sampled != default and gate_key(extraction("greedy, prompted with the first 8 tokens")) not in (default, sampled)


def test_a_run_whose_keys_are_ambiguous_says_so_instead_of_guessing():
    twice = _report(_result(1.0, seed=1), _result(2.0, seed=2))  # one test recorded the same gate twice
    c = _compare(twice, twice)
    assert [g.status for g in c.changes] == ["ambiguous"] and c.failed
    assert any("recorded more than once" in n for n in c.notes)
    assert vulnerable_sets(twice) == {}  # which records belong to which gate is not known either


def test_snapshot_keys_hold_the_whole_identity():
    points = [VulnerablePoint(index=0, label=0, score=1.0, member=True, key="k")]
    a = _result(1.0, fpr=0.2).model_copy(update={"most_vulnerable": points})
    b = _result(1.0, fpr=0.02).model_copy(update={"most_vulnerable": points})
    assert len(vulnerable_sets(_report(a, b))) == 2


def test_the_compare_command_on_one_report_twice_reports_no_regression(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(_report(_result(1.0, fpr=0.2), _result(1.0, fpr=0.02)).model_dump_json())
    assert cli(["compare", str(path), str(path), "--fail", "tpr:+0.01"]) == 0
    assert "REGRESSED" not in capsys.readouterr().out


# ------------------------------------------------------------------------------ default attack


def test_the_default_gate_is_compared_as_requested_when_the_deciding_attack_changes():
    old = _report(_result(1.0, attack="rmia_ratio", default=True))  # 4 references: RMIA decided
    new = _report(_result(1.0, attack="lira", default=True, seed=3))  # 8 or more: LiRA decided
    c = _compare(old, new)
    [change] = c.changes
    assert change.status in ("unchanged", "improved") and change.attack == "default"
    assert change.decided_by == "rmia_ratio -> lira" and any("default attack" in n for n in c.notes)
    # and a real regression of the default gate across the switch is caught (no GONE + NEW to wave through)
    worse = _compare(old, _report(_result(2.5, attack="lira", default=True, seed=3)), allow_missing=True)
    assert worse.failed and worse.changes[0].status == "regressed"


# ------------------------------------------------------------------------------ other data


def test_a_run_on_other_data_is_not_comparable_unless_the_change_is_said():
    old, new = _report(_result(1.0)), _report(_result(1.0, data_id="data-b"))
    c = _compare(old, new)
    assert c.failed and c.changes[0].status == "not comparable" and not c.changes[0].newly_vulnerable
    said = _compare(old, new, data_changed=True)
    assert not said.failed and said.changes[0].status == "unchanged"


def test_the_data_id_is_free_of_order_and_membership_but_not_of_content():
    from pytest_privacy import MembershipData

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    member = np.arange(40) < 20
    a = MembershipData(x, y, member)
    order = rng.permutation(40)
    assert MembershipData(x[order], y[order], member[order]).data_id == a.data_id
    assert a.shuffled_membership(1).data_id == a.data_id
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    assert MembershipData(x, y2, member).data_id != a.data_id


# ------------------------------------------------------------------------------ signatures


def test_a_signed_run_edited_by_hand_is_refused_naming_the_file(tmp_path):
    key = b"secret"
    storage = RunStorage(str(tmp_path), key=key)
    run = storage.save(_report(_result(2.5)), "v1")
    assert storage.load("v1").results[0].tpr == pytest.approx(_result(2.5).tpr)
    payload = json.loads((tmp_path / run.path.rsplit("/", 1)[-1]).read_text())
    payload["results"][0]["tpr"] = 0.99  # make the old release look worse, so the new one "improves"
    (tmp_path / run.path.rsplit("/", 1)[-1]).write_text(json.dumps(payload))
    with pytest.raises(StoredRunError, match=r"0001_v1\.json fails its signature"):
        storage.load("v1")
    with pytest.raises(StoredRunError, match="not signed"):
        RunStorage(str(tmp_path), key=key).read(RunStorage(str(tmp_path / "x")).save(_report(), "v2"))
    # re-indenting a signed run keeps it valid: the signature covers the content, not the layout
    good = storage.save(_report(_result(1.0)), "v3")
    path = tmp_path / good.path.rsplit("/", 1)[-1]
    path.write_text(json.dumps(json.loads(path.read_text()), indent=7))
    assert storage.load("v3").results[0].attack == "lira"


def test_a_signed_snapshot_edited_by_hand_is_refused(tmp_path):
    storage = RunStorage(str(tmp_path), key=b"k")
    points = [VulnerablePoint(index=0, label=0, score=1.0, member=True, key="rec")]
    storage.accept_vulnerable(_report(_result(1.0).model_copy(update={"most_vulnerable": points})))
    assert list(storage.accepted_vulnerable().values()) == [["rec"]]
    path = tmp_path / "vulnerable-snapshot.json"
    payload = json.loads(path.read_text())
    payload["gates"] = {k: ["rec", "other"] for k in payload["gates"]}
    path.write_text(json.dumps(payload))
    with pytest.raises(StoredRunError, match="fails its signature"):
        storage.accepted_vulnerable()


# ------------------------------------------------------------------------------ infinities


def test_results_round_trip_infinities_and_an_infinite_claim_is_an_error():
    from pytest_privacy import assert_dp_claim_holds

    r = DPAuditResult(
        verdict=Verdict.PASS, reason="-", variant="-", epsilon_claim=1.0, delta=0.0, confidence=0.95,
        epsilon_low=0.0, max_detectable=math.inf, n_canaries=10, n_guesses=0, n_correct=0,
    )
    assert from_json(to_json(r)).max_detectable == math.inf
    report = build_report([r], {})
    assert type(report).model_validate_json(report.model_dump_json()).results[0].max_detectable == math.inf

    class Run:
        scores, included = np.zeros(10), np.arange(10) < 5

    for bad in (math.inf, math.nan, -1.0, 0.0):
        with pytest.raises(ValueError, match=r"epsilon must be a number in \(0, inf\)"):
            assert_dp_claim_holds(Run(), epsilon=bad, delta=0.0)


# ------------------------------------------------------------------------------ concurrent writers


@pytest.mark.parametrize("names", [("ci", "ci"), ("job-a", "job-b")])
def test_writers_racing_on_one_storage_each_get_their_own_run_number(tmp_path, names):
    storage_url = str(tmp_path / "runs")
    errors, stored = [], []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        try:
            barrier.wait()
            stored.append(RunStorage(storage_url).save(_report(_result(1.0, seed=i)), names[i % 2]))
        except Exception as exc:  # noqa: BLE001 - a lost run is what this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    runs = RunStorage(storage_url).runs()
    assert len(runs) == 8 and sorted(r.number for r in runs) == list(range(1, 9))
    assert {r.number for r in stored} == set(range(1, 9))
    assert sorted(RunStorage(storage_url).read(r).results[0].seed for r in runs) == list(range(8))
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------ corrupt runs, names


def test_a_truncated_run_is_named_by_list_and_by_compare_and_the_others_are_listed(tmp_path, capsys):
    storage = RunStorage(str(tmp_path))
    storage.save(_report(_result(1.0)), "good")
    bad = storage.save(_report(_result(1.0)), "bad")
    path = tmp_path / bad.path.rsplit("/", 1)[-1]
    path.write_text(path.read_text()[:200])
    assert cli(["list", "--storage", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "good" in out.out and "0002_bad.json cannot be read" in out.out
    with pytest.raises(StoredRunError, match=r"0002_bad\.json"):
        storage.load("bad")


def test_list_on_a_missing_storage_says_so(tmp_path, capsys):
    assert cli(["list", "--storage", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_names_that_read_as_numbers_are_refused_and_old_ambiguity_is_an_error(tmp_path):
    for name in ("3", "latest", ""):
        with pytest.raises(ValueError):
            check_run_name(name)
    storage = RunStorage(str(tmp_path))
    storage.save(_report(_result(1.0)), "v1")
    storage.save(_report(_result(1.0)), "v2")
    # a run named "1" stored by an older version: "1" could mean either
    (tmp_path / "0003_1.json").write_text((tmp_path / "0002_v2.json").read_text())
    with pytest.raises(StoredRunError, match="ambiguous"):
        storage.resolve("1")
    assert storage.resolve("2").name == "v2"


def test_the_default_baseline_is_the_latest_run_that_passed(tmp_path):
    storage = RunStorage(str(tmp_path))
    storage.save(_report(_result(1.0), outcome="passed"), "release")
    storage.save(_report(_result(2.5), outcome="failed"), "retry")  # a failing CI run, stored
    run, report, why = storage.baseline("latest")
    assert run.name == "release" and "2:retry" in why
    assert storage.baseline("retry")[0].name == "retry"  # named explicitly: that run


def test_a_file_system_without_exclusive_creation_still_numbers_runs_in_order(tmp_path, monkeypatch):
    storage = RunStorage(str(tmp_path))
    real_open = storage.fs.open

    def no_exclusive(path, mode="rb", **kw):
        if "x" in mode:
            raise ValueError("mode 'xb' is not supported here")
        return real_open(path, mode, **kw)

    monkeypatch.setattr(storage.fs, "open", no_exclusive)
    assert [storage.save(_report(), f"v{i}").number for i in range(3)] == [1, 2, 3]
