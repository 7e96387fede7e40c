"""LMRecipe's settings: typos and values that only look right are errors (its schedule is checked against
transformers' in tests/engine/test_lm_finetune.py)."""

import pytest

from pytest_privacy import LMRecipe

torch = pytest.importorskip("torch")


def _base():
    return torch.nn.Linear(2, 2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lora_rnk": 4}, "Did you mean 'lora_rank'"),
    ({"learning_rate": 1e-3}, "Did you mean 'lr'"),
    ({"r": 4}, "Did you mean 'lora_rank'"),
    ({"lora_rank": 0}, "lora_rank"),
    ({"lora_rank": True}, "lora_rank"),
    ({"epochs": 1.5}, "epochs"),
    ({"lora_alpha": 16.0}, "set lora_rank"),
    ({"target_modules": ("c_attn",)}, "set lora_rank"),
    ({"lora_rank": 4, "target_modules": ()}, "at least one"),
    ({"schedule": "cosine_with_restarts"}, "schedule"),
    ({"betas": (0.9, 1.0)}, "betas"),
    ({"grad_clip": 0.0}, "grad_clip"),
])
def test_bad_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LMRecipe(base=_base, **kwargs)


def test_a_base_must_be_a_folder_or_a_function(tmp_path):
    with pytest.raises(ValueError, match="nn.Module instance"):
        LMRecipe(base=_base())
    with pytest.raises(ValueError, match="not a folder"):
        LMRecipe(base=str(tmp_path / "missing"))
    assert LMRecipe(base=tmp_path).base == tmp_path
    assert LMRecipe(base=_base, lora_rank=8).lora_scale == 1.0
    assert LMRecipe(base=_base, lora_rank=8, lora_alpha=32).lora_scale == 4.0
