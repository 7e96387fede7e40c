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


def test_mislabelled_canaries_are_half_included_and_scored_by_their_label():
    y = np.arange(1000) % 5
    x = np.random.default_rng(1).normal(size=(1000, 3)).astype(np.float32)
    c = CanarySet.draw(x, y, 400, seed=3, kind="mislabelled")
    again = CanarySet.draw(x, y, 400, seed=3, kind="mislabelled")
    np.testing.assert_array_equal(c.rows, again.rows)
    np.testing.assert_array_equal(c.included, again.included)
    assert (c.labels != y[c.rows]).all() and 150 < c.included.sum() < 250  # 200 +- 3.5 sd
    x_train, y_train, keep = c.training_set(x, y)
    assert x_train is x and (y_train[c.rows] == c.labels).all() and keep.sum() == 1000 - (~c.included).sum()
    assert not keep[c.rows[~c.included]].any()
    logits = np.random.default_rng(0).normal(size=(1000, 5))
    expected = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(c.scores(logits), expected[c.rows, c.labels], rtol=1e-12)
    for bad in (1, 501, 2.5, True):
        with pytest.raises(ValueError, match="n_canaries"):
            CanarySet.draw(x, y, bad, seed=0, kind="mislabelled")
    with pytest.raises(ValueError, match="Did you mean 'input'"):
        CanarySet.draw(x, y, 10, seed=0, kind="inputs")


def test_input_canaries_are_new_rows_out_of_the_data_and_leave_the_data_untouched():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 6)).astype(np.float32), np.arange(500) % 5
    c = CanarySet.draw(x, y, 300, seed=3)  # the default kind: input-space canaries
    assert c.kind == "input" and c.inputs.shape == (300, 6) and c.inputs.dtype == np.float32
    x_train, y_train, keep = c.training_set(x, y)
    np.testing.assert_array_equal(x_train[:500], x)
    np.testing.assert_array_equal(y_train[:500], y)  # no data point relabelled
    assert keep[:500].all() and (keep[500:] == c.included).all() and (c.rows == np.arange(500, 800)).all()
    # outside the data: far from its mean (each of the pattern's 3 coefficients at least 6 sd, so the
    # distance is at least 6 sd per feature on average), and along the directions it varies least:
    # the data's variance along each canary's direction is below its median principal variance
    offsets = (c.inputs - x.mean(0)).astype(np.float64)
    assert (np.linalg.norm(offsets, axis=1) >= 6 * x.std() * np.sqrt(6) * (1 - 1e-5)).all()
    directions = offsets / np.linalg.norm(offsets, axis=1, keepdims=True)
    variance_along = np.einsum("md,de,me->m", directions, np.cov(x.astype(np.float64), rowvar=False), directions)
    assert variance_along.max() <= np.median(np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False)))
    wide = CanarySet.draw(rng.normal(size=(50, 5000)).astype(np.float32), y[:50], 10, seed=0)
    assert wide.inputs.shape == (10, 5000)  # beyond the covariance's size: a sign pattern over every feature
    ids = rng.integers(0, 1000, size=(500, 6)) + 123_456_789
    c_ids = CanarySet.draw(ids, y, 50, seed=0)
    assert c_ids.inputs.dtype == ids.dtype and c_ids.inputs.min() >= ids.min() and c_ids.inputs.max() <= ids.max()


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


def test_a_gaussian_dp_claim_is_decided_by_the_f_dp_reading(tmp_path):
    """``mu=``: the Gaussian curve tested by the f-DP reading; the same three verdicts for the same
    reasons, the claim's identity its mu, and the result saying which bound decided."""
    from pytest_privacy.report.compare import gate_key

    data = noise_labels(1200, 6, classes=5)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    leaky = trainer.canary_run(_memorise, data, n_canaries=600, seed=0)
    with recording() as results, pytest.raises(PrivacyLeakError, match="mu >= .* > 1"):
        assert_dp_claim_holds(leaky, mu=1.0)
    [r] = results
    assert r.mu_claim == 1.0 and r.reading.startswith("f-DP") and r.gdp_mu_low > 1.0
    assert r.delta == 1e-5 and r.epsilon_claim > 1.0  # mu = 1 means epsilon 4.38 at delta 1e-5
    assert "dp_claim:mu=1.0" in gate_key(r)
    with pytest.raises(PrivacyInconclusiveError, match="cannot detect"):
        assert_dp_claim_holds(leaky, mu=15.0)
    honest = trainer.canary_run(_fixed_features, data, n_canaries=600, seed=0)
    with recording() as results:
        assert_dp_claim_holds(honest, mu=0.5, delta=1e-6)
    [r] = results
    assert r.verdict.value == "pass" and r.gdp_mu_low <= 0.5 and r.delta == 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no claim given"),
        ({"epsilon": 1.0}, "needs its delta"),
        ({"epsilon": 1.0, "delta": 1e-5, "mu": 0.5}, "not both"),
        ({"mu": float("inf")}, "mu must be"),
        ({"mu": True}, "mu must be"),
        ({"mu": 0}, "mu must be"),
        ({"mu": 0.5, "delta": 1.5}, "delta must be"),
        ({"mu": 0.5, "delta": 0.0}, "no finite epsilon at delta 0"),
    ],
)
def test_a_claim_that_says_nothing_or_two_things_is_an_error(kwargs, message):
    run = type("Run", (), {"scores": np.zeros(4), "included": np.array([True, False] * 2)})()
    with pytest.raises(ValueError, match=message):
        assert_dp_claim_holds(run, **kwargs)
