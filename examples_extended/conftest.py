"""The same data and release recipe as ``examples/conftest.py``, for the heavier examples."""

import pytest

from pytest_privacy import TrainingRecipe, load_example_dataset


@pytest.fixture(scope="session")
def privacy_dataset():
    """The audit population: scikit-learn's 1,797 handwritten digits (8x8)."""
    return load_example_dataset("digits")


@pytest.fixture(scope="session")
def privacy_recipe():
    """The release recipe: a small MLP with weight decay, trained on one-pixel shifts."""
    return TrainingRecipe(model="mlp", hidden=(128,), epochs=20, weight_decay=1e-3, augmentations=("shift",))
