"""An LMRecipe audited through the trainer: LoRA and full fine-tunes of a pretrained GPT-2 loaded from a local
folder with ``from_pretrained``, trained as one program, cached (a re-run trains and scores nothing), each
reference the fine-tune the engine gives alone; a base the engine cannot stack falls back to one model at a
time, saying why and naming the layer; bad recipes are errors before anything trains."""

import warnings

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from pytest_privacy import (  # noqa: E402
    LMRecipe,
    PrivacyTrainer,
    TrainingRecipe,
    load_example_dataset,
    measure_attack,
)
from pytest_privacy.engine.lm_finetune import LMEngineWarning, finetune_models  # noqa: E402
from pytest_privacy.engine.store import ModelStore  # noqa: E402
from tests.helpers import TinyLM  # noqa: E402


@pytest.fixture(scope="module")
def tickets():
    return load_example_dataset("tickets", n=320, seed=3)


@pytest.fixture(scope="module")
def texts(tickets):
    return tickets.subset(np.arange(200, 320))  # the private texts; the first 200 pretrain the base


@pytest.fixture(scope="module")
def folder(tickets, tmp_path_factory):
    """A tiny GPT-2 pretrained on public tickets and saved (LoRA adapts a base that knows the language)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tickets.tokenizer), n_positions=tickets.ids.shape[1], n_embd=32,
                                     n_layer=1, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids, mask = torch.from_numpy(tickets.ids[:200]), torch.from_numpy(tickets.mask[:200])
    for _ in range(4):
        for b in torch.randperm(200).split(20):
            loss = model(input_ids=ids[b], labels=ids[b].masked_fill(~mask[b], -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = tmp_path_factory.mktemp("base")
    model.eval().save_pretrained(path)
    return path


@pytest.mark.parametrize("lora_rank", [16, None], ids=["lora", "full"])
def test_an_lm_recipe_is_audited_stacked_and_cached(texts, folder, tmp_path, lora_rank):
    # (LoRA on a 16-wide base learns slowly: more epochs, so that its fine-tunes learn their own texts)
    recipe = LMRecipe(base=folder, lora_rank=lora_rank, lr=1e-2, epochs=10 if lora_rank else 5, batch_size=8,
                      schedule="constant")
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LMEngineWarning)  # a GPT-2 stacks: no fallback
        setup = trainer.audit(recipe, texts, n_references=4, seed=0)
    assert trainer.models_trained == 5
    data = setup.membership_data()
    assert data.references.lp.shape == (4, len(data.is_member), texts.ids.shape[1])
    result = measure_attack(setup.target, data, attack="lm_lira", fpr=0.1)
    assert 0.0 <= result.auc <= 1.0
    # the fine-tunes learned (their own texts more likely than under the base)
    base = transformers.GPT2LMHeadModel.from_pretrained(folder)
    from pytest_privacy.data.likelihood import token_statistics

    member = data.references.keep[0]
    real = data.text.mask.copy()
    real[:, 0] = False
    gain = data.references.lp[0] - token_statistics(base, data.text.ids, data.text.mask).lp  # log-likelihood gained
    on_members, on_others = gain[member][real[member]].mean(), gain[~member][real[~member]].mean()
    assert on_members > 0.1 and on_members > on_others  # it learned, its own texts most
    # a re-run reads everything from the store
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    warm = again.audit(recipe, texts, n_references=4, seed=0).membership_data()
    assert again.models_trained == 0
    np.testing.assert_array_equal(warm.references.lp, data.references.lp)
    # the cached target's live model (for generation) is the same fine-tune, trained again on demand
    live = setup.target.model
    assert isinstance(live, transformers.GPT2LMHeadModel)
    ids, mask = data.text.ids[:5], data.text.mask[:5]
    np.testing.assert_allclose(token_statistics(live, ids, mask).lp[real[:5]],
                               token_statistics(setup.target, ids, mask).lp[real[:5]], atol=1e-4)


def test_each_stacked_fine_tune_is_the_one_trained_alone(texts, folder):
    recipe = LMRecipe(base=folder, lora_rank=2, lr=2e-2, epochs=1, batch_size=8, warmup_steps=2, grad_clip=0.1)
    base = recipe.base and transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    keep = np.zeros((3, len(texts)), dtype=bool)
    rng = np.random.default_rng(0)
    for row in keep:
        row[rng.permutation(len(texts))[: len(texts) // 2]] = True
    seeds = [np.random.SeedSequence(5, spawn_key=(i,)) for i in range(3)]
    args = dict(device=torch.device("cpu"), budget=1 << 30, precision="float32")
    together = finetune_models(recipe, base, texts.ids, texts.mask, keep, seeds, **args)
    for m in (0, 2):
        alone = finetune_models(recipe, base, texts.ids, texts.mask, keep[[m]], [seeds[m]], **args)[0]
        np.testing.assert_allclose(together[m].statistics["lm_lp"], alone.statistics["lm_lp"], atol=2e-4)
    assert not np.allclose(together[0].statistics["lm_lp"], together[1].statistics["lm_lp"], atol=1e-3)


def test_a_base_that_cannot_be_stacked_trains_one_model_at_a_time_and_says_why(texts):
    vocab = len(texts.tokenizer)
    recipe = LMRecipe(base=lambda: TinyLM(vocab, width=8), lr=1e-2, epochs=1, batch_size=8)  # a GRU: no vmap rule
    keep = np.zeros((2, len(texts)), dtype=bool)
    keep[0, ::2] = keep[1, 1::2] = True
    seeds = [np.random.SeedSequence(1, spawn_key=(i,)) for i in range(2)]
    torch.manual_seed(0)
    base = recipe.base()
    with pytest.warns(LMEngineWarning, match="one at a time.*'rnn'"):
        tuned = finetune_models(recipe, base, texts.ids, texts.mask, keep, seeds, device=torch.device("cpu"),
                                budget=1 << 30, precision="float32")
    assert len(tuned) == 2 and not np.allclose(tuned[0].statistics["lm_lp"], tuned[1].statistics["lm_lp"])


class _TimeFirst(nn.Module):
    """A model whose linear layer sees ``[T, B, d]``: adapters cut by the model axis would mix models."""

    def __init__(self, vocab):
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(vocab, 8), nn.Linear(8, 8), nn.Linear(8, vocab)

    def forward(self, ids):
        h = self.mix(self.embed(ids).transpose(0, 1)).transpose(0, 1)
        return self.head(torch.tanh(h))


def test_lora_on_a_layer_that_is_not_batch_first_falls_back_naming_it(texts):
    vocab = len(texts.tokenizer)
    recipe = LMRecipe(base=lambda: _TimeFirst(vocab), lora_rank=2, target_modules=("mix",), lr=1e-2, batch_size=8)
    keep = np.zeros((2, len(texts)), dtype=bool)
    keep[0, ::2] = keep[1, 1::2] = True
    seeds = [np.random.SeedSequence(1, spawn_key=(i,)) for i in range(2)]
    torch.manual_seed(0)
    with pytest.warns(LMEngineWarning, match="'mix'"):
        finetune_models(recipe, recipe.base(), texts.ids, texts.mask, keep, seeds, device=torch.device("cpu"),
                        budget=1 << 30, precision="float32")


def test_a_new_base_is_a_new_model(texts, folder, tmp_path):
    from pytest_privacy.audit.lm_recipe_source import LMRecipeSource

    recipe = LMRecipe(base=folder, lora_rank=2, batch_size=8)
    seed = np.random.SeedSequence(0)
    keep = np.ones(len(texts), dtype=bool)
    key = LMRecipeSource(recipe).key("data", keep, seed, "cpu")
    assert LMRecipeSource(recipe).key("data", keep, seed, "cpu") == key
    model = transformers.GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] += 1e-3  # the same folder, saved again with one weight changed
    other = tmp_path / "base2"
    model.save_pretrained(other)
    assert LMRecipeSource(LMRecipe(base=other, lora_rank=2, batch_size=8)).key("data", keep, seed, "cpu") != key
    assert LMRecipeSource(LMRecipe(base=folder, lora_rank=4, batch_size=8)).key("data", keep, seed, "cpu") != key


def test_bad_recipes_and_data_are_errors_before_training(texts, folder):
    trainer = PrivacyTrainer()
    with pytest.raises(ValueError, match="target_modules.*no layer .* named 'q_proj'.*c_attn"):
        trainer.audit(LMRecipe(base=folder, lora_rank=2, target_modules=("q_proj",), batch_size=8), texts,
                      n_references=2, seed=0)
    with pytest.raises(ValueError, match="larger than the 60 texts"):
        trainer.audit(LMRecipe(base=folder, batch_size=64), texts, n_references=2, seed=0)
    with pytest.raises(TypeError, match="LMRecipe"):
        trainer.audit(TrainingRecipe(), texts, n_references=2, seed=0)
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="TextDataset"):
        trainer.audit(LMRecipe(base=folder, batch_size=8), (x, np.arange(40) % 2), n_references=2, seed=0)
    from pytest_privacy import TextDataset

    left = TextDataset(ids=texts.ids[:, ::-1].copy(), mask=texts.mask[:, ::-1].copy())  # padding first
    with pytest.raises(ValueError, match="not right-padded"):
        trainer.audit(LMRecipe(base=folder, batch_size=8), left, n_references=2, seed=0)
    small = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=10, n_positions=64, n_embd=8, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="beyond the base's vocabulary of 10"):
        trainer.audit(LMRecipe(base=lambda: small, batch_size=8), texts, n_references=2, seed=0)
    assert trainer.models_trained == 0


class _LooksAhead(nn.Module):
    """Each position sees the mean of the whole text: not a causal language model."""

    def __init__(self, vocab):
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, 8), nn.Linear(8, vocab)

    def forward(self, ids):
        e = self.embed(ids)
        return self.head(e + e.mean(1, keepdim=True))


def test_a_model_that_reads_ahead_is_refused_before_training(texts):
    vocab = len(texts.tokenizer)
    recipe = LMRecipe(base=lambda: _LooksAhead(vocab), batch_size=8)
    keep = np.ones((1, len(texts)), dtype=bool)
    with pytest.raises(ValueError, match="causal language models.*_LooksAhead"):
        finetune_models(recipe, recipe.base(), texts.ids, texts.mask, keep, [np.random.SeedSequence(0)],
                        device=torch.device("cpu"), budget=1 << 30, precision="float32")


def test_a_canary_run_fine_tunes_by_the_recipe_and_is_cached_under_it(texts, folder, tmp_path):
    recipe = LMRecipe(base=folder, lr=1e-2, epochs=3, batch_size=8)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    run = trainer.lm_canary_run(recipe, texts, seed=0)
    assert run.trained and trainer.models_trained == 1
    assert run.candidate_ll.shape == (10 ** run.canaries.secrets.shape[1],)
    assert np.ptp(run.candidate_ll) > 0  # the fine-tune ranks the secrets
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    warm = again.lm_canary_run(recipe, texts, seed=0)
    assert again.models_trained == 0 and not warm.trained
    np.testing.assert_array_equal(warm.candidate_ll, run.candidate_ll)
    other = PrivacyTrainer(store=ModelStore(tmp_path))
    other.lm_canary_run(recipe.model_copy(update={"lr": 2e-2}), texts, seed=0)
    assert other.models_trained == 1  # another recipe is another fine-tune


@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate"])
def test_a_stored_fine_tune_edited_by_hand_is_fine_tuned_again_not_trusted(texts, folder, tmp_path, damage):
    """An LMRecipe's stored statistics are bound to their key like every entry: one damaged by hand is trained
    again (the same fine-tune: the same statistics), never read."""
    from pytest_privacy.audit.dataset import dataset_identity
    from pytest_privacy.audit.lm_recipe_source import LMRecipeSource
    from pytest_privacy.audit.split import Split
    from pytest_privacy.audit.text_packing import text_arrays
    from tests.helpers import damage_entry

    recipe = LMRecipe(base=folder, lora_rank=2, lr=1e-2, batch_size=8)
    store = ModelStore(tmp_path)
    first = PrivacyTrainer(store=store).audit(recipe, texts, n_references=2, seed=0).membership_data()
    _, x, y = text_arrays(texts)
    split = Split.make(len(x), 2, 0)
    source = LMRecipeSource(recipe).on("cpu")
    damage_entry(store, source.key(dataset_identity(x, y), split.keep[1], split.seeds[1], "cpu"), damage)
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    second = again.audit(recipe, texts, n_references=2, seed=0).membership_data()
    assert again.models_trained == 1
    np.testing.assert_allclose(second.references.lp, first.references.lp, atol=1e-5)
