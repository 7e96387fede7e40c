"""LiRA's shrunk variances (``variance="shrunk"``, BaVarIA-style empirical Bayes): a literal float64
transcription of the formula, its limits (many references: per-example; one per set or nu0 = inf:
pooled), the prior fit on data drawn from the prior, and the option's errors."""

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from pytest_privacy.attacks import ATTACKS
from pytest_privacy.attacks.lira import (
    LIRA_VARIANCES,
    lira_scores,
    logit_scale,
    shrunk_variance,
)
from pytest_privacy.engine.seeds import balanced_keep


def _as_logits(phi: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(phi), phi], -1)  # label 1: logit_scale = phi


def _literal_shrunk(groups: list[list[np.ndarray]]) -> np.ndarray:
    """A per-cell loop of shrunk_variance's docstring: ``groups[j]`` is cell j's list of groups."""
    ss = np.array([sum(float(((g - g.mean()) ** 2).sum()) for g in cell) for cell in groups])
    d = np.array([sum(max(len(g) - 1, 0) for g in cell) for cell in groups], dtype=float)
    s2 = ss[d > 0] / d[d > 0]
    floor = 1e-5 * np.median(s2[s2 > 0])
    e = [math.log(max(v, floor)) - special.digamma(k / 2) + math.log(k / 2) for v, k in zip(s2, d[d > 0])]
    excess = np.var(e) - np.mean([special.polygamma(1, k / 2) for k in d[d > 0]])
    if excess <= 0:
        return np.full(len(groups), math.exp(np.mean(e)))
    nu0 = 2 * optimize.brentq(lambda x: special.polygamma(1, x) - excess, 1e-8, 1e8)
    s0 = math.exp(np.mean(e) + special.digamma(nu0 / 2) - math.log(nu0 / 2))
    return (nu0 * s0 + ss) / (nu0 + d)


def _heteroscedastic(seed: int, m: int, n: int, a: int = 1):
    """phi ~ N(mu_n + 1.5 sigma_n [IN], sigma_n^2) with log sigma_n ~ N(0, 0.5): per-point variances differ."""
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(0, 3, (n, 1)), np.exp(rng.normal(0, 0.5, (n, 1)))
    keep = balanced_keep(m, n, seed)
    refs = mu + 1.5 * sigma * keep[:, :, None] + sigma * rng.normal(size=(m, n, a))
    target = mu + sigma * rng.normal(size=(n, a))
    return _as_logits(target), _as_logits(refs), np.ones(n, int), keep


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_shrunk_lira_matches_a_literal_float64_transcription(variant):
    m, n, a = 6, 40, 2
    target, refs, labels, keep = _heteroscedastic(0, m, n, a)
    phi_t, phi_r = logit_scale(target, labels[:, None]), logit_scale(refs, labels[:, None])
    cells = [(i, q) for i in range(n) for q in range(a)]
    # IN and OUT each fitted on its own (offline: OUT only).
    sigma_out = np.sqrt(_literal_shrunk([[phi_r[~keep[:, i], i, q]] for i, q in cells])).reshape(n, a)
    sigma_in = np.sqrt(_literal_shrunk([[phi_r[keep[:, i], i, q]] for i, q in cells])).reshape(n, a)
    expected = np.zeros(n)
    for i, q in cells:
        r_in, r_out = phi_r[keep[:, i], i, q], phi_r[~keep[:, i], i, q]
        if variant == "online":
            term = stats.norm.logpdf(phi_t[i, q], np.median(r_in), sigma_in[i, q]) - stats.norm.logpdf(
                phi_t[i, q], np.median(r_out), sigma_out[i, q]
            )
        else:
            term = stats.norm.logcdf((phi_t[i, q] - np.median(r_out)) / sigma_out[i, q])
        expected[i] += term / a
    got = lira_scores(target, refs, labels, keep, variant=variant, variance="shrunk")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_many_references_approach_the_per_example_variance():
    # d = 1998 per cell: sigma^2 = (nu0 s0^2 + SS) / (nu0 + d) is within nu0 / d of SS / d.
    _, refs, labels, keep = _heteroscedastic(1, 2000, 30)
    phi = logit_scale(refs, labels[:, None])
    sigma, nu0, _ = shrunk_variance(phi, [~keep[:, :, None]])
    per_example = np.std(np.where(~keep[:, :, None], phi, np.nan), axis=0, ddof=1, where=~keep[:, :, None])
    assert 0 < nu0 < 100
    np.testing.assert_allclose(sigma, per_example, rtol=0.02)
    # nu0 = 0 is the per-example variance (ddof=1) exactly.
    np.testing.assert_allclose(shrunk_variance(phi, [~keep[:, :, None]], prior_df=0)[0], per_example, rtol=1e-12)


def test_an_infinitely_strong_prior_or_equal_variances_give_the_pooled_variance():
    _, refs, labels, keep = _heteroscedastic(2, 8, 50)
    phi = logit_scale(refs, labels[:, None])
    sigma, nu0, s0 = shrunk_variance(phi, [keep[:, :, None]], prior_df=np.inf)
    np.testing.assert_allclose(sigma, math.sqrt(s0))
    # Homoscedastic data: the spread of the sample variances is sampling noise alone, nu0 is large.
    rng = np.random.default_rng(3)
    flat = rng.normal(size=(8, 4000, 1)) + rng.normal(0, 3, (1, 4000, 1))
    sigma, nu0, s0 = shrunk_variance(flat, [np.ones((8, 4000, 1), bool)])
    assert nu0 > 200 and abs(s0 - 1) < 0.05
    assert np.ptp(sigma) < 0.05


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_one_reference_per_set_is_the_fixed_variance(variant):
    # Two references with balanced keep: one IN and one OUT per point, nothing to pool within points.
    target, refs, labels, keep = _heteroscedastic(4, 2, 60, 3)
    np.testing.assert_allclose(
        lira_scores(target, refs, labels, keep, variant=variant, variance="shrunk"),
        lira_scores(target, refs, labels, keep, variant=variant, fixed_variance=True),
        rtol=1e-12,
    )


def test_the_prior_is_recovered_from_data_drawn_from_it():
    # sigma_j^2 ~ Scaled-Inv-chi^2(nu0 = 8, s0^2 = 2), three values per cell (d = 2).
    rng = np.random.default_rng(5)
    n = 40000
    sigma2 = 8 * 2.0 / rng.chisquare(8, n)
    phi = rng.normal(0, 1, (3, n, 1)) * np.sqrt(sigma2)[None, :, None] + rng.normal(0, 5, (1, n, 1))
    _, nu0, s0 = shrunk_variance(phi, [np.ones((3, n, 1), bool)])
    assert 6.0 < nu0 < 11.0 and abs(s0 - 2.0) < 0.15


def test_the_fixed_variance_flag_and_the_variance_option_agree():
    target, refs, labels, keep = _heteroscedastic(6, 4, 20)
    for variant in ("online", "offline"):
        np.testing.assert_array_equal(
            lira_scores(target, refs, labels, keep, variant=variant, fixed_variance=True),
            lira_scores(target, refs, labels, keep, variant=variant, variance="fixed"),
        )
        np.testing.assert_array_equal(
            lira_scores(target, refs, labels, keep, variant=variant),
            lira_scores(target, refs, labels, keep, variant=variant, variance="per_example"),
        )


def test_the_shrunk_attacks_are_registered_in_the_lira_suite():
    for name in ("lira_shrunk", "lira_offline_shrunk"):
        assert ATTACKS[name].suite == "lira" and ATTACKS[name].needs_references
        assert "shrunk" in ATTACKS[name].description


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"variance": "bogus"}, r"variance must be one of \('per_example', 'fixed', 'shrunk'\)"),
        ({"variance": "shrunk", "fixed_variance": True}, "contradicts"),
        ({"variance": "fixed", "prior_df": 3.0}, "prior_df"),
        ({"variance": "shrunk", "prior_df": -1.0}, "prior_df"),
        ({"variance": "shrunk", "keep": None}, "needs keep"),
        ({"variance": "shrunk", "keep": np.ones((4, 5), int)}, "bool array"),
    ],
)
def test_shrinkage_option_errors(kwargs, match):
    rng = np.random.default_rng(7)
    args = {"keep": balanced_keep(4, 5, 0), **kwargs}
    with pytest.raises(ValueError, match=match):
        lira_scores(rng.normal(size=(5, 3)), rng.normal(size=(4, 5, 3)), np.zeros(5, int), **args)
    assert LIRA_VARIANCES == ("per_example", "fixed", "shrunk")


def test_shrinkage_checks_shapes_like_the_other_variances():
    with pytest.raises(ValueError, match="same points"):
        lira_scores(np.zeros((5, 2, 3)), np.zeros((4, 6, 2, 3)), np.zeros(5, int), balanced_keep(4, 6, 0), variance="shrunk")
    with pytest.raises(ValueError, match="fallback"):
        shrunk_variance(np.zeros((1, 3, 1)), [np.ones((1, 3, 1), bool)])


def test_exact_ties_keep_every_variance_positive_and_scores_finite():
    # Saturated points (every reference agrees exactly) have SS = 0; the prior keeps sigma > 0.
    target, refs, labels, keep = _heteroscedastic(8, 8, 50)
    refs[:, :10] = refs[:1, :10]
    for variant in ("online", "offline"):
        assert np.isfinite(lira_scores(target, refs, labels, keep, variant=variant, variance="shrunk")).all()


def test_groups_are_centred_on_their_own_means_and_share_one_variance():
    _, refs, labels, keep = _heteroscedastic(9, 6, 30)
    phi = logit_scale(refs, labels[:, None])
    groups = [[phi[keep[:, i], i, 0], phi[~keep[:, i], i, 0]] for i in range(30)]
    sigma, _, _ = shrunk_variance(phi, [keep[:, :, None], ~keep[:, :, None]])
    np.testing.assert_allclose(sigma[:, 0] ** 2, _literal_shrunk(groups), rtol=1e-9)
