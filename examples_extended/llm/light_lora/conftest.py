"""A light LoRA fine-tune of the base: rank 4 on the attention and MLP projections, one epoch."""

import pytest

from pytest_privacy import LMRecipe


@pytest.fixture(scope="session")
def privacy_recipe(base_folder):
    return LMRecipe(base=base_folder, lora_rank=4, target_modules=("c_attn", "c_proj", "c_fc"), lr=2e-3, epochs=1,
                    batch_size=16)
