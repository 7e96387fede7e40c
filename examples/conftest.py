"""How a team wires pytest-privacy: say how the model is trained and on what data.

Everything else (target model, reference models, membership data) comes from the plugin's
fixtures. Copy this folder to ``tests/privacy/`` and replace the two fixtures with your own.
"""

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
