"""A team's own fine-tuning loop, written once with @stacked_training, run on stacked language models: full
fine-tunes (StackedModels) and LoRA adapters over one frozen base (StackedAdapters), each stacked fine-tune the
one the same loop gives alone; canary runs use the loop too; cached like every model."""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402

from pytest_privacy import (  # noqa: E402
    PerModelBatches,
    PrivacyTrainer,
    StackedAdapters,
    StackedModels,
    load_example_dataset,
    per_model_lm_loss,
    stacked_training,
)
from pytest_privacy.engine.seeds import torch_seed  # noqa: E402
from pytest_privacy.engine.store import ModelStore  # noqa: E402

TEXTS = load_example_dataset("tickets", n=96, seed=4)


def tiny_gpt():
    torch.manual_seed(0)  # a "pretrained" base: the same weights every call
    config = transformers.GPT2Config(vocab_size=len(TEXTS.tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


def loop(models, batches, *, device):
    opt = torch.optim.AdamW(models.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(2):
        for ids, mask in batches:
            opt.zero_grad()
            per_model_lm_loss(models(ids), ids, mask).sum().backward()
            models.clip_grad_norm_(1.0)
            opt.step()


@pytest.mark.parametrize("lora", [None, 4], ids=["full", "lora"])
def test_a_stacked_loop_fine_tunes_each_model_as_it_would_alone(tmp_path, lora):
    from pytest_privacy.data.likelihood import token_statistics

    train = stacked_training(model=tiny_gpt, batch_size=8, lora_rank=lora)(loop)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(train, TEXTS, n_references=2, seed=0)
    data = setup.membership_data()
    assert trainer.models_trained == 3
    # reference 1 alone: the same loop on a stack of one, its own half and seed, as many steps per epoch
    from pytest_privacy.audit.split import Split

    split = Split.make(len(TEXTS), 2, 0)
    keep, seed = split.keep[1], split.seeds[1]
    one = StackedAdapters(tiny_gpt, [seed], rank=lora) if lora else StackedModels(tiny_gpt, [seed])
    steps = int(split.keep[:2].sum(axis=1).min()) // 8
    loop(one, PerModelBatches(TEXTS.ids, TEXTS.mask, keep[None], [seed], batch_size=8, steps_per_epoch=steps), device="cpu")
    alone = token_statistics(one.eval().model(0), data.text.ids, data.text.mask).lp
    real = data.text.mask.copy()
    real[:, 0] = False
    np.testing.assert_allclose(data.references.lp[1][real], alone[real], atol=2e-4)
    assert not np.allclose(data.references.lp[0][real], data.references.lp[1][real], atol=1e-3)
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    again.audit(train, TEXTS, n_references=2, seed=0)
    assert again.models_trained == 0
    assert torch_seed(seed) >= 0  # (the seed a person reproduces it with)


def test_a_canary_run_uses_the_stacked_loop(tmp_path):
    train = stacked_training(model=tiny_gpt, batch_size=8)(loop)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    run = trainer.lm_canary_run(train, TEXTS, seed=1)
    assert run.trained and np.ptp(run.candidate_ll) > 0
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    assert not again.lm_canary_run(train, TEXTS, seed=1).trained


def test_lora_settings_are_checked_and_belong_to_language_models():
    with pytest.raises(ValueError, match="lora_rank"):
        stacked_training(model=tiny_gpt, lora_rank=0)
    with pytest.raises(ValueError, match="set lora_rank"):
        stacked_training(model=tiny_gpt, lora_alpha=8.0)
    train = stacked_training(model=lambda: torch.nn.Linear(4, 2), batch_size=8, lora_rank=2)(loop)
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="TextDataset"):
        PrivacyTrainer().audit(train, (x, np.arange(40) % 2), n_references=2, seed=0)
