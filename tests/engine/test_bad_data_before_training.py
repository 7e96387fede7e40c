"""A data set the audit cannot use is an error before anything trains; duplicate rows are dropped with a
warning giving the count."""

import numpy as np
import pytest


@pytest.mark.slow
def test_bad_data_sets_are_errors_before_any_training():
    import warnings

    from pytest_privacy import TrainingRecipe
    from pytest_privacy.audit import PrivacyDataWarning, PrivacyTrainer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    trainer = PrivacyTrainer()
    recipe = TrainingRecipe(hidden=(4,), epochs=1)
    for dataset, error, says in [
        ((x, np.zeros(40, int)), ValueError, "one class only"),
        ((x[:0], np.zeros(0, int)), ValueError, "the data set is empty"),
        ({"x": x, "y": np.arange(40) % 2}, TypeError, "got a dict"),
    ]:
        with pytest.raises(error, match=says):
            trainer.audit(recipe, dataset, n_references=2, seed=0)
    assert trainer.models_trained == 0
    # Duplicate rows are dropped (but the first) before the split, with a warning giving the count.
    dup = np.r_[x, x[:5]]
    with pytest.warns(PrivacyDataWarning, match="5 rows whose inputs duplicate an earlier row"):
        setup = trainer.audit(recipe, (dup, np.arange(45) % 2), n_references=2, seed=0)
    assert len(setup.membership_data()) == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyDataWarning)
        trainer.audit(recipe, (x, np.arange(40) % 2), n_references=2, seed=0)
