"""LMRecipe's settings: typos and values that only look right are errors, and its learning rate is
transformers' warm-up schedule, step for step."""

import pytest

from pytest_privacy import LMRecipe

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _base():
    return torch.nn.Linear(2, 2)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_the_learning_rate_is_transformers_schedule(schedule, warmup):
    recipe = LMRecipe(base=_base, lr=0.5, warmup_steps=warmup, schedule=schedule)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    make = {"linear": transformers.get_linear_schedule_with_warmup, "cosine": transformers.get_cosine_schedule_with_warmup,
            "constant": lambda o, w, t: transformers.get_constant_schedule_with_warmup(o, w)}[schedule]
    sched = make(opt, warmup, 20)
    for step in range(20):
        assert recipe.learning_rate(step, 20) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()


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
