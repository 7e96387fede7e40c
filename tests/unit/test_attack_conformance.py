"""One conformance test every registered attack passes (as torchmetrics runs every metric through one
tester): scores of the right shape, finite, deterministic, higher for members of a model with a
planted leak (a classifier, or for the language-model attacks a causal LM that knows its texts), and a
clear error for a model that is not one. A new attack is covered by registering it.
"""

import numpy as np
import pytest

from pytest_privacy import MembershipData, References, balanced_keep
from pytest_privacy.attacks import ATTACKS
from pytest_privacy.attacks.runner import attack_scores
from pytest_privacy.data import Population
from pytest_privacy.stats.roc import auc

N, L, C, M = 160, 12, 4, 8  # audit points, signal length, classes, references


class Memoriser:
    """A 1-nearest-neighbour classifier: it answers its training points' labels exactly, and near
    them too, so its members are exposed to every kind of attack (scores and labels alike)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x.reshape(len(x), -1), y

    def __call__(self, xb: np.ndarray) -> np.ndarray:
        flat = np.asarray(xb, dtype=np.float32).reshape(len(xb), -1)
        d2 = ((flat[:, None, :] - self.x[None]) ** 2).sum(-1)
        nearest = d2.argmin(1)
        # logits: the nearest training label, more confident the closer the point
        logits = np.zeros((len(flat), C))
        logits[np.arange(len(flat)), self.y[nearest]] = 3.0 / (1.0 + d2.min(1))
        return logits


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N + 40, L)).astype(np.float32)
    y = rng.integers(0, C, N + 40)  # random labels: only memorising fits them
    pop_x, pop_y, x, y = x[N:], y[N:], x[:N], y[:N]
    is_member = np.arange(N) % 2 == 0
    keep = balanced_keep(M, N, 0)  # every point IN for half of the references
    refs_models = [Memoriser(x[k], y[k]) for k in keep]
    references = References(
        np.stack([r(x) for r in refs_models]), keep,
        predict=lambda xb: np.stack([r(xb) for r in refs_models]),
        population=Population(pop_x, pop_y, np.stack([r(pop_x) for r in refs_models])[:, :, None, :]),
    )
    return Memoriser(x[is_member], y[is_member]), MembershipData(x, y, is_member, references)


class TextMemoriser:
    """A causal LM that knows its training texts: on a prefix of one of them it puts most of its mass
    on that text's next token; elsewhere it is uniform over the vocabulary."""

    def __init__(self, ids: np.ndarray, vocab: int) -> None:
        self.texts, self.vocab = {tuple(r) for r in ids.tolist()}, vocab

    def __call__(self, batch):
        import torch

        out = torch.zeros(*batch.shape, self.vocab, dtype=torch.float64)
        for i, row in enumerate(batch.tolist()):
            if tuple(row) in self.texts:
                out[i, torch.arange(len(row) - 1), torch.tensor(row[1:])] = 4.0
        return out


@pytest.fixture(scope="module")
def planted_text():
    from pytest_privacy.data.likelihood import token_statistics
    from pytest_privacy.data.text import TextDataset
    from pytest_privacy.data.text_membership import TextMembershipData, TextReferences

    rng, vocab = np.random.default_rng(1), 50
    lengths = rng.integers(4, 13, N)
    mask = np.arange(12)[None] < lengths[:, None]
    ids = np.where(mask, rng.integers(2, vocab, (N, 12)), 0)
    texts = [" ".join(map(str, row[m])) for row, m in zip(ids, mask)]
    text = TextDataset(ids=ids, mask=mask)
    text.texts = texts
    is_member = np.arange(N) % 2 == 0
    keep = balanced_keep(M, N, 0)
    lp = np.stack([token_statistics(TextMemoriser(ids[k], vocab), ids, mask).lp for k in keep])
    base = TextMemoriser(ids[:0], vocab)  # knows no text: the base a fine-tune started from
    data = TextMembershipData(text, is_member, TextReferences(lp, keep, 0), base=base)
    return TextMemoriser(ids[is_member], vocab), data


# Small budgets keep the label-only attacks quick; the planted leak is strong.
OPTIONS = {"label_only_noise": {"k": 10}, "label_only_boundary": {"max_queries": 40}}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_registered_attack_conforms(planted, planted_text, name):
    spec = ATTACKS[name]
    model, data = planted_text if spec.text else planted
    assert spec.description  # (its suite is checked by register_attack: a registered attack always has one)
    first = attack_scores(model, data, name, attack_options=OPTIONS.get(name))
    again = attack_scores(model, data, name, attack_options=OPTIONS.get(name))
    assert first.scores.shape == (N,) and np.isfinite(first.scores).all()
    np.testing.assert_array_equal(first.scores, again.scores)  # seeded: the same every run
    assert isinstance(first.variant, str) and first.variant
    assert (first.queries is not None) == spec.label_only
    # The planted leak: every attack must rank members above non-members.
    assert auc(first.scores, data.is_member) > 0.6, name
    with pytest.raises(TypeError, match="model must be"):  # a clear refusal, not any error from inside
        attack_scores("not a model", data, name)
