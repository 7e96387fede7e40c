"""Shared pieces of the plugin tests."""

import numpy as np


def noise_labels(n: int, d: int, *, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal points in ``d`` dimensions with uniformly random labels: a model can
    fit them only by memorising, so its members are exposed (and one that did not train cannot leak)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


# The same data as a conftest's privacy_dataset (a pytester directory cannot import this module):
# 600 points in 20 dimensions, as noise_labels(600, 20).
NOISE_LABELS_DATASET = """
import numpy as np
import pytest

@pytest.fixture(scope="session")
def privacy_dataset():
    # Random labels: a model can only fit them by memorising, so its members are exposed.
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 20)).astype(np.float32), rng.integers(0, 4, 600)
"""

# A privacy suite whose target memorises: the recipe's MLP trained for 40 epochs on those labels.
NOISE_LABELS_CONFTEST = NOISE_LABELS_DATASET + """
from pytest_privacy import TrainingRecipe

@pytest.fixture(scope="session")
def privacy_recipe():
    return TrainingRecipe(hidden=(128,), epochs=40)
"""

# The same, with the user's own PyTorch loop instead of a recipe.
NOISE_LABELS_TRAIN_FN_CONFTEST = NOISE_LABELS_DATASET + """
import torch
from torch import nn

@pytest.fixture(scope="session")
def privacy_train_fn():
    def train(x, y, *, seed, device):
        # A plain PyTorch loop that memorises (random labels, no regularisation).
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 4)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        for _ in range(40):
            for idx in torch.randperm(len(xt)).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
        return model
    return train
"""

# Gates for those suites: the memorising target leaks; against labels it never saw, it cannot.
TRAIN_FN_TESTS = """
from pytest_privacy import assert_tpr_at_fpr_below

def test_memorising_loop_leaks(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.1)

def test_labels_it_never_saw(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data.shuffled_membership(1), fpr=0.05, max_tpr=0.2)
"""


def synthetic_conftest(*, n: int, hidden: int, epochs: int) -> str:
    """A conftest auditing a small recipe MLP on ``n`` points of the synthetic example data set."""
    return f"""
import pytest
from pytest_privacy import TrainingRecipe, load_example_dataset

@pytest.fixture(scope="session")
def privacy_dataset():
    return load_example_dataset("synthetic", n={n})

@pytest.fixture(scope="session")
def privacy_recipe():
    return TrainingRecipe(hidden=({hidden},), epochs={epochs})
"""


def damage_entry(store, key: str, damage: str) -> None:
    """Damage ``store``'s entry for ``key`` in place: ``truncate`` it, flip a byte of its tensor data
    (``flip_data_byte``: only the checksum can notice) or of its stored checksum (``flip_header_byte``),
    or replace it with ``garbage`` or nothing (``empty``)."""
    path = store._entry(key)
    blob = bytearray(store.fs.cat_file(path))
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip_data_byte":
        blob[-5] ^= 0xFF
    elif damage == "flip_header_byte":
        blob[blob.index(b'"sha256":"') + 12] ^= 0x01
    elif damage == "garbage":
        blob = bytearray(b"not a safetensors file")
    elif damage == "empty":
        blob = bytearray()
    else:
        raise ValueError(f"unknown damage {damage!r}")
    store.fs.pipe_file(path, bytes(blob))


# A tiny causal language model in plain torch (an embedding, a GRU, a head tied to nothing) and a
# fine-tuning loop a team might write: AdamW on the masked next-token loss. Written as source so that
# pytester conftests run the same code the in-process tests import.
TINY_LM_SOURCE = '''
import numpy as np
import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab, width=32):
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(vocab, width), nn.GRU(width, 2 * width, batch_first=True), nn.Linear(2 * width, vocab)

    def forward(self, ids):
        return self.head(self.rnn(self.embed(ids))[0])


def finetune_tiny(data, *, seed, device, epochs=30, vocab=None):
    torch.manual_seed(seed)
    model = TinyLM(vocab or len(data.tokenizer)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    ids, mask = torch.from_numpy(data.ids).to(device), torch.from_numpy(data.mask).to(device)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for b in np.array_split(order.permutation(len(ids)), max(1, len(ids) // 32)):
            logits = model(ids[b])[:, :-1]
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[b][:, 1:].reshape(-1), reduction="none")
            loss = (loss * mask[b][:, 1:].reshape(-1)).sum() / mask[b][:, 1:].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
'''

exec(TINY_LM_SOURCE)  # TinyLM, finetune_tiny

LM_CONFTEST = TINY_LM_SOURCE + '''
import pytest
from pytest_privacy import load_example_dataset


@pytest.fixture(scope="session")
def privacy_dataset():
    return load_example_dataset("tickets", n=200)


@pytest.fixture(scope="session")
def privacy_train_fn():
    def finetune(data, *, seed, device):
        return finetune_tiny(data, seed=seed, device=device, epochs=EPOCHS, vocab=VOCAB)
    return finetune


VOCAB = len(load_example_dataset("tickets", n=200).tokenizer)
EPOCHS = 30
'''


def linear_problem(n, dim, n_classes, seed):
    """A linear classifier's weights, points, labels (five misclassified), each point's exact distance to
    another class's region (0 when misclassified) and which points it classifies right."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_classes, dim))
    b = rng.normal(size=n_classes)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    z = x.astype(np.float64) @ w.T + b
    pred = z.argmax(1)
    y = pred.copy()
    y[:5] = (y[:5] + 1) % n_classes  # five misclassified points
    # Distance from x to the region of another class: min over j != y of the distance to the
    # hyperplane z_y = z_j (the region of y is an intersection of half-spaces).
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (z[rows, y][:, None] - z) / np.linalg.norm(w[y][:, None, :] - w[None], axis=2)
    d[rows, y] = np.inf
    true = np.where(pred == y, d.min(axis=1), 0.0)
    return w, b, x, y, true, pred == y

