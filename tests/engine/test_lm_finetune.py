"""Stacked fine-tunes of a language model equal the same fine-tunes run alone in a plain loop: LoRA against
peft's adapters trained by torch's AdamW, transformers' scheduler and torch's clipping; full fine-tunes
against a copy of the model trained the same way (float64, a few steps, warm-up, weight decay and
clipping on)."""

import copy

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

import torch  # noqa: E402

from pytest_privacy.engine.lm_finetune import finetune, score
from pytest_privacy.engine.lm_loss import lm_loss  # noqa: E402
from pytest_privacy.engine.lm_recipe import LMRecipe  # noqa: E402
from pytest_privacy.engine.own_loop import PerModelBatches  # noqa: E402
from pytest_privacy.engine.seeds import model_seeds  # noqa: E402
from pytest_privacy.engine.stacked_lm import make_stack  # noqa: E402

N, T, V, M, BATCH = 40, 12, 50, 3, 4


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=16, n_layer=2, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config).double().eval()


@pytest.fixture(scope="module")
def texts():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, V, size=(N, T))
    lengths = rng.integers(3, T + 1, size=N)
    mask = np.arange(T)[None] < lengths[:, None]
    ids[~mask] = 0  # right-padded, as a TextDataset is
    keep = np.zeros((M, N), dtype=bool)
    for m in range(M):
        keep[m, rng.permutation(N)[: N // 2]] = True
    return ids, mask, keep


def _batches(keep, seeds):
    return PerModelBatches(np.zeros((N, 1)), np.zeros(N), keep, seeds, batch_size=BATCH, steps_per_epoch=N // 2 // BATCH)


def _alone(model, params, recipe, ids, mask, keep_row, seed):
    """The plain loop: one model, the causal-LM loss, torch's AdamW and clipping, transformers' scheduler."""
    batches = _batches(keep_row[None], [seed])
    opt = torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay)
    make = {"linear": transformers.get_linear_schedule_with_warmup,
            "cosine": transformers.get_cosine_schedule_with_warmup}[recipe.schedule]
    sched = make(opt, recipe.warmup_steps, recipe.epochs * len(batches))
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask).long()
    for _ in range(recipe.epochs):
        for idx in batches.iter_indices():
            xb, mb = ids_t[idx[0]], mask_t[idx[0]]
            # Hugging Face's labels loss, written out: its own casts the logits to float32, this test is float64
            logits = model(input_ids=xb, attention_mask=mb).logits
            labels = xb.masked_fill(mb == 0, -100)
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            opt.step()
            sched.step()
    return model.eval()


def _sequence_losses(model, ids, mask):
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)).logits
    return lm_loss(logits[:, None], torch.from_numpy(ids)[:, None], torch.from_numpy(mask)[:, None])


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_stacked_lora_fine_tunes_equal_peft_alone(base, texts, schedule):
    ids, mask, keep = texts
    recipe = LMRecipe(base=lambda: base, lora_rank=4, lora_alpha=8.0, target_modules=("c_attn", "c_fc", "c_proj"),
                      lr=2e-2, epochs=2, batch_size=BATCH, warmup_steps=3, schedule=schedule, weight_decay=0.1,
                      grad_clip=0.05)
    seeds = model_seeds(0, range(M))
    stack = make_stack(base, recipe, seeds)
    a0 = [a.detach().clone() for a in stack.a]
    finetune(recipe, stack, torch.from_numpy(ids), torch.from_numpy(mask), _batches(keep, seeds))
    for m in range(M):
        model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "c_proj"], fan_in_fan_out=True, lora_dropout=0.0))
        names = [n for n, _ in model.named_modules() if n.endswith("lora_A.default")]
        assert len(names) == len(stack.names) == 8  # 2 blocks: c_attn, attn.c_proj, c_fc, mlp.c_proj
        modules = dict(model.named_modules())
        with torch.no_grad():  # the same starting adapters (peft's init, drawn under model m's seed by the stack)
            for name, layer, a in zip(names, stack.names, a0, strict=True):
                assert name == f"base_model.model.{layer}.lora_A.default"
                modules[name].weight.copy_(a[m])
        params = [p for p in model.parameters() if p.requires_grad]
        alone = _alone(model, params, recipe, ids, mask, keep[m], seeds[m]).merge_and_unload()
        stacked = stack.alone(m)
        for (name, p), (_, q) in zip(alone.named_parameters(), stacked.named_parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-10, msg=name)
        assert not torch.equal(stacked.transformer.h[0].attn.c_attn.weight, base.transformer.h[0].attn.c_attn.weight)
        torch.testing.assert_close(_sequence_losses(stacked, ids, mask), _sequence_losses(alone, ids, mask))


def test_stacked_full_fine_tunes_equal_a_plain_loop_alone(base, texts):
    ids, mask, keep = texts
    recipe = LMRecipe(base=lambda: base, lr=1e-2, epochs=2, batch_size=BATCH, warmup_steps=2, weight_decay=0.05,
                      grad_clip=0.5)
    seeds = model_seeds(1, range(M))
    stack = make_stack(base, recipe, seeds)
    finetune(recipe, stack, torch.from_numpy(ids), torch.from_numpy(mask), _batches(keep, seeds))
    for m in range(M):
        model = copy.deepcopy(base)
        alone = _alone(model, list(model.parameters()), recipe, ids, mask, keep[m], seeds[m])
        stacked = stack.alone(m)
        assert stacked.lm_head.weight is stacked.transformer.wte.weight  # still tied
        for (name, p), (_, q) in zip(alone.named_parameters(), stacked.named_parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-10, msg=name)
        torch.testing.assert_close(_sequence_losses(stacked, ids, mask), _sequence_losses(alone, ids, mask))


def test_scores_of_the_stack_are_each_models_own(base, texts):
    from pytest_privacy.data.likelihood import token_statistics

    ids, mask, keep = texts
    recipe = LMRecipe(base=lambda: base, lora_rank=2, lr=5e-2, batch_size=BATCH)
    seeds = model_seeds(2, range(M))
    stack = make_stack(base, recipe, seeds)
    finetune(recipe, stack, torch.from_numpy(ids), torch.from_numpy(mask), _batches(keep, seeds))
    # a budget of one text per chunk: the chunking is exercised, and the answer may not depend on it
    stats = score(stack, ids, mask, device=torch.device("cpu"), budget=1)
    real = mask.copy()
    real[:, 0] = False  # (nothing predicts a text's first token)
    for m in range(M):
        alone = token_statistics(stack.alone(m), ids, mask, spread=True)
        for key, value in (("lm_lp", alone.lp), ("lm_mu", alone.mu), ("lm_sigma", alone.sigma)):
            np.testing.assert_allclose(stats[m][key][real], value[real], rtol=1e-5, atol=1e-6)
            assert not stats[m][key][~real].any()  # padding: zero, never read
    assert not np.allclose(stats[0]["lm_lp"], stats[1]["lm_lp"])  # the models differ


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup", [0, 3])
def test_the_learning_rate_is_transformers_schedule(schedule, warmup):
    recipe = LMRecipe(base=lambda: torch.nn.Linear(2, 2), lr=0.5, warmup_steps=warmup, schedule=schedule)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    make = {"linear": transformers.get_linear_schedule_with_warmup, "cosine": transformers.get_cosine_schedule_with_warmup,
            "constant": lambda o, w, t: transformers.get_constant_schedule_with_warmup(o, w)}[schedule]
    sched = make(opt, warmup, 20)
    for step in range(20):
        assert recipe.learning_rate(step, 20) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()
