"""The single-model gate is the pooled gate's rule at design effect 1: deciding by levels
(``stats.levels``) gives the verdict the literal rule on Clopper-Pearson bounds gives, threshold by
threshold, on scores with and without ties, and FAILs exactly when its p-value is below 1 - confidence."""

import numpy as np
import pytest

from pytest_privacy.results import Verdict
from pytest_privacy.stats.gates import fail_p_value, gate
from pytest_privacy.stats.intervals import clopper_pearson
from pytest_privacy.stats.roc import operating_index, roc_counts


def _literal(scores, member, fpr, max_tpr, confidence):
    """The rule as docs/statistics.md states it, on the bounds at every threshold."""
    c = roc_counts(scores, member)
    fpr_low, fpr_high = clopper_pearson(c.fps, c.n_nonmembers, confidence)
    tpr_low, tpr_high = clopper_pearson(c.tps, c.n_members, confidence)
    if np.any((fpr_high <= fpr) & (tpr_low > max_tpr)):
        return Verdict.FAIL
    if operating_index(c, fpr) == 0:
        return Verdict.INCONCLUSIVE
    if np.any((fpr_low[1:] > fpr) & (tpr_high[:-1] <= max_tpr)):
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


@pytest.mark.parametrize("ties", [False, True], ids=["distinct scores", "tied scores"])
def test_the_gate_decides_as_the_literal_rule_on_its_bounds(ties):
    rng = np.random.default_rng(1 + ties)
    seen = set()
    for _ in range(300):
        n = int(rng.integers(20, 3000))
        member = rng.random(n) < 0.5
        scores = rng.normal(member * rng.uniform(0, 2), 1)
        if ties:
            scores = np.round(scores, 1)
        fpr = float(rng.choice([1e-3, 1e-2, 0.1]))
        max_tpr = float(rng.uniform(fpr, 0.6)) + 1e-6  # a limit above chance
        confidence = float(rng.choice([0.9, 0.95, 0.99]))
        g = gate(scores, member, fpr=fpr, max_tpr=max_tpr, confidence=confidence)
        if g.verdict is Verdict.INCONCLUSIVE and "clearly below 0.5" in g.reason:
            continue  # inverted scores: never judged, by either rule
        assert g.verdict is _literal(scores, member, fpr, max_tpr, confidence)
        assert (g.verdict is Verdict.FAIL) == (fail_p_value(scores, member, fpr=fpr, max_tpr=max_tpr) <= 1 - confidence)
        seen.add(g.verdict)
    assert seen == set(Verdict) - {Verdict.MEASURED}  # every verdict was exercised
