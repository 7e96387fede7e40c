"""Fine-tuned language models through an LMRecipe: a tiny GPT-2 (transformers, built from a config) pretrained
on public generated tickets once a session (seeded: the same weights every time, so the fine-tunes' cache keys
hold) and saved to a folder, which every fine-tune loads with ``from_pretrained``; the private tickets are
audited. Each subfolder fine-tunes it its own way."""

import numpy as np
import pytest

from pytest_privacy import load_example_dataset

transformers = pytest.importorskip("transformers", reason="the language-model examples need the [lm] extra")

TICKETS = load_example_dataset("tickets", n=800, seed=11)  # the first 400 are public, the rest private
WIDTH, LAYERS, PRETRAIN_EPOCHS = 32, 2, 4


@pytest.fixture(scope="session")
def privacy_dataset():
    return TICKETS.subset(np.arange(400, 800))


@pytest.fixture(scope="session")
def base_folder(tmp_path_factory):
    """The pretrained base, saved with save_pretrained (a few seconds, seeded)."""
    import torch

    folder = tmp_path_factory.mktemp("lm-base")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(TICKETS.tokenizer), n_positions=TICKETS.ids.shape[1], n_embd=WIDTH,
                                     n_layer=LAYERS, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids, mask = torch.from_numpy(TICKETS.ids[:400]), torch.from_numpy(TICKETS.mask[:400])
    for _ in range(PRETRAIN_EPOCHS):
        for b in torch.randperm(400, generator=torch.Generator().manual_seed(0)).split(16):
            loss = model(input_ids=ids[b], labels=ids[b].masked_fill(~mask[b], -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def privacy_base_model(base_folder):
    """What the fine-tunes start from (the ref_base attack reads it)."""
    return transformers.GPT2LMHeadModel.from_pretrained(base_folder).eval()
