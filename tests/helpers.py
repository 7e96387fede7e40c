"""Shared pieces of the plugin tests."""

# A privacy suite whose target memorises: random labels can only be fit by memorising, so its
# members are exposed; 600 points of a 20-dimensional Gaussian, an MLP trained for 40 epochs.
NOISE_LABELS_CONFTEST = """
import numpy as np
import pytest
from pytest_privacy import TrainingRecipe

@pytest.fixture(scope="session")
def privacy_dataset():
    # Random labels: a model can only fit them by memorising, so its members are exposed.
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 20)).astype(np.float32), rng.integers(0, 4, 600)

@pytest.fixture(scope="session")
def privacy_recipe():
    return TrainingRecipe(hidden=(128,), epochs=40)
"""
