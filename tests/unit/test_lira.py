"""LiRA follows DESIGN section 3 to the letter; checked against a per-point scipy loop and a
Gaussian model with a known optimal ROC."""

import math

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.attacks.lira import lira_scores, logit_scale
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.stats.roc import auc


def test_logit_scale_is_log_odds_of_the_true_class():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(7, 3, 5)), rng.integers(0, 5, 7)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    py = p[np.arange(7), :, y]
    np.testing.assert_allclose(logit_scale(z, y[:, None]), np.log(py) - np.log1p(-py), rtol=1e-10)


def test_logit_scale_is_stable_where_softmax_underflows():
    phi = logit_scale(np.array([[800.0, 0.0, 0.0], [-800.0, 0.0, 0.0]]), np.array([0, 0]))
    np.testing.assert_allclose(phi, [800 - math.log(2), -800 - math.log(2)])
    # float32 logits are scored in float64
    assert logit_scale(np.array([[1.0, 0.0]], dtype=np.float32), [0]).dtype == np.float64


def _reference_loop(target, refs, labels, keep, variant, fixed):
    """A literal per-point, per-query transcription of DESIGN section 3."""
    phi_t = logit_scale(target, labels[:, None])
    phi_r = logit_scale(refs, labels[:, None])
    n, a = phi_t.shape
    pooled_in = np.concatenate([phi_r[keep[:, i], i].ravel() for i in range(n)])
    pooled_out = np.concatenate([phi_r[~keep[:, i], i].ravel() for i in range(n)])
    out = np.zeros(n)
    for i in range(n):
        vals = []
        for q in range(a):
            r_in, r_out = phi_r[keep[:, i], i, q], phi_r[~keep[:, i], i, q]
            s_in = (np.std(pooled_in) if fixed else np.std(r_in)) + 1e-30
            s_out = (np.std(pooled_out if variant == "offline" else pooled_in) if fixed else np.std(r_out)) + 1e-30
            if variant == "online":
                vals.append(
                    stats.norm.logpdf(phi_t[i, q], np.median(r_in), s_in)
                    - stats.norm.logpdf(phi_t[i, q], np.median(r_out), s_out)
                )
            else:
                vals.append(stats.norm.logcdf((phi_t[i, q] - np.median(r_out)) / s_out))
        out[i] = np.mean(vals)
    return out


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("fixed", [False, True])
def test_lira_matches_literal_recipe(variant, fixed):
    rng = np.random.default_rng(1)
    m, n, a, c = 8, 12, 3, 4
    refs, target = rng.normal(size=(m, n, a, c)) * 3, rng.normal(size=(n, a, c)) * 3
    labels, keep = rng.integers(0, c, n), balanced_keep(m, n, 0)
    got = lira_scores(target, refs, labels, keep, variant=variant, fixed_variance=fixed)
    np.testing.assert_allclose(got, _reference_loop(target, refs, labels, keep, variant, fixed), rtol=1e-9)


def test_offline_without_keep_treats_every_reference_as_out():
    rng = np.random.default_rng(2)
    refs, target, labels = rng.normal(size=(6, 5, 2, 3)), rng.normal(size=(5, 2, 3)), rng.integers(0, 3, 5)
    all_out = np.zeros((6, 5), bool)
    np.testing.assert_allclose(
        lira_scores(target, refs, labels, None, variant="offline"),
        lira_scores(target, refs, labels, all_out, variant="offline"),
    )


def test_global_is_mean_logit_scale_and_2d_inputs_mean_one_query():
    rng = np.random.default_rng(3)
    target, labels = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    np.testing.assert_allclose(
        lira_scores(target, None, labels, variant="global"), logit_scale(target, labels)
    )
    refs = rng.normal(size=(4, 5, 3))
    keep = balanced_keep(4, 5, 0)
    np.testing.assert_allclose(
        lira_scores(target, refs, labels, keep), lira_scores(target[:, None], refs[:, :, None], labels, keep)
    )


def test_online_lira_is_near_optimal_on_a_gaussian_model():
    # Per point n: phi ~ N(mu_n + d, 1) when trained on, N(mu_n, 1) otherwise. The likelihood
    # ratio is the optimal test, with AUC Phi(d / sqrt(2)); a threshold on raw phi is far worse
    # because mu_n varies between points much more than d.
    rng = np.random.default_rng(4)
    m, n, d = 128, 4000, 1.0
    mu = rng.normal(0, 3, n)
    keep = balanced_keep(m, n, 1)
    phi_refs = mu + d * keep + rng.normal(size=(m, n))
    member = rng.random(n) < 0.5
    phi_target = mu + d * member + rng.normal(size=n)
    as_logits = lambda phi: np.stack([np.zeros_like(phi), phi], -1)  # noqa: E731 - label 1: phi = z1 - z0
    labels = np.ones(n, int)
    optimal = stats.norm.cdf(d / math.sqrt(2))
    se = math.sqrt(optimal * (1 - optimal) / (n / 4))  # generous: AUC's se is below sqrt(p(1-p)/min(n1,n0))
    for fixed in (False, True):
        s = lira_scores(as_logits(phi_target), as_logits(phi_refs), labels, keep, fixed_variance=fixed)
        assert abs(auc(s, member) - optimal) < 4 * se
    s_global = lira_scores(as_logits(phi_target), None, labels, variant="global")
    assert auc(s_global, member) < optimal - 0.1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"keep": None}, "needs keep"),
        ({"keep": np.ones((4, 5), int)}, "bool array"),
        ({"variant": "bogus"}, "variant"),
    ],
)
def test_lira_input_errors(kwargs, match):
    rng = np.random.default_rng(5)
    args = {"keep": balanced_keep(4, 5, 0), **kwargs}
    with pytest.raises(ValueError, match=match):
        lira_scores(rng.normal(size=(5, 3)), rng.normal(size=(4, 5, 3)), np.zeros(5, int), **args)


def test_lira_rejects_mismatched_reference_shapes():
    with pytest.raises(ValueError, match="same points"):
        lira_scores(np.zeros((5, 2, 3)), np.zeros((4, 6, 2, 3)), np.zeros(5, int), balanced_keep(4, 6, 0))
