"""A team's fine-tuned language model: a small causal LM (an embedding, a GRU and a head, plain torch)
fine-tuned on support tickets with AdamW, after the team's PII scrubber replaced every word with a
digit in it (phone numbers, order numbers, e-mail user names) by the unknown token."""

import numpy as np
import pytest
import torch
from torch import nn

from pytest_privacy import load_example_dataset


EPOCHS = 6


class TinyLM(nn.Module):
    def __init__(self, vocab: int, width: int = 32) -> None:
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(vocab, width), nn.GRU(width, 2 * width, batch_first=True), nn.Linear(2 * width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(ids))[0])


def scrub(data):
    """The team's scrubber: every token whose word has a digit becomes <unk> (id 1)."""
    digits = np.array([any(ch.isdigit() for ch in w) for w in data.tokenizer.words])
    return np.where(digits[data.ids], 1, data.ids)


@pytest.fixture(scope="session")
def privacy_dataset():
    return load_example_dataset("tickets", n=400)


@pytest.fixture(scope="session")
def privacy_recipe():
    """This folder fine-tunes with its own function, not the outer folder's recipe."""
    return None


@pytest.fixture(scope="session")
def privacy_train_fn():
    def finetune(data, *, seed, device):
        torch.manual_seed(seed)
        model = TinyLM(len(data.tokenizer)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        ids, mask = torch.from_numpy(scrub(data)).to(device), torch.from_numpy(data.mask).to(device)
        order = np.random.default_rng(seed)
        for _ in range(EPOCHS):
            for b in np.array_split(order.permutation(len(ids)), max(1, len(ids) // 32)):
                logits = model(ids[b])[:, :-1]
                loss = nn.functional.cross_entropy(logits.transpose(1, 2), ids[b][:, 1:], reduction="none")
                loss = (loss * mask[b][:, 1:]).sum() / mask[b][:, 1:].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return model.eval()

    return finetune
