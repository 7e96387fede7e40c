"""Label-only attacks (Choquette-Choo et al. 2021) against oracles whose answers are known exactly:
linear classifiers (analytic boundary distances), shift-invariant and memorising oracles, and
synthetic augmentation bits with a known Bayes-optimal ROC."""


import numpy as np
import pytest
from helpers import linear_problem
from scipy import ndimage, stats

from pytest_privacy.attacks.label_only import (
    BitAttack,
    Budget,
    QueryCounter,
    augmentation_bits,
    augmentation_scores,
    boundary_scores_blackbox,
    fit_bit_attack,
    gap_scores,
    n_augmentations,
    noise_scores,
)
from pytest_privacy.data.augmentations import make_queries
from pytest_privacy.stats.intervals import auc_confidence_interval
from pytest_privacy.stats.roc import auc


def _first_pixel_sign(x):
    """Oracle: label 1 iff the first coordinate of the example is > 0."""
    return (x.reshape(len(x), -1)[:, 0] > 0).astype(np.int64)


def test_each_attack_is_registered_by_its_own_module():
    from pytest_privacy.attacks import suite_attacks
    from pytest_privacy.attacks.registry import get_attack

    owners = {name: get_attack(name).score_labels.__module__ for name in suite_attacks("label_only")}
    package = "pytest_privacy.attacks.label_only."
    assert owners == {
        "label_only_gap": package + "gap",
        "label_only_augmentation": package + "augmentation",
        "label_only_augmentation_trained": package + "augmentation_trained",
        "label_only_noise": package + "noise",
        "label_only_boundary": package + "boundary",
    }


# ---------------------------------------------------------------------------------------------
# Gap and the query counter
# ---------------------------------------------------------------------------------------------


def test_gap_scores_are_exact_correctness():
    x = np.array([[1.0, 2.0], [-1.0, 5.0], [3.0, 0.0], [-2.0, -2.0]], dtype=np.float32)
    y = np.array([1, 1, 0, 0])
    np.testing.assert_array_equal(gap_scores(_first_pixel_sign, x, y), [1.0, 0.0, 0.0, 1.0])
    assert gap_scores(_first_pixel_sign, x, y).dtype == np.float64


def test_query_counter_batches_and_counts_examples():
    sizes = []

    def predict(xb):
        sizes.append(len(xb))
        assert xb.dtype == np.float32
        return _first_pixel_sign(xb)

    x = np.random.default_rng(0).normal(size=(10, 3))
    counter = QueryCounter(predict, batch_size=3)
    np.testing.assert_array_equal(counter(x), _first_pixel_sign(x.astype(np.float32)))
    assert sizes == [3, 3, 3, 1] and counter.queries == 10
    # attacks add to a counter passed in place of the callable
    gap_scores(counter, x, np.zeros(10, dtype=int))
    augmentation_scores(counter, x, np.zeros(10, dtype=int), d=1)
    assert counter.queries == 10 + 10 + 10 * 3


def test_query_counter_validates_outputs():
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="one integer label per example"):
        QueryCounter(lambda b: np.zeros(len(b) - 1, dtype=int))(x)
    with pytest.raises(ValueError, match="NaN"):
        QueryCounter(lambda b: np.full(len(b), np.nan))(x)
    with pytest.raises(ValueError, match="non-integer labels"):
        QueryCounter(lambda b: np.full(len(b), 0.7))(x)
    with pytest.raises(ValueError, match="C >= 2"):
        QueryCounter(lambda b: np.zeros((len(b), 1)))(x)
    with pytest.raises(ValueError, match="batch"):
        QueryCounter(_first_pixel_sign)(np.zeros(3))
    with pytest.raises(ValueError, match="batch_size"):
        QueryCounter(_first_pixel_sign, batch_size=0)
    # 2-D outputs are scores: the label is their argmax; integral floats are labels
    scores = np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(QueryCounter(lambda b: scores)(x), [1, 0, 2, 2])
    np.testing.assert_array_equal(QueryCounter(lambda b: np.array([1.0, 0.0, 2.0, 2.0]))(x), [1, 0, 2, 2])


def test_budget_charges_per_point_and_refuses_overspending():
    budget = Budget(10, 4)
    budget.charge(np.arange(4))  # one query each
    budget.charge(np.array([1, 1, 3]), 4)  # a point listed twice pays twice
    np.testing.assert_array_equal(budget.spent, [1, 9, 1, 5])
    np.testing.assert_array_equal(budget.remaining(np.arange(4)), [9, 1, 9, 5])
    np.testing.assert_array_equal(budget.can_afford(np.arange(4), 5), [True, False, True, True])
    np.testing.assert_array_equal(budget.affording(np.array([3, 1, 0]), 5), [3, 0])
    assert budget.total == 16
    with pytest.raises(RuntimeError, match="budget of 10"):
        budget.charge(np.array([1]), 2)
    np.testing.assert_array_equal(budget.spent, [1, 9, 1, 5])  # a refused charge is not recorded
    with pytest.raises(ValueError, match="max_queries"):
        Budget(-1, 3)


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------


def _bordered_images(n, shape, border, seed=0):
    """Small-integer images that are zero within ``border`` of every spatial edge, so shifts by up to
    ``border`` pixels keep every pixel and the float32 sum is exact."""
    x = np.random.default_rng(seed).integers(0, 4, size=(n, *shape)).astype(np.float32)
    sl = slice(border, -border)
    mask = np.zeros(shape, dtype=bool)
    if len(shape) == 1:
        mask[sl] = True
    else:
        mask[..., sl, sl] = True
    return x * mask


def _sum_class(xb):
    return (xb.reshape(len(xb), -1).sum(axis=1) % 3).astype(np.int64)


@pytest.mark.parametrize(
    "shape, per_point", [((12, 12), 4 * 2 + 1), ((3, 10, 10), 4 * 2 + 1), ((20,), 2 * 2 + 1)]
)
def test_shift_invariant_oracle_scores_one_with_the_documented_query_count(shape, per_point):
    x = _bordered_images(7, shape, border=2)
    y = _sum_class(x)
    counter = QueryCounter(_sum_class)
    s = augmentation_scores(counter, x, y, d=2)
    np.testing.assert_array_equal(s, 1.0)
    assert counter.queries == 7 * per_point == 7 * n_augmentations(shape, d=2)


def test_augmented_copies_are_shifts_then_rotations():
    seen = []

    def record(xb):
        seen.append(xb.copy())
        return np.zeros(len(xb), dtype=np.int64)

    x = np.random.default_rng(1).normal(size=(5, 2, 6, 7)).astype(np.float32)
    augmentation_bits(record, x, np.zeros(5, dtype=int), d=1)
    np.testing.assert_array_equal(np.stack(seen, axis=1), make_queries(x, ["shift"]))

    seen.clear()
    counter = QueryCounter(record)
    bits = augmentation_bits(counter, x, np.zeros(5, dtype=int), d=2, r=2)
    assert bits.shape == (5, 4 * 2 + 1 + 2 * 2) and bits.all()
    assert counter.queries == 5 * 13
    for view, angle in zip(seen[-4:], [-2, -1, 1, 2]):
        np.testing.assert_array_equal(view, ndimage.rotate(x, angle, axes=(2, 3), reshape=False, order=1))


def test_memorising_oracle_is_right_only_on_the_original():
    x = np.random.default_rng(2).normal(size=(6, 9, 9)).astype(np.float32)
    y = np.arange(6) % 2
    table = {row.tobytes(): label for row, label in zip(x, y)}

    def lookup(xb):  # correct on the exact training examples, wrong anywhere else
        return np.array([table.get(row.tobytes(), 7) for row in xb])

    bits = augmentation_bits(lookup, x, y, d=1, r=1)
    assert bits.shape == (6, 7)
    np.testing.assert_array_equal(bits[:, 0], True)
    np.testing.assert_array_equal(bits[:, 1:], False)
    np.testing.assert_allclose(augmentation_scores(lookup, x, y, d=1, r=1), 1 / 7)


def test_augmentation_argument_errors():
    with pytest.raises(ValueError, match="r=0"):
        augmentation_bits(_first_pixel_sign, np.zeros((2, 8)), [0, 0], r=1)
    with pytest.raises(ValueError, match="non-negative integer"):
        augmentation_bits(_first_pixel_sign, np.zeros((2, 8)), [0, 0], d=-1)
    with pytest.raises(ValueError, match="non-negative integer"):
        augmentation_bits(_first_pixel_sign, np.zeros((2, 4, 4)), [0, 0], r=1.5)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        augmentation_bits(_first_pixel_sign, np.zeros((2, 8)), [0, 0, 0])


# ---------------------------------------------------------------------------------------------
# Noise robustness
# ---------------------------------------------------------------------------------------------


def test_noise_scores_follow_the_gaussian_tail_of_a_linear_boundary():
    # Oracle: label 1 iff x[0] > 0, so a copy of a point at x[0] = t * scale stays correct with
    # probability Phi(t) when the noise has standard deviation scale = sigma * (x.max() - x.min()).
    k, sigma, per_t = 400, 0.05, 6
    ts = np.array([0.0, 0.5, 1.0, 2.0, 9.0])
    t = np.repeat(ts, per_t)
    x = np.zeros((t.size, 4), dtype=np.float32)
    x[0, 1], x[1, 1] = -10.0, 10.0  # data range 20, set by a coordinate the oracle ignores
    scale = sigma * 20.0
    x[:, 0] = t * scale
    y = np.ones(t.size, dtype=int)
    counter = QueryCounter(_first_pixel_sign)
    s = noise_scores(counter, x, y, sigma=sigma, k=k, seed=0)
    assert counter.queries == t.size * k
    p = stats.norm.cdf(t)
    # 4.5 binomial standard deviations (plus the float32 rounding of the offsets, far below 1/k)
    np.testing.assert_array_less(np.abs(s - p), 4.5 * np.sqrt(p * (1 - p) / k) + 1e-12)
    np.testing.assert_array_equal(s[t == 9.0], 1.0)  # Phi(-9) ~ 1e-19: no flip at all
    # sigma is a fraction of x.max() - x.min(); seeded
    np.testing.assert_array_equal(s, noise_scores(_first_pixel_sign, x, y, sigma=sigma, k=k, data_range=20.0))
    assert not np.array_equal(s, noise_scores(_first_pixel_sign, x, y, sigma=sigma, k=k, seed=1))
    with pytest.raises(ValueError, match="data_range"):
        noise_scores(_first_pixel_sign, np.ones((3, 2)), [1, 1, 1])


# ---------------------------------------------------------------------------------------------
# Boundary distance
# ---------------------------------------------------------------------------------------------








def _linear_oracle(w, b, shape):
    def predict(xb):
        assert xb.shape[1:] == shape
        return (xb.reshape(len(xb), -1).astype(np.float64) @ w.T + b).argmax(1)

    return predict


def test_blackbox_distance_on_a_two_class_linear_boundary():
    # Every reported distance is that of a point the oracle labelled differently, so it can never
    # fall below the analytic distance (the oracle computes exactly in float64 on the float32 point;
    # rtol 1e-9 covers the rounding of the norms). On one hyperplane HopSkipJump's only error is the
    # residual tangential offset of its boundary point, which shrinks geometrically; with 1000
    # queries in 8 dimensions it is ~1% at the median, so we require 90% of points within 10%
    # (HopSkipJump is randomised and only converges asymptotically) and the median within 2%.
    w, b, x, y, true, correct = linear_problem(40, 8, 2, seed=0)
    x = x.reshape(40, 2, 4)  # image-shaped inputs: the attack flattens and restores the layout
    counter = QueryCounter(_linear_oracle(w, b, (2, 4)))
    s = boundary_scores_blackbox(counter, x, y, max_queries=1000, seed=0)
    assert counter.queries <= 40 * 1000
    np.testing.assert_array_equal(s[~correct], 0.0)
    rel = s[correct] / true[correct] - 1
    assert rel.min() >= -1e-9
    assert np.mean(rel <= 0.10) >= 0.9 and np.median(rel) <= 0.02


def test_blackbox_distance_in_one_dimension_is_exact_to_the_bisection():
    # In 1-D there is no direction to get wrong: the only error is the bisection's. Its precision is
    # 2^-10 of a segment (tol=1e-3) no longer than twice the distance (the step is at most the
    # distance), and the flipped end is kept, so true <= score <= true * (1 + 2^-9).
    x = np.random.default_rng(4).uniform(-1, 1, size=(30, 1)).astype(np.float32)
    y = (x[:, 0] > 0.3).astype(int)
    true = np.abs(x[:, 0].astype(np.float64) - 0.3)
    s = boundary_scores_blackbox(lambda b: (b[:, 0] > 0.3).astype(int), x, y, max_queries=200, tol=1e-3)
    assert (s >= true).all() and (s <= true * (1 + 2**-9)).all()


def test_blackbox_distance_on_a_multiclass_linear_model():
    # Several classes give the boundary local minima (HopSkipJump is a local search, and the
    # region of a class is a polytope whose nearest face the search need not find), so the bound
    # holds on every point but only three quarters are required within 10% (median within 2%).
    w, b, x, y, true, correct = linear_problem(40, 8, 4, seed=1)
    s = boundary_scores_blackbox(_linear_oracle(w, b, (8,)), x, y, max_queries=1000, seed=0)
    np.testing.assert_array_equal(s[~correct], 0.0)
    rel = s[correct] / true[correct] - 1
    assert rel.min() >= -1e-9
    assert np.mean(rel <= 0.10) >= 0.75 and np.median(rel) <= 0.02


def test_blackbox_respects_small_budgets_and_starts_from_noise():
    w, b, x, y, true, correct = linear_problem(30, 8, 2, seed=2)
    predict = _linear_oracle(w, b, (8,))
    counter = QueryCounter(predict)
    s = boundary_scores_blackbox(counter, x, y, max_queries=40)
    assert counter.queries <= 30 * 40
    assert (s[correct] >= true[correct] * (1 - 1e-9)).all() and np.isfinite(s).all()
    with pytest.raises(ValueError, match="max_queries"):
        boundary_scores_blackbox(predict, x, y, max_queries=5)
    # all audit points in one class: the start must come from noise the oracle misclassifies
    one = correct & (y == y[correct][0])
    s_one = boundary_scores_blackbox(predict, x[one], y[one], max_queries=300)
    assert (s_one >= true[one] * (1 - 1e-9)).all()
    assert (s_one < np.sqrt(8) * (x[one].max() - x[one].min())).all()  # a start was found for all


# ---------------------------------------------------------------------------------------------
# The trained augmentation attack
# ---------------------------------------------------------------------------------------------


def _synthetic_bits(rng, keep, labels, p_in, p_out):
    """Bits correct with probability p_in[label] for IN pairs and p_out[label] for OUT pairs."""
    p = np.where(keep, np.asarray(p_in)[labels], np.asarray(p_out)[labels])
    return rng.random((*keep.shape, 9)) < p[..., None]


def _optimal_auc(q, p_in, p_out):
    """AUC of the Bayes-optimal test for i.i.d. bits: the number of correct bits, Bin(q, p)."""
    k = np.arange(q + 1)
    f_in, f_out = stats.binom.pmf(k, q, p_in), stats.binom.pmf(k, q, p_out)
    below = np.cumsum(f_out) - f_out
    return float(f_in @ below + 0.5 * f_in @ f_out)


def test_trained_bit_attack_is_near_optimal_and_uses_no_target_membership():
    rng = np.random.default_rng(0)
    n, m = 300, 16
    labels = rng.integers(0, 3, n)
    keep = np.zeros((m, n), dtype=bool)
    for row in keep:
        row[rng.permutation(n)[: n // 2]] = True
    # IN references stay correct on more augmented copies than OUT references
    ref_bits = _synthetic_bits(rng, keep, labels, [0.9] * 3, [0.6] * 3)
    attack = fit_bit_attack(ref_bits, keep, labels)
    assert isinstance(attack, BitAttack) and attack.fallback_classes == ()
    assert (attack.coef > 0).all()

    is_member = rng.random(n) < 0.5  # the target's membership: never passed to the attack
    target_bits = _synthetic_bits(rng, is_member[None], labels, [0.9] * 3, [0.6] * 3)[0]
    s = attack.score(target_bits, labels)
    a = auc(s, is_member)
    low, high = auc_confidence_interval(a, int(is_member.sum()), int((~is_member).sum()), 0.999)
    assert low > 0.5 and high >= _optimal_auc(9, 0.9, 0.6)
    # a score is a function of (bits, label) alone: same inputs, same score, member or not
    twin = np.r_[target_bits[:1], target_bits[:1]]
    assert np.ptp(attack.score(twin, labels[[0, 0]])) == 0


def test_per_class_models_and_the_pooled_fallback():
    rng = np.random.default_rng(1)
    n, m = 240, 16
    labels = np.arange(n) % 3
    keep = rng.random((m, n)) < 0.5
    keep[:, labels == 2] = False  # class 2: OUT pairs only, so it gets the pooled model
    # class 0 members stay correct more often, class 1 members less often: opposite signs
    ref_bits = _synthetic_bits(rng, keep, labels, [0.9, 0.5, 0.7], [0.5, 0.9, 0.7])
    attack = fit_bit_attack(ref_bits, keep, labels)
    np.testing.assert_array_equal(attack.classes, [0, 1])
    assert attack.fallback_classes == (2,)
    assert (attack.coef[0] > 0).all() and (attack.coef[1] < 0).all()
    bits = rng.random((5, 9)) < 0.5
    np.testing.assert_allclose(
        attack.score(bits, np.full(5, 2)), bits @ attack.pooled_coef + attack.pooled_intercept
    )
    np.testing.assert_allclose(attack.score(bits, np.zeros(5, int)), bits @ attack.coef[0] + attack.intercept[0])
    with pytest.raises(ValueError, match="same d and r"):
        attack.score(bits[:, :4], np.zeros(5, int))
    with pytest.raises(ValueError, match="balanced_keep"):
        fit_bit_attack(ref_bits, np.zeros_like(keep), labels)
    with pytest.raises(ValueError, match="keep must be"):
        fit_bit_attack(ref_bits, keep[:, :10], labels)


def test_logistic_fit_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    keep = rng.random((8, 100)) < 0.5
    labels = np.zeros(100, dtype=int)
    ref_bits = _synthetic_bits(rng, keep, labels, [0.8], [0.6])
    l2 = 0.05
    attack = fit_bit_attack(ref_bits, keep, labels, l2=l2)
    # sklearn minimises 0.5 ||w||^2 + C * sum(log-loss), i.e. ours times 1 / (l2 * n) with C = 1 / (l2 * n)
    n_pairs = keep.size
    ref = LogisticRegression(C=1 / (l2 * n_pairs), tol=1e-10, max_iter=10_000)
    ref.fit(ref_bits.reshape(n_pairs, -1).astype(float), keep.reshape(-1))
    np.testing.assert_allclose(attack.coef[0], ref.coef_[0], atol=1e-4)
    np.testing.assert_allclose(attack.intercept[0], ref.intercept_[0], atol=1e-4)
