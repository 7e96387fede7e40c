"""A full fine-tune of the base, 12 epochs at a high rate on 200 tickets: it memorises them."""

import pytest

from pytest_privacy import LMRecipe


@pytest.fixture(scope="session")
def privacy_recipe(base_folder):
    return LMRecipe(base=base_folder, lr=1e-2, epochs=12, batch_size=16, warmup_steps=10)
