"""The MMD + mixup defense: the estimator against a direct computation, and the training it drives."""

import math

import numpy as np
import pytest
import torch

from pytest_privacy import (
    TrainingRecipe,
    balanced_keep,
    load_example_dataset,
    train_ensemble,
)
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.engine.defenses.mmd_mixup import (
    MMDMixup,
    class_matched,
    mixup_partners,
    mmd2,
)

WIDTHS = (0.1, 0.5, 1.0)


def _direct_mmd2(x, y, widths):
    k = lambda a, b: sum(math.exp(-float(((a - b) ** 2).sum()) / (2 * s * s)) for s in widths)  # noqa: E731
    kxx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    kyy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return kxx + kyy - 2 * kxy


def test_mmd_matches_the_direct_double_sum():
    rng = np.random.default_rng(0)
    x, y = rng.dirichlet(np.ones(4), size=7), rng.dirichlet(np.ones(4), size=5)
    got = mmd2(torch.from_numpy(x), torch.from_numpy(y), WIDTHS).item()
    assert got == pytest.approx(_direct_mmd2(x, y, WIDTHS), rel=1e-10)


def test_mmd_is_zero_for_identical_samples_and_batched_with_weights():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.dirichlet(np.ones(3), size=(2, 6)))  # two models' batches
    assert torch.allclose(mmd2(x, x.clone(), WIDTHS), torch.zeros(2, dtype=x.dtype), atol=1e-12)
    # Zero weights are padding: the MMD equals that of the unpadded samples.
    y = torch.from_numpy(rng.dirichlet(np.ones(3), size=(2, 6)))
    w = torch.tensor([[1.0] * 4 + [0.0] * 2] * 2, dtype=x.dtype)
    np.testing.assert_allclose(mmd2(x, y, WIDTHS, w, w).numpy(), mmd2(x[:, :4], y[:, :4], WIDTHS).numpy(), rtol=1e-10)
    assert (mmd2(x, y, WIDTHS) > 0).all()


def test_mixup_partners_and_class_matching():
    rng = np.random.default_rng(2)
    lam, partner = mixup_partners(rng, 5, 8, 1.0)
    assert 0 <= lam <= 1 and sorted(partner[:5]) == list(range(5)) and list(partner[5:]) == [5, 6, 7]
    pool, pool_labels = np.arange(10, 20), np.array([0, 1] * 5)
    got = class_matched(rng, np.array([1, 0, 1, 2]), pool, pool_labels)
    assert (pool_labels[got[:3] - 10] == [1, 0, 1]).all() and got[3] in pool  # class 2 absent: any


@pytest.mark.slow
def test_defended_training_needs_a_disjoint_validation_pool():
    x, y = load_example_dataset("synthetic", n=100)
    recipe = TrainingRecipe(hidden=(8,), epochs=1, defense="mmd_mixup")
    keep = balanced_keep(2, 100, 0)
    with pytest.raises(ValueError, match="validation pool"):
        train_ensemble(recipe, x, y, keep, seed=0)
    with pytest.raises(ValueError, match="must not be training points"):
        train_ensemble(recipe, x, y, keep, seed=0, validation=np.arange(10))


@pytest.mark.slow
def test_a_defended_model_is_the_same_with_or_without_chunk_mates():
    """Mixup and class-matched MMD batches are drawn per model, and only when it steps: a model
    trained beside a larger one (which keeps stepping after it is done) equals it trained alone."""
    from pytest_privacy.engine.ensemble import train_models
    from pytest_privacy.engine.seeds import model_seeds

    x, y = load_example_dataset("synthetic", n=300)
    pool = np.arange(270, 300)
    keep = np.zeros((2, 300), dtype=bool)
    keep[0, :100], keep[1, 100:240] = True, True  # 100 vs 140 points: model 0 waits on some steps
    recipe = TrainingRecipe(hidden=(16,), epochs=3, batch_size=32, defense=MMDMixup(trigger=0.0))
    together = train_models(recipe, x, y, keep, model_seeds(0, range(2)), validation=pool)
    alone = train_models(recipe, x, y, keep[:1], model_seeds(0, [0]), validation=pool)
    for k in together.params:
        torch.testing.assert_close(together.params[k][0], alone.params[k][0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_baseline_pool_is_never_audited_and_pairs_with_the_target(tmp_path):
    data = load_example_dataset("synthetic", n=300)
    trainer = PrivacyTrainer()
    plain = trainer.audit(TrainingRecipe(hidden=(16,), epochs=2), data, n_references=2, seed=0)
    defended = trainer.audit(TrainingRecipe(hidden=(16,), epochs=2, defense="mmd_mixup"), data, n_references=2, seed=0)
    pool = np.setdiff1d(np.arange(300), defended.points)
    assert len(pool) == 30 and not defended.ensemble.keep[:, pool].any()
    # Same split as the target on every audited point: a paired comparison is possible.
    np.testing.assert_array_equal(defended.is_member, plain.ensemble.keep[-1][defended.points])
    assert len(defended.membership_data()) == 270


@pytest.mark.slow
def test_dp_sgd_clips_adds_noise_and_stays_per_model(tmp_path):
    pytest.importorskip("opacus", reason="DP-SGD needs the [dp] extra")
    from pytest_privacy.engine.defenses import DPSGD
    from pytest_privacy.engine.ensemble import train_models
    from pytest_privacy.engine.seeds import model_seeds

    x, y = load_example_dataset("synthetic", n=200)
    keep = balanced_keep(4, 200, 0)
    keep[1, :5] = False  # unequal sizes: model 1 waits on some steps
    dp = TrainingRecipe(hidden=(16,), epochs=3, batch_size=32, defense=DPSGD(epsilon=2.0))
    together = train_models(dp, x, y, keep, model_seeds(0, range(4)))
    for m in (1, 0):  # the smallest model, and one whose own noise level differs from it
        alone = train_models(dp, x, y, keep[m : m + 1], model_seeds(0, [m]))
        for k in together.params:
            torch.testing.assert_close(together.params[k][m], alone.params[k][0], rtol=1e-4, atol=1e-5)
    plain = train_models(dp.model_copy(update={"defense": None}), x, y, keep, model_seeds(0, range(4)))
    assert not torch.allclose(together.params["1.weight"], plain.params["1.weight"])
    # Noise is calibrated: a tighter epsilon needs a larger multiplier.
    from pytest_privacy.engine.defenses.dp_sgd import dp_noise_multiplier

    assert dp_noise_multiplier(1.0, 1e-5, 0.1, 3) > dp_noise_multiplier(8.0, 1e-5, 0.1, 3) > 0


@pytest.mark.slow
def test_dp_sgd_without_opacus_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_opacus(name, *args, **kwargs):
        if name.startswith("opacus"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_opacus)
    x, y = load_example_dataset("synthetic", n=100)
    with pytest.raises(ImportError, match=r"pytest-privacy\[dp\]"):
        train_ensemble(TrainingRecipe(epochs=1, defense="dp_sgd"), x, y, balanced_keep(2, 100, 0), seed=0)


@pytest.mark.slow
def test_the_baseline_gate_works_with_a_held_out_population(pytester):
    """With a population held out the target's audit skips the held-out points; the baseline's
    points must index that audit, not the data set (they did not: a ValueError)."""
    pytester.makeconftest(
        "import pytest\nfrom pytest_privacy import TrainingRecipe, load_example_dataset\n"
        "@pytest.fixture(scope='session')\ndef privacy_recipe():\n    return TrainingRecipe(hidden=(16,), epochs=2)\n"
        "@pytest.fixture(scope='session')\ndef privacy_dataset():\n    return load_example_dataset('synthetic', n=300, seed=0)\n"
    )
    pytester.makepyfile(
        "from pytest_privacy import PrivacyLeakError, assert_no_more_vulnerable_than\n"
        "import pytest\n"
        "from pytest_privacy.report import recording\n"
        "@pytest.mark.privacy(population=0.2)\n"
        "def test_compare(target_model, mmd_baseline_model, membership_data):\n"
        "    points = mmd_baseline_model.points  # the target's audit minus the baseline's validation pool\n"
        "    assert len(membership_data) == 240 and 200 < len(points) < 240 and points.max() < 240\n"
        "    with recording() as results:\n"
        "        try:\n"
        "            assert_no_more_vulnerable_than(target_model, mmd_baseline_model, membership_data, fpr=0.1)\n"
        "        except PrivacyLeakError:\n"
        "            pass  # either verdict; what matters is which points were compared\n"
        "    [r] = results\n"
        "    assert r.n_members + r.n_nonmembers == len(points)\n"
        "    assert r.n_members == int(membership_data.is_member[points].sum())\n"
    )
    result = pytester.runpytest("--privacy-references=2", "--privacy-no-cache")
    result.assert_outcomes(passed=1)
