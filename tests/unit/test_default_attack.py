"""Helpers that name no attack run the default for the audit's references: RMIA online's ratio
(``rmia_ratio``) with 4 references or fewer, LiRA with more; a named attack always runs as named,
and each look of an ``n_references="auto"`` audit picks its own."""

import numpy as np
import pytest

from pytest_privacy import (
    MembershipData,
    PrivacyLeakError,
    References,
    Verdict,
    assert_auc_below,
    assert_epsilon_below,
    assert_no_more_vulnerable_than,
    assert_tpr_at_fpr_below,
    measure_attack,
)
from pytest_privacy.attacks.default import FEW_REFERENCES, default_attack
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.report import recording
from pytest_privacy.stats.looks import AUTO_SCHEDULE, AdaptiveReferences

N = 600


def _gaussian(m: int, shift: float, seed: int = 0) -> tuple[MembershipData, object]:
    """Point n's true-label logit is ``mu_n + shift`` in a model that trained on it, ``mu_n``
    otherwise (plus noise): an audit with ``m`` references and the target as a callable on ``x = n``."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 3, N)
    member = rng.random(N) < 0.5
    keep = balanced_keep(m, N, seed)
    as_logits = lambda phi: np.stack([np.zeros_like(phi), phi], -1)  # noqa: E731
    refs = References(as_logits(mu + shift * keep + rng.normal(size=(m, N))), keep, seed=seed)
    target = as_logits(mu + shift * member + rng.normal(size=N))
    x = np.arange(N, dtype=np.float32)[:, None]
    return MembershipData(x, np.ones(N, int), member, refs), lambda xb: target[xb[:, 0].astype(int)]


@pytest.mark.parametrize("m,expected", [(2, "rmia_ratio"), (4, "rmia_ratio"), (6, "lira"), (16, "lira")])
def test_the_default_follows_the_number_of_references(m, expected):
    data, model = _gaussian(m, 2.0)
    assert default_attack(data) == expected
    with recording():
        r = measure_attack(model, data, fpr=0.05)
        named = measure_attack(model, data, fpr=0.05, attack=expected)
    assert r.attack == expected and r.n_references == m
    assert (r.tpr, r.tpr_low, r.variant) == (named.tpr, named.tpr_low, named.variant)


def test_a_named_attack_runs_as_named_with_few_references():
    data, model = _gaussian(FEW_REFERENCES, 2.0)
    with recording() as family, pytest.raises(PrivacyLeakError):
        assert measure_attack(model, data, fpr=0.05, attack="lira").attack == "lira"
        assert_tpr_at_fpr_below(model, data, fpr=[0.01, 0.05], max_tpr=0.1)  # the shift of 2 leaks: FAIL
    assert [r.attack for r in family[1:]] == ["rmia_ratio", "rmia_ratio"]


def test_without_references_the_default_is_lira_and_says_it_needs_them():
    data, model = _gaussian(4, 2.0)
    bare = MembershipData(data.x, data.y, data.is_member)
    assert default_attack(bare) == "lira"
    with recording(), pytest.raises(ValueError, match="needs reference models"):
        measure_attack(model, bare, fpr=0.05)


def test_every_helper_uses_the_same_default():
    data, model = _gaussian(4, 2.0)
    with recording():
        assert assert_auc_below(model, data, max_auc=1.0).attack == "rmia_ratio"
        assert assert_epsilon_below(model, data, max_epsilon=50.0).attack == "rmia_ratio"
        assert assert_no_more_vulnerable_than(model, model, data, fpr=0.05).attack == "rmia_ratio"


def test_each_auto_look_picks_its_own_default():
    # A clear leak stops at the first look, with 4 references: RMIA's ratio. A model that leaks
    # nothing stays INCONCLUSIVE at a strict limit and looks up to 64 references: LiRA there.
    def adaptive(shift: float) -> tuple[object, MembershipData]:
        built = {m: _gaussian(m, shift) for m in AUTO_SCHEDULE}
        model = built[AUTO_SCHEDULE[0]][1]
        return model, AdaptiveReferences(lambda m: built[m][0]).at(AUTO_SCHEDULE[0])

    from pytest_privacy import PrivacyInconclusiveWarning, PrivacyLeakError

    with recording() as leaked, pytest.raises(PrivacyLeakError):
        assert_tpr_at_fpr_below(*adaptive(3.0), fpr=0.05, max_tpr=0.1)
    [first] = leaked
    assert (first.attack, first.n_references, first.verdict) == ("rmia_ratio", 4, Verdict.FAIL)
    assert "auto references: 4 after looks at 4 (decided)" in first.variant

    # A limit just above chance at FPR 0.05: the counts could decide it (FAIL and PASS are both in
    # reach), the data never do, so every planned look runs.
    with recording() as undecided, pytest.warns(PrivacyInconclusiveWarning):
        assert_tpr_at_fpr_below(*adaptive(0.0), fpr=0.05, max_tpr=0.06, on_inconclusive="warn")
    [last] = undecided
    assert (last.attack, last.n_references, last.verdict) == ("lira", 64, Verdict.INCONCLUSIVE)
    assert "looks at 4, 8, 16, 32, 64" in last.variant
    # At FPR 0.01 with a limit of 0.011 the counts cannot decide at any look: it stops at the first.
    with recording() as stuck, pytest.warns(PrivacyInconclusiveWarning):
        assert_tpr_at_fpr_below(*adaptive(0.0), fpr=0.01, max_tpr=0.011, on_inconclusive="warn")
    assert stuck[0].n_references == 4 and "more references cannot decide" in stuck[0].variant


def test_a_measurement_records_numbers_and_no_verdict():
    """``measure_attack``: the TPR gate's numbers with verdict MEASURED, recorded, never raising (even on
    a model that leaks); reports say it was held to no limit; stored runs name it as a measurement."""
    from pytest_privacy.report.compare import gate_key
    from pytest_privacy.report.markdown import format_markdown
    from pytest_privacy.report.session_report import build_report
    from pytest_privacy.report.summary import format_summary, session_outcome
    from pytest_privacy.stats.roc import tpr_at_fpr

    data, model = _gaussian(16, 2.0)  # a clear leak: a gate at max_tpr=0.1 would FAIL
    with recording() as results:
        r = measure_attack(model, data, fpr=0.05)
    assert results == [r] and r.verdict is Verdict.MEASURED and r.gate == "measure" and r.max_tpr is None
    scores = __import__("pytest_privacy").attack_scores(model, data, "lira").scores
    assert r.tpr_at_fpr == pytest.approx(tpr_at_fpr(scores, data.is_member, 0.05))
    assert r.tpr_low <= r.tpr <= r.tpr_high and r.tpr > 0.1
    [line] = format_summary([r.model_copy(update={"test_id": "t"})])
    assert line.startswith("MEASURED") and "no limit" in line
    report = build_report([r], {}, models_trained=0, models_loaded=0, seconds_training=0.0, cache_keys=[])
    assert "none (a measurement)" in format_markdown(report) and "measure:fpr=0.05" in gate_key(r)
    assert "1 measured" in session_outcome(report.model_copy(update={"outcome": "passed"}))[1]
    with pytest.raises(ValueError, match="fpr"):
        measure_attack(model, data, fpr=0.0)


def test_a_model_more_vulnerable_than_its_baseline_fails_with_both_side_by_side():
    data, leaky = _gaussian(16, 3.0)
    _, quiet = _gaussian(16, 0.0)  # the same points, a model whose scores carry no membership
    with recording() as results, pytest.raises(PrivacyLeakError) as failure:
        assert_no_more_vulnerable_than(leaky, quiet, data, fpr=0.05, attack="lira")
    [r] = results
    assert r.verdict is Verdict.FAIL and r.diff_low > 0 and "paired bootstrap" in r.reason
    message = str(failure.value)
    assert "this model" in message and "baseline" in message and f"{r.tpr:.4f}" in message
    assert f"{r.tpr_baseline:.4f}" in message and "> margin 0" in message


def test_every_lira_result_says_whether_its_gaussian_model_fits_and_warns_when_not():
    """LiRA's results carry the Gaussian-fit check of their references (summary, JSON, HTML); a
    heavy-tailed audit warns with the points that violate the model most."""
    from pytest_privacy import GaussianFitWarning
    from pytest_privacy.report.summary import format_summary

    data, model = _gaussian(16, 1.0)
    with recording():
        r = measure_attack(model, data, fpr=0.05, attack="lira")
    assert r.gaussian_fit is not None and not r.gaussian_fit.rejected and r.gaussian_fit.n_points == N
    assert "Gaussian fit: p=" in format_summary([r])[0]
    with recording():
        assert measure_attack(model, data, fpr=0.05, attack="loss").gaussian_fit is None  # no model to check

    rng = np.random.default_rng(5)
    keep = balanced_keep(16, N, 0)
    heavy = rng.normal(size=N)[None] + keep + rng.standard_t(1.5, size=(16, N))
    refs = References(np.stack([np.zeros_like(heavy), heavy], -1), keep, seed=0)
    tailed = MembershipData(data.x, data.y, data.is_member, refs)
    with recording(), pytest.warns(GaussianFitWarning, match="does not fit this audit"):
        r = measure_attack(model, tailed, fpr=0.05, attack="lira")
    assert r.gaussian_fit.rejected and len(r.gaussian_fit.worst) == 5
    assert "does not fit (worst points" in format_summary([r])[0]
    # a family checks once per attack: one warning, the same check on every member
    import warnings as _warnings

    with recording(), _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            assert_tpr_at_fpr_below(model, tailed, attack="lira", fpr=[0.05, 0.1], max_tpr=0.9, on_inconclusive="warn")
        except PrivacyLeakError:
            pass
    fit_warnings = [w for w in caught if issubclass(w.category, GaussianFitWarning)]
    assert len(fit_warnings) == 1
