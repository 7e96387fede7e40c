"""RMIA follows its recipe to the letter (a literal N x Z loop), and with two references it beats
LiRA on a Gaussian model where membership shifts each point's confidence."""

import math

import numpy as np
import pytest

from pytest_privacy.attacks.lira import lira_scores
from pytest_privacy.attacks.rmia import rmia_log_ratio, rmia_scores
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.stats.roc import auc


def _true_prob(logits, label):
    """Softmax probability of ``label`` for one row of logits, written out (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max())
    return e[label] / e.sum()


def _brute_force(target, refs, labels, keep, pop_t, pop_r, pop_y, variant, a, gamma):
    """A literal transcription: every (x, z) pair, probabilities, the ratio of ratios, strict '>'."""
    m, n, n_q, _ = refs.shape
    n_pop = pop_t.shape[0]
    keep = np.zeros((m, n), bool) if keep is None else keep

    def p_model(logits_q, label):  # mean over the A queries of the true-label probability
        return sum(_true_prob(logits_q[q], label) for q in range(n_q)) / n_q

    def p_marginal_x(i):
        ins = [p_model(refs[j, i], labels[i]) for j in range(m) if keep[j, i]]
        outs = [p_model(refs[j, i], labels[i]) for j in range(m) if not keep[j, i]]
        if variant == "offline":
            return ((1 + a) * (sum(outs) / len(outs)) + (1 - a)) / 2
        if not keep.any():
            return sum(ins + outs) / m
        return (sum(ins) / len(ins) + sum(outs) / len(outs)) / 2

    def p_marginal_z(k):
        mean = sum(p_model(pop_r[j, k], pop_y[k]) for j in range(m)) / m
        return ((1 + a) * mean + (1 - a)) / 2 if variant == "offline" else mean

    out = np.zeros(n)
    for i in range(n):
        ratio_x = p_model(target[i], labels[i]) / p_marginal_x(i)
        wins = 0
        for k in range(n_pop):
            ratio_z = p_model(pop_t[k], pop_y[k]) / p_marginal_z(k)
            wins += (ratio_x / ratio_z) > gamma
        out[i] = wins / n_pop
    return out


def _problem(seed, m=4, n=15, n_pop=40, n_q=3, c=4, scale=2.0):
    rng = np.random.default_rng(seed)
    return dict(
        target=rng.normal(size=(n, n_q, c)) * scale,
        refs=rng.normal(size=(m, n, n_q, c)) * scale,
        labels=rng.integers(0, c, n),
        pop_t=rng.normal(size=(n_pop, n_q, c)) * scale,
        pop_r=rng.normal(size=(m, n_pop, n_q, c)) * scale,
        pop_y=rng.integers(0, c, n_pop),
    )


def _rmia(p, keep, **kw):
    return rmia_scores(
        p["target"], p["refs"], p["labels"], keep,
        population_target_logits=p["pop_t"],
        population_reference_logits=p["pop_r"],
        population_labels=p["pop_y"],
        **kw,
    )


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("use_keep", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_rmia_matches_literal_pairwise_loop(variant, use_keep, gamma):
    p = _problem(1)
    keep = balanced_keep(4, 15, 0) if use_keep else None
    a = 0.3
    got = _rmia(p, keep, variant=variant, offline_a=a, gamma=gamma)
    want = _brute_force(p["target"], p["refs"], p["labels"], keep, p["pop_t"], p["pop_r"], p["pop_y"],
                        variant, a, gamma)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.mean() < 1  # the comparison is not vacuous


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_ties_count_as_losses_exactly_as_the_strict_inequality(variant):
    # A population made of copies of the audit points (plus fresh ones): with keep=None every point
    # takes the same path, so each x has LR(x, its copy) == 1 exactly and gamma=1 must not count it.
    p = _problem(2)
    p["pop_t"] = np.concatenate([p["target"], p["pop_t"], p["target"]])
    p["pop_r"] = np.concatenate([p["refs"], p["pop_r"], p["refs"]], axis=1)
    p["pop_y"] = np.concatenate([p["labels"], p["pop_y"], p["labels"]])
    got = _rmia(p, None, variant=variant, gamma=1.0)
    want = _brute_force(p["target"], p["refs"], p["labels"], None, p["pop_t"], p["pop_r"], p["pop_y"],
                        variant, 0.3, 1.0)
    np.testing.assert_array_equal(got, want)
    # A population of exactly two copies of the audit points: each x beats the copies of the points
    # below it and ties with its own, so the scores are the ranks 0, 1, ..., N-1 over N (none is 1).
    p["pop_t"] = np.concatenate([p["target"], p["target"]])
    p["pop_r"] = np.concatenate([p["refs"], p["refs"]], axis=1)
    p["pop_y"] = np.concatenate([p["labels"], p["labels"]])
    got = _rmia(p, None, variant=variant, gamma=1.0)
    np.testing.assert_array_equal(np.sort(got), np.arange(15) / 15)


def test_scores_are_fractions_of_the_population_and_fall_with_gamma():
    p = _problem(3, n=30, n_pop=57)
    keep = balanced_keep(4, 30, 1)
    prev = None
    for gamma in (0.25, 0.5, 1.0, 2.0, 4.0):
        s = _rmia(p, keep, variant="online", gamma=gamma)
        assert s.shape == (30,) and s.dtype == np.float64
        assert ((s >= 0) & (s <= 1)).all()
        np.testing.assert_allclose(s * 57, np.round(s * 57), atol=1e-9)
        if prev is not None:
            assert (s <= prev).all()
        prev = s


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_adding_a_constant_to_each_row_of_logits_changes_nothing(variant):
    p = _problem(4)
    rng = np.random.default_rng(40)
    shifted = {
        k: (v + rng.normal(0, 5, v.shape[:-1])[..., None] if k in ("target", "refs", "pop_t", "pop_r") else v)
        for k, v in p.items()
    }
    keep = balanced_keep(4, 15, 2)
    np.testing.assert_array_equal(_rmia(shifted, keep, variant=variant), _rmia(p, keep, variant=variant))


def test_offline_keep_none_means_all_out_and_2d_inputs_mean_one_query():
    p = _problem(5, n_q=1)
    np.testing.assert_array_equal(
        _rmia(p, None, variant="offline"), _rmia(p, np.zeros((4, 15), bool), variant="offline")
    )
    flat = {k: (v[..., 0, :] if v.ndim >= 3 else v) for k, v in p.items()}
    keep = balanced_keep(4, 15, 3)
    np.testing.assert_array_equal(_rmia(flat, keep, variant="online"), _rmia(p, keep, variant="online"))


def test_offline_a_one_is_the_uncorrected_out_mean():
    # a = 1 means p(x) = p_OUT(x): with keep=None that is the online plain mean.
    p = _problem(6)
    np.testing.assert_array_equal(
        _rmia(p, None, variant="offline", offline_a=1.0), _rmia(p, None, variant="online")
    )


def test_extreme_logits_do_not_underflow():
    # Probabilities of e^-1000 underflow to 0 in float64; the log-domain recipe still ranks them.
    p = _problem(7, n_q=1, c=2)
    for k in ("target", "refs", "pop_t", "pop_r"):
        p[k] = p[k] * 400
    s = _rmia(p, balanced_keep(4, 15, 4), variant="offline")
    assert np.isfinite(s).all() and 0 < s.mean() < 1


def _gaussian_model(m: int, n: int, n_pop: int, d: float, seed: int = 11):
    """As in test_lira: per point, phi ~ N(mu_n + d, 1) when trained on, N(mu_n, 1) otherwise, with
    2-class logits [0, phi] and label 1; population points are never trained on. Returns the audit's
    (target, references, labels, keep), the population keywords of rmia_scores and the membership."""
    rng = np.random.default_rng(seed)
    as_logits = lambda phi: np.stack([np.zeros_like(phi), phi], -1)  # noqa: E731
    mu, mu_pop = rng.normal(0, 3, n), rng.normal(0, 3, n_pop)
    keep = balanced_keep(m, n, 1)
    member = rng.random(n) < 0.5
    phi_refs = mu + d * keep + rng.normal(size=(m, n))
    phi_target = mu + d * member + rng.normal(size=n)
    pop_t, pop_r = mu_pop + rng.normal(size=n_pop), mu_pop + rng.normal(size=(m, n_pop))
    args = (as_logits(phi_target), as_logits(phi_refs), np.ones(n, int), keep)
    pop = dict(
        population_target_logits=as_logits(pop_t),
        population_reference_logits=as_logits(pop_r),
        population_labels=np.ones(n_pop, int),
    )
    return args, pop, member


def test_rmia_beats_lira_with_two_references_on_a_gaussian_model():
    # With one IN and one OUT reference per point, LiRA's mu_in - mu_out is N(d, 2) and often has the
    # wrong sign; RMIA's ratio to the reference mean does not depend on that difference.
    n = 4000
    args, pop, member = _gaussian_model(m=2, n=n, n_pop=2000, d=1.0)
    auc_on = auc(rmia_scores(*args, variant="online", **pop), member)
    auc_off = auc(rmia_scores(*args, variant="offline", **pop), member)
    auc_lira = auc(lira_scores(*args, fixed_variance=True), member)
    # The AUC's standard error is below sqrt(p(1 - p) / min(n1, n0)) <= sqrt(0.25 / (n / 4)) = 0.016
    # (~2,000 of each class): 3 se above 0.5 is "clearly above chance"; 1 se is the slack for "not worse".
    se = math.sqrt(0.25 / (n / 4))
    print(f"AUC: RMIA online {auc_on:.4f}, RMIA offline {auc_off:.4f}, LiRA online fixed-var {auc_lira:.4f}")
    assert auc_on > 0.5 + 3 * se and auc_off > 0.5 + 3 * se
    assert auc_on >= auc_lira - se and auc_off >= auc_lira - se
    # What the comparison shows with this seed: online 0.691, offline 0.637, LiRA 0.612.
    assert auc_on > auc_lira + se


def _kwargs(**over):
    p = _problem(8)
    kw = dict(
        target_logits=p["target"], reference_logits=p["refs"], labels=p["labels"],
        keep=balanced_keep(4, 15, 0), population_target_logits=p["pop_t"],
        population_reference_logits=p["pop_r"], population_labels=p["pop_y"],
    )
    kw.update(over)
    return kw


@pytest.mark.parametrize(
    "over,match",
    [
        ({"variant": "bogus"}, "variant"),
        ({"offline_a": 1.5}, "offline_a"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": float("inf")}, "gamma"),
        ({"keep": np.ones((4, 15), int)}, "bool array"),
        ({"keep": np.ones((4, 15), bool)}, "OUT reference"),
        ({"reference_logits": np.zeros((4, 16, 3, 4))}, "same points"),
        ({"labels": np.zeros(14, int)}, r"shape \(15,\)"),
        ({"labels": np.full(15, 4)}, "class indices"),
        ({"population_target_logits": np.zeros((0, 3, 4)),
          "population_reference_logits": np.zeros((4, 0, 3, 4)), "population_labels": np.zeros(0, int)},
         "population is empty"),
        ({"population_target_logits": np.zeros((40, 2, 4))}, "same queries"),
        ({"population_reference_logits": np.zeros((3, 40, 3, 4))}, "same 4 reference"),
        ({"population_labels": np.zeros(39, int)}, "population_labels"),
        ({"target_logits": np.full((15, 3, 4), np.nan)}, "NaN/inf"),
        ({"population_reference_logits": np.full((4, 40, 3, 4), -np.inf)}, "NaN/inf"),
        ({"target_logits": np.zeros((15, 3, 4, 1, 1))}, "axes"),
    ],
)
def test_rmia_input_errors(over, match):
    with pytest.raises(ValueError, match=match):
        rmia_scores(**_kwargs(**over))


def test_online_with_keep_needs_in_and_out_references():
    keep = balanced_keep(4, 15, 0)
    keep[:, 0] = False
    with pytest.raises(ValueError, match="IN and an OUT"):
        rmia_scores(**_kwargs(keep=keep, variant="online"))


# ------------------------------------------------------------------ the ratio: RMIA with no population


def _literal_ratio(target, refs, labels, keep, variant, a):
    """``p(x|theta) / p(x)`` per point, written out as in _brute_force (float64)."""
    m, n, n_q, _ = refs.shape
    keep = np.zeros((m, n), bool) if keep is None else keep

    def p_model(logits_q, label):
        return sum(_true_prob(logits_q[q], label) for q in range(n_q)) / n_q

    out = np.zeros(n)
    for i in range(n):
        ins = [p_model(refs[j, i], labels[i]) for j in range(m) if keep[j, i]]
        outs = [p_model(refs[j, i], labels[i]) for j in range(m) if not keep[j, i]]
        if variant == "offline":
            marginal = ((1 + a) * (sum(outs) / len(outs)) + (1 - a)) / 2
        elif not keep.any():
            marginal = sum(ins + outs) / m
        else:
            marginal = (sum(ins) / len(ins) + sum(outs) / len(outs)) / 2
        out[i] = math.log(p_model(target[i], labels[i]) / marginal)
    return out


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("use_keep", [True, False])
def test_ratio_matches_literal_loop(variant, use_keep):
    p = _problem(12)
    keep = balanced_keep(4, 15, 5) if use_keep else None
    got = rmia_log_ratio(p["target"], p["refs"], p["labels"], keep, variant=variant, offline_a=0.3)
    want = _literal_ratio(p["target"], p["refs"], p["labels"], keep, variant, 0.3)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_rmia_scores_are_a_non_decreasing_function_of_the_ratio(seed, gamma):
    # The claim rmia_ratio rests on: for any population, a higher ratio never gets a lower RMIA
    # score, so every threshold on the score is a threshold on the ratio.
    p = _problem(20 + seed, n=200, n_pop=60)
    keep = balanced_keep(4, 200, seed)
    ratio = rmia_log_ratio(p["target"], p["refs"], p["labels"], keep)
    score = _rmia(p, keep, variant="online", gamma=gamma)
    order = np.argsort(ratio, kind="stable")
    assert (np.diff(score[order]) >= 0).all()
    assert len(np.unique(score)) < len(np.unique(ratio))  # the population's 1/Z grid merges points


def test_the_ratio_reaches_every_operating_point_of_rmia():
    # On _gaussian_model: at every FPR the ratio's empirical TPR is at
    # least RMIA online's with a 500-point population (ties merge thresholds, they never add one),
    # and strictly above it at 0.1% FPR, where the population's grid is too coarse.
    from pytest_privacy.stats.roc import tpr_at_fpr

    args, pop, member = _gaussian_model(m=4, n=4000, n_pop=500, d=1.5)
    score = rmia_scores(*args, variant="online", **pop)
    ratio = rmia_log_ratio(*args)
    for fpr in (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3):
        assert tpr_at_fpr(ratio, member, fpr) >= tpr_at_fpr(score, member, fpr)
    assert tpr_at_fpr(ratio, member, 1e-3) > tpr_at_fpr(score, member, 1e-3)


@pytest.mark.parametrize(
    "over,match",
    [
        ({"variant": "bogus"}, "variant"),
        ({"offline_a": -0.1}, "offline_a"),
        ({"keep": np.ones((4, 15), bool)}, "OUT reference"),
        ({"reference_logits": np.zeros((0, 15, 3, 4))}, "at least one reference"),
        ({"labels": np.full(15, 4)}, "class indices"),
    ],
)
def test_ratio_input_errors(over, match):
    kw = {k: v for k, v in _kwargs(**over).items() if not k.startswith("population")}
    with pytest.raises(ValueError, match=match):
        rmia_log_ratio(**kw)
