"""The one-run audit of a DP claim, end to end: canaries drawn and trained in with probability 1/2,
scored by the model, and the gate's three verdicts for real reasons."""

import numpy as np
import pytest
from helpers import noise_labels

from pytest_privacy import (
    PrivacyInconclusiveError,
    PrivacyLeakError,
    PrivacyTrainer,
    assert_dp_claim_holds,
)
from pytest_privacy.audit.canaries import CanarySet
from pytest_privacy.engine.store import ModelStore
from pytest_privacy.report import recording


def test_canaries_are_mislabelled_half_included_and_scored_by_their_label():
    y = np.arange(1000) % 5
    c = CanarySet.draw(y, 400, seed=3)
    again = CanarySet.draw(y, 400, seed=3)
    np.testing.assert_array_equal(c.index, again.index)
    np.testing.assert_array_equal(c.included, again.included)
    assert (c.labels != y[c.index]).all() and 150 < c.included.sum() < 250  # 200 +- 3.5 sd
    y_train, keep = c.training_set(y)
    assert (y_train[c.index] == c.labels).all() and keep.sum() == 1000 - (~c.included).sum()
    assert not keep[c.index[~c.included]].any()
    logits = np.random.default_rng(0).normal(size=(1000, 5))
    expected = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(c.scores(logits), expected[c.index, c.labels], rtol=1e-12)
    for bad in (1, 501, 2.5, True):
        with pytest.raises(ValueError, match="n_canaries"):
            CanarySet.draw(y, bad, seed=0)


def _memorise(x, y, *, seed, device):
    """1-nearest-neighbour logits: recalls every training label (canaries included), so a model
    trained on a canary gives its wrong label a high probability, and one that did not, a low one."""
    flat_train = x.reshape(len(x), -1)
    classes = 5

    def logits(xb):
        flat = np.asarray(xb, dtype=np.float32).reshape(len(xb), -1)
        d2 = ((flat[:, None, :] - flat_train[None]) ** 2).sum(-1)
        out = np.zeros((len(flat), classes))
        out[np.arange(len(flat)), y[d2.argmin(1)]] = 8.0 * (d2.min(1) < 1e-9)
        return out

    return logits


def _ignore_data(x, y, *, seed, device):
    return lambda xb: np.zeros((len(xb), 5))  # trained on nothing: no canary can be told apart


def _fixed_features(x, y, *, seed, device):
    """Outputs that depend on the input but on no training label: private, and not constant."""
    w = np.random.default_rng(99).normal(size=(x[0].size, 5))
    return lambda xb: np.asarray(xb, dtype=np.float64).reshape(len(xb), -1) @ w


def test_the_gate_fails_a_false_claim_passes_an_honest_one_and_says_when_it_cannot_tell(tmp_path):
    data = noise_labels(1200, 6, classes=5)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    leaky = trainer.canary_run(_memorise, data, n_canaries=600, seed=0)
    assert trainer.models_trained == 1 and leaky.trained
    assert leaky.scores[leaky.included].min() > leaky.scores[~leaky.included].max()  # perfect separation
    with recording() as results, pytest.raises(PrivacyLeakError, match="claim violated"):
        assert_dp_claim_holds(leaky, epsilon=1.0, delta=1e-5)
    [r] = results
    assert r.epsilon_low > 1.0 and r.verdict.value == "fail"
    # The same run against a claim above what 600 canaries can show: cannot detect, never PASS.
    with pytest.raises(PrivacyInconclusiveError, match="cannot detect"):
        assert_dp_claim_holds(leaky, epsilon=50.0, delta=1e-5)
    honest = trainer.canary_run(_fixed_features, data, n_canaries=600, seed=0)
    with recording() as results:
        assert_dp_claim_holds(honest, epsilon=1.0, delta=1e-5)
    [r] = results
    assert r.verdict.value == "pass" and r.epsilon_low <= 1.0 < r.max_detectable
    # A model that ignored its data (constant outputs) passed silently once: its canaries left no trace.
    constant = trainer.canary_run(_ignore_data, data, n_canaries=600, seed=0)
    with pytest.raises(PrivacyInconclusiveError, match="the canaries left no trace"):
        assert_dp_claim_holds(constant, epsilon=1.0, delta=1e-5)
    cached = PrivacyTrainer(store=ModelStore(tmp_path)).canary_run(_memorise, data, n_canaries=600, seed=0)
    assert not cached.trained
    np.testing.assert_array_equal(cached.scores, leaky.scores)
    with pytest.raises(ValueError, match="epsilon must be"):
        assert_dp_claim_holds(leaky, epsilon=-1, delta=1e-5)
    with pytest.raises(TypeError, match="canary run"):
        assert_dp_claim_holds(data, epsilon=1.0, delta=1e-5)
