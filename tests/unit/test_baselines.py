"""Population baselines against direct probability formulas."""

import numpy as np
import pytest

from pytest_privacy.attacks import (
    ATTACKS,
    SUITES,
    expand_attacks,
    get_attack,
    suite_attacks,
)
from pytest_privacy.attacks.baselines import (
    confidence_scores,
    entropy_scores,
    loss_scores,
    modified_entropy_scores,
)


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 4)) * 3, rng.integers(0, 4, 20)


def test_baselines_match_probability_formulas(logits):
    z, y = logits
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    py = p[np.arange(len(y)), y]
    np.testing.assert_allclose(loss_scores(z, y), np.log(py))
    np.testing.assert_allclose(confidence_scores(z, y), p.max(1))
    np.testing.assert_allclose(entropy_scores(z, y), (p * np.log(p)).sum(1))
    wrong = np.where(np.eye(4, dtype=bool)[y], 0.0, p * np.log(1 - p)).sum(1)
    np.testing.assert_allclose(modified_entropy_scores(z, y), (1 - py) * np.log(py) + wrong)


def test_baselines_average_over_queries(logits):
    z, y = logits
    stacked = np.stack([z, z + 1.0], axis=1)  # adding a constant per row changes no probability
    np.testing.assert_allclose(loss_scores(stacked, y), loss_scores(z, y))


def test_registry_and_suites():
    assert get_attack("lira").needs_references and not get_attack("loss").needs_references
    lira = ["lira", "lira_offline", "lira_online_fixed", "lira_online_per_example", "lira_offline_fixed", "lira_offline_per_example",
            "lira_shrunk", "lira_offline_shrunk"]
    assert expand_attacks("lira,loss") == [*lira, "loss"]
    assert set(expand_attacks(["baseline"])) == {"lira_global", "loss", "confidence", "entropy", "modified_entropy", "qmia"}
    # Suites are read from each attack's own suite: nothing registered is left out of one.
    assert sorted(a for s in SUITES for a in suite_attacks(s)) == sorted(ATTACKS)
    with pytest.raises(ValueError, match="Did you mean 'lira_offline'"):
        get_attack("lira_ofline")
    with pytest.raises(ValueError, match="unknown attack or suite 'nope'"):
        expand_attacks("lira,nope")
    assert all(a.description for a in ATTACKS.values())
