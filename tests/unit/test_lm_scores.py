"""The language-model scores against literal float64 implementations written from DESIGN.md section 10
(loops over tokens, no vectorisation), the per-token statistics against a direct computation on a
small causal model, and TextDataset's tokenisation and refusals."""

import math
import zlib

import numpy as np
import pytest

from pytest_privacy.attacks.lm.scores import (
    lm_loss,
    min_k,
    min_k_plus_plus,
    ref_base,
    zlib_score,
)
from pytest_privacy.data.text import TextDataset


def _random_batch(seed=0, n=7, t=11):
    rng = np.random.default_rng(seed)
    lp = -rng.gamma(2.0, 1.0, size=(n, t))
    lengths = rng.integers(2, t + 1, size=n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    return lp, mask, rng


def _tokens(lp_row, mask_row):
    return [float(lp_row[t]) for t in range(1, len(lp_row)) if mask_row[t]]


def test_lm_loss_zlib_and_min_k_are_the_formulas():
    lp, mask, _ = _random_batch()
    texts = [f"ticket {i}: " + "refund " * i + "please" for i in range(len(lp))]
    for i in range(len(lp)):
        tokens = _tokens(lp[i], mask[i])
        mean = sum(tokens) / len(tokens)
        assert lm_loss(lp, mask)[i] == pytest.approx(mean, rel=1e-12)
        bits = 8 * len(zlib.compress(texts[i].encode("utf-8")))
        assert zlib_score(lp, mask, texts)[i] == pytest.approx(mean / bits, rel=1e-12)
        for k in (0.2, 0.5, 1.0):
            lowest = sorted(tokens)[: math.ceil(k * len(tokens))]
            assert min_k(lp, mask, k=k)[i] == pytest.approx(sum(lowest) / len(lowest), rel=1e-12)


def test_min_k_plus_plus_and_ref_base_are_the_formulas():
    lp, mask, rng = _random_batch(1)
    mu, sigma = lp + rng.normal(size=lp.shape), rng.uniform(0.5, 2.0, size=lp.shape)
    base = lp - rng.uniform(0, 1, size=lp.shape)
    for i in range(len(lp)):
        z = [(lp[i, t] - mu[i, t]) / sigma[i, t] for t in range(1, lp.shape[1]) if mask[i, t]]
        lowest = sorted(z)[: math.ceil(0.2 * len(z))]
        assert min_k_plus_plus(lp, mu, sigma, mask)[i] == pytest.approx(sum(lowest) / len(lowest), rel=1e-12)
        diff = sum(_tokens(lp[i], mask[i])) / len(_tokens(lp[i], mask[i])) - sum(_tokens(base[i], mask[i])) / len(_tokens(base[i], mask[i]))
        assert ref_base(lp, base, mask)[i] == pytest.approx(diff, rel=1e-12)


def test_padding_and_the_first_token_are_never_read():
    lp, mask, _ = _random_batch(2)
    spoiled = lp.copy()
    spoiled[~mask] = np.nan  # padding may hold anything
    spoiled[:, 0] = -1e9  # nothing predicts the first token
    np.testing.assert_array_equal(lm_loss(spoiled, mask), lm_loss(lp, mask))
    np.testing.assert_array_equal(min_k(spoiled, mask), min_k(lp, mask))


def test_a_uniform_next_token_distribution_scores_zero_not_an_error():
    lp, mask, _ = _random_batch(4)
    np.testing.assert_array_equal(min_k_plus_plus(lp, lp, np.zeros_like(lp), mask), np.zeros(len(lp)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lp, m: lm_loss(lp, m[:, :-1]), "one shape"),
        (lambda lp, m: lm_loss(lp, m.astype(int)), "boolean"),
        (lambda lp, m: lm_loss(np.where(m, np.nan, lp), m), "finite"),
        (lambda lp, m: lm_loss(lp, np.eye(*m.shape, dtype=bool)), "fewer than 2 real tokens"),
        (lambda lp, m: min_k(lp, m, k=0), "k must be"),
        (lambda lp, m: min_k(lp, m, k=True), "k must be"),
        (lambda lp, m: zlib_score(lp, m, ["one"]), "one text per row"),
        (lambda lp, m: min_k_plus_plus(lp, lp, -np.ones_like(lp), m), "sigma must be >= 0"),
        (lambda lp, m: min_k_plus_plus(lp, lp - 1, np.zeros_like(lp), m), "lp must equal mu"),
    ],
)
def test_bad_inputs_are_named(call, message):
    lp, mask, _ = _random_batch(3)
    with pytest.raises(ValueError, match=message):
        call(lp, mask)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_token_statistics_read_a_causal_model_position_by_position(dtype):
    """Against a literal float64 loop: exact for a float64 model; a float32 model's statistics are reduced in
    float32 (the store keeps float32), within a few float32 roundings (eps 1.2e-7) of the float64 values."""
    torch = pytest.importorskip("torch")
    from pytest_privacy.data.likelihood import token_statistics

    vocab = 13
    torch.manual_seed(0)

    class TinyLM(torch.nn.Module):
        """Logits at t from the tokens up to t (a causal running mean of embeddings)."""

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, 8)
            self.out = torch.nn.Linear(8, vocab)

        def forward(self, ids, attention_mask=None):
            e = self.embed(ids).cumsum(1) / torch.arange(1, ids.shape[1] + 1)[None, :, None]
            return type("Out", (), {"logits": self.out(e)})()  # an object with .logits, as HF models return

    model = TinyLM().to(getattr(torch, dtype))
    rel = 1e-12 if dtype == "float64" else 1e-6
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(5, 9)).astype(np.int64)
    mask = np.arange(9)[None, :] < np.array([9, 4, 2, 9, 6])[:, None]
    stats = token_statistics(model, ids, mask, spread=True, batch_size=2)
    plain = token_statistics(model, ids, mask, batch_size=3)
    assert plain.mu is None and plain.sigma is None and np.array_equal(plain.lp, stats.lp)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.from_numpy(ids)).logits.double(), -1).numpy()
    for i in range(5):
        for t in range(1, 9):
            assert stats.lp[i, t] == pytest.approx(logp[i, t - 1, ids[i, t]], rel=rel)
            p = np.exp(logp[i, t - 1])
            mu = float((p * logp[i, t - 1]).sum())
            assert stats.mu[i, t] == pytest.approx(mu, rel=10 * rel)
            assert stats.sigma[i, t] == pytest.approx(math.sqrt((p * (logp[i, t - 1] - mu) ** 2).sum()), rel=10 * rel)
    assert np.isfinite(lm_loss(stats.lp, mask)).all()
    with pytest.raises(ValueError, match=r"logits \[B, T, V\]"):
        token_statistics(lambda ids: ids.float(), ids, mask)


def test_text_datasets_tokenise_once_and_keep_ids_int64():
    vocab = {w: i + 1 for i, w in enumerate("my card number is please refund order".split())}
    encode = lambda text: [vocab[w] for w in text.split()]  # noqa: E731  any callable str -> list[int]
    texts = ["my card number is", "please refund", "refund my order please refund"]
    with pytest.raises(ValueError, match="1 of 3 texts are longer than max_length=4 tokens .text 2: 5.*truncate=True"):
        TextDataset(texts, tokenizer=encode, max_length=4)  # never cut silently
    data = TextDataset(texts, tokenizer=encode, max_length=4, truncate=True)
    assert data.truncated == 1 and TextDataset(texts, tokenizer=encode, max_length=5).truncated == 0
    assert data.ids.dtype == np.int64 and data.ids.shape == (3, 4) and data.mask.dtype == np.bool_
    assert data.ids[1].tolist() == [vocab["please"], vocab["refund"], 0, 0] and data.lengths.tolist() == [4, 2, 4]
    assert data.subset([2, 0]).texts == ["refund my order please refund", "my card number is"]

    class Encoding:  # the tokenizers library's Tokenizer: encode(text).ids, not callable
        def __init__(self, ids):
            self.ids = ids

    class Tok:
        def encode(self, text):
            return Encoding(encode(text))

    assert (TextDataset(["please refund"], tokenizer=Tok(), max_length=3).ids == [[vocab["please"], vocab["refund"], 0]]).all()
    given = TextDataset(ids=np.array([[5, 6, 7]], dtype=np.int32), mask=np.ones((1, 3), bool))
    assert given.ids.dtype == np.int64 and given.texts is None
    for kwargs, message in [
        ({}, "one of the two"),
        ({"texts": ["a b"], "ids": np.ones((1, 2), int)}, "one of the two"),
        ({"texts": ["please refund"], "tokenizer": encode}, "max_length"),
        ({"texts": ["please refund"], "max_length": 4}, "need a tokenizer"),
        ({"texts": ["please"], "tokenizer": encode, "max_length": 4}, "needs 2"),
        ({"texts": [], "tokenizer": encode, "max_length": 4}, "empty"),
        ({"ids": np.ones((2, 3))}, "integer token ids"),
        ({"ids": np.ones((2, 3), int)}, "attention mask"),
    ]:
        with pytest.raises(ValueError, match=message):
            TextDataset(**kwargs)
    with pytest.raises(TypeError, match="sequence of str"):
        TextDataset("please refund", tokenizer=encode, max_length=4)


def test_lm_lira_is_the_gaussian_test_on_each_texts_mean_log_likelihood():
    from scipy import stats

    from pytest_privacy.attacks.lm.scores import lm_lira
    from pytest_privacy.engine.seeds import balanced_keep

    lp, mask, rng = _random_batch(4, n=6, t=9)
    m = 8
    keep = balanced_keep(m, len(lp), 0)
    refs = lp[None] + rng.normal(scale=0.3, size=(m, *lp.shape)) + 0.5 * keep[:, :, None]
    scores = lm_lira(lp, refs, keep, mask, variance="per_example")
    fixed = lm_lira(lp, refs, keep, mask)  # the default below 64 references: one variance, the IN values'
    phi = lambda row, i: sum(_tokens(row, mask[i])) / len(_tokens(row, mask[i]))  # noqa: E731
    all_in = [phi(refs[j, i], i) for i in range(len(lp)) for j in range(m) if keep[j, i]]
    for i in range(len(lp)):
        ins = [phi(refs[j, i], i) for j in range(m) if keep[j, i]]
        outs = [phi(refs[j, i], i) for j in range(m) if not keep[j, i]]
        target = phi(lp[i], i)
        expected = stats.norm.logpdf(target, np.median(ins), np.std(ins)) - stats.norm.logpdf(target, np.median(outs), np.std(outs))
        assert scores[i] == pytest.approx(expected, rel=1e-10)
        s = np.std(all_in)
        assert fixed[i] == pytest.approx(stats.norm.logpdf(target, np.median(ins), s) - stats.norm.logpdf(target, np.median(outs), s), rel=1e-9)
    with pytest.raises(ValueError, match=r"\[M, N, T\]"):
        lm_lira(lp, refs[:, :3], keep, mask)


def test_lm_rmia_ratio_is_the_target_over_the_references_mean_token_probability():
    """Literal float64 loop: p(x|theta) = exp(mean_t lp_t), p(x) = (mean over IN references + mean over
    OUT references) / 2, the score log p(x|theta) - log p(x) (RMIA's ratio, Zarifzadeh et al. 2024)."""
    from pytest_privacy.attacks.lm.scores import lm_rmia_ratio
    from pytest_privacy.engine.seeds import balanced_keep

    lp, mask, rng = _random_batch(5, n=6, t=9)
    m = 6
    keep = balanced_keep(m, len(lp), 1)
    refs = lp[None] + rng.normal(scale=0.3, size=(m, *lp.shape)) + 0.4 * keep[:, :, None]
    scores = lm_rmia_ratio(lp, refs, keep, mask)
    for i in range(len(lp)):
        prob = lambda row: math.exp(sum(_tokens(row, mask[i])) / len(_tokens(row, mask[i])))  # noqa: E731
        ins = [prob(refs[j, i]) for j in range(m) if keep[j, i]]
        outs = [prob(refs[j, i]) for j in range(m) if not keep[j, i]]
        marginal = (sum(ins) / len(ins) + sum(outs) / len(outs)) / 2
        assert scores[i] == pytest.approx(math.log(prob(lp[i]) / marginal), rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError, match=r"\[M, N, T\]"):
        lm_rmia_ratio(lp, refs[:, :3], keep, mask)


def _memorising_lm(torch, texts_ids, vocab):
    """A causal 'model' that has memorised ``texts_ids``: at each position it puts its mass on the token
    that followed the same (previous, current) pair in a memorised text, else spreads it evenly."""
    table = {}
    for row in texts_ids:
        for a, b, c in zip(row, row[1:], row[2:]):
            table[(int(a), int(b))] = int(c)

    def model(ids):
        logits = torch.zeros(*ids.shape, vocab)
        for i in range(ids.shape[0]):
            for t in range(1, ids.shape[1]):
                nxt = table.get((int(ids[i, t - 1]), int(ids[i, t])))
                if nxt is not None:
                    logits[i, t, nxt] = 10.0
        return logits

    return model


def test_greedy_continuations_reproduce_what_the_model_memorised_and_nothing_else():
    torch = pytest.importorskip("torch")
    from pytest_privacy.attacks.lm.extraction import (
        continuations,
        extraction_secrets,
        reproduced,
    )

    rng = np.random.default_rng(0)
    vocab = 50
    ids = rng.integers(1, vocab, size=(8, 12)).astype(np.int64)
    mask = np.ones_like(ids, dtype=bool)
    members = ids[:4]
    model = _memorising_lm(torch, members, vocab)
    gen = continuations(model, ids, mask, prefix=4, suffix=8, batch_size=3)
    assert gen.shape == (8, 8) and gen.dtype == np.int64
    # greedy by hand for one record: the argmax at the last position, appended, eight times
    row = list(ids[5, :4])
    for _ in range(8):
        row.append(int(model(torch.tensor([row]))[0, -1].argmax()))
    assert gen[5].tolist() == row[4:]
    text = TextDataset(ids=ids, mask=mask, pii_spans=[[(6, 9)]] * 8)
    secrets, tried = extraction_secrets(text, prefix=4, suffix=8)
    assert tried.all() and sorted({s.kind for s in secrets}) == ["pii", "suffix"]
    found = reproduced(model, text, secrets, batch_size=3)
    # members' suffixes (and the spans inside them) come back, non-members' do not
    assert sorted({s.record for s in found}) == [0, 1, 2, 3] and {s.kind for s in found} == {"pii", "suffix"}
    for s in found:  # each reproduced secret is the greedy continuation's tokens at its place
        assert tuple(gen[s.record, s.start - 4 : s.end - 4]) == s.tokens == tuple(ids[s.record, s.start : s.end])
    # prompted before the span instead: the span comes back for members only
    spans, _ = extraction_secrets(text)
    assert [s.prompt for s in spans] == [6] * 8 and sorted(s.record for s in reproduced(model, text, spans)) == [0, 1, 2, 3]
    again = continuations(model, ids, mask, prefix=4, suffix=8, sample=True, seed=3, batch_size=8)
    assert np.array_equal(again, continuations(model, ids, mask, prefix=4, suffix=8, sample=True, seed=3, batch_size=2))
    with pytest.raises(ValueError, match="fewer than prefix"):
        continuations(model, ids, np.arange(12)[None, :].repeat(8, 0) < 3, prefix=4, suffix=2)
    with pytest.raises(ValueError, match="prefix and suffix"):
        continuations(model, ids, mask, prefix=0, suffix=2)


def test_the_tickets_example_marks_its_pii_as_token_spans():
    from pytest_privacy import load_example_dataset

    data = load_example_dataset("tickets", n=50, seed=3)
    again = load_example_dataset("tickets", n=50, seed=3)
    assert data.texts == again.texts and np.array_equal(data.ids, again.ids)  # deterministic in (n, seed)
    assert data.texts != load_example_dataset("tickets", n=50, seed=4).texts
    assert data.ids.dtype == np.int64 and data.ids.shape == (50, 64) and len(data.pii_spans) == 50
    for i in range(50):
        assert len(data.pii_spans[i]) == 3  # a name, a phone number, an e-mail address
        for start, end in data.pii_spans[i]:
            piece = data.tokenizer.decode(data.ids[i, start:end])
            assert piece.replace(" ", "") in data.texts[i].replace(" ", "")
        assert "@example.com" in data.texts[i]
    sub = data.subset([3, 1])
    assert sub.pii_spans == [data.pii_spans[3], data.pii_spans[1]] and sub.texts == [data.texts[3], data.texts[1]]
    with pytest.raises(ValueError, match="n must be an integer"):
        load_example_dataset("tickets", n=1)
    with pytest.raises(ValueError, match="PII span"):
        TextDataset(ids=data.ids[:1], mask=data.mask[:1], pii_spans=[[(0, 99)]])


def test_lm_scores_by_name_find_a_memorised_text_and_refuse_what_they_cannot_run():
    torch = pytest.importorskip("torch")
    from pytest_privacy import load_example_dataset
    from pytest_privacy.attacks.lm.runner import LM_ATTACKS, lm_scores
    from pytest_privacy.stats.roc import auc

    data = load_example_dataset("tickets", n=80, seed=0)
    member = np.arange(80) < 40
    vocab = len(data.tokenizer)
    model = _memorising_lm(torch, [row[: int(n)] for row, n in zip(data.ids[member], data.lengths[member])], vocab)

    def base(ids):  # knows nothing: every token alike
        return torch.zeros(*ids.shape, vocab)

    for attack in LM_ATTACKS:
        scores = lm_scores(model, data, attack, base=base, batch_size=32)
        # better than chance by over 2 standard errors (AUC's is about 0.065 at 40 and 40); min_k reads
        # mostly tokens this toy model cannot predict for anyone, so they separate least (measured 0.71,
        # Min-K%++ 0.71; the others 1.0)
        assert scores.shape == (80,) and auc(scores, member) > 0.65, attack
    with pytest.raises(ValueError, match="Did you mean 'min_k'"):
        lm_scores(model, data, "mink")
    with pytest.raises(ValueError, match="pass base="):
        lm_scores(model, data, "ref_base")
    with pytest.raises(ValueError, match="texts themselves"):
        lm_scores(model, TextDataset(ids=data.ids, mask=data.mask), "zlib")
    with pytest.raises(TypeError, match="TextDataset"):
        lm_scores(model, (data.ids, data.mask), "lm_loss")


def test_min_k_plus_plus_reads_a_float32_uniform_distribution_as_flat():
    """A uniform next-token distribution reduced in float32 has a sigma of rounding noise, not 0: its tokens
    are exactly typical (z = 0), not a ratio of two rounding errors."""
    from pytest_privacy.attacks.lm.scores import min_k_plus_plus

    mu = np.full((2, 5), -np.log(50.0))
    lp = mu * (1 + np.array([[0, 3e-7, -2e-7, 1e-7, 0], [0, -1e-7, 2e-7, 0, 1e-7]]))
    sigma = np.abs(mu) * np.array([[0, 2e-7, 5e-8, 3e-7, 1e-7], [0, 1e-7, 1e-7, 2e-7, 4e-8]])
    mask = np.ones((2, 5), dtype=bool)
    np.testing.assert_array_equal(min_k_plus_plus(lp, mu, sigma, mask), [0.0, 0.0])
    sigma[0, 1] = 0.5  # a real spread: that token is scored, (lp - mu) / sigma
    assert min_k_plus_plus(lp, mu, sigma, mask)[0] != 0.0


def test_token_statistics_read_probabilities_as_log_probabilities_and_refuse_a_smaller_vocabulary():
    """A model (an API) returning next-token probabilities gets the statistics of its log-probabilities, not
    of a softmax over probabilities (nearly uniform: every gate would PASS); ids beyond its vocabulary are
    a clear error, not an index error from inside torch."""
    torch = pytest.importorskip("torch")
    from pytest_privacy.data.likelihood import token_statistics

    torch.manual_seed(0)
    table = torch.randn(10, 7, dtype=torch.float64)  # reads 10 token ids, predicts over 7

    def logits_model(ids):
        return table[ids]

    def probability_model(ids):
        return torch.softmax(table[ids], -1)

    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 1]])
    mask = np.ones_like(ids, dtype=bool)
    expected = token_statistics(logits_model, ids, mask, spread=True)
    got = token_statistics(probability_model, ids, mask, spread=True)
    for a, b in ((got.lp, expected.lp), (got.mu, expected.mu), (got.sigma, expected.sigma)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="token id 9 is beyond the model's 7 next-token logits"):
        token_statistics(logits_model, np.array([[1, 2, 3, 9]]), np.ones((1, 4), dtype=bool))
