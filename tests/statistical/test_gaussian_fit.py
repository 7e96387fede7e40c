"""LiRA's Gaussian-fit check with known answers: on Gaussian per-example scores (each point its own
mean and spread, IN shifted from OUT) it rejects at most at its 5% level over 200 seeds; on heavy-tailed
scores (Student-t, 2 degrees of freedom) it rejects nearly always; a point whose references disagree
wildly is named first."""

import numpy as np
from scipy import stats

from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.stats.gaussian_fit import gaussian_fit

SEEDS = 200


def _scores(rng, m, n, noise):
    keep = balanced_keep(m, n, int(rng.integers(1 << 30)))
    centre, spread = rng.normal(size=n) * 3, rng.uniform(0.5, 2.0, size=n)
    return centre + 1.5 * keep + spread * noise((m, n)), keep


def test_gaussian_scores_are_rejected_at_most_at_the_level():
    rng = np.random.default_rng(0)
    rejected = sum(gaussian_fit(*_scores(rng, 16, 500, rng.standard_normal)).rejected for _ in range(SEEDS))
    assert rejected <= stats.binom.ppf(0.999, SEEDS, 0.05)


def test_heavy_tailed_scores_are_caught():
    rng = np.random.default_rng(1)
    rejected = sum(
        gaussian_fit(*_scores(rng, 16, 500, lambda size: rng.standard_t(2, size=size))).rejected for _ in range(50)
    )
    assert rejected >= 45  # measured 50/50


def test_the_worst_point_is_named_and_too_few_references_check_nothing():
    rng = np.random.default_rng(2)
    phi, keep = _scores(rng, 16, 300, rng.standard_normal)
    first_in = np.argmax(keep[:, 7])  # the held-out IN reference of point 7
    phi[first_in, 7] += 80.0
    check = gaussian_fit(phi, keep)
    assert check.worst[0] == 7 and check.worst_significant >= 1
    assert gaussian_fit(*_scores(rng, 4, 100, rng.standard_normal)) is None  # 2 per set: nothing to hold out


def test_points_whose_references_agree_exactly_are_left_out_and_counted():
    rng = np.random.default_rng(5)
    phi, keep = _scores(rng, 16, 200, rng.standard_normal)
    phi[:, [3, 9]] = 2.5  # saturated: every reference gives the same score
    check = gaussian_fit(phi, keep)
    assert check.n_degenerate == 2 and check.n_points == 198 and not ({3, 9} & set(check.worst))
    assert 0 <= check.p_value <= 1 and 0 <= check.worst_significant <= 198
    assert gaussian_fit(np.ones_like(phi), keep) is None  # nothing with spread to check
