"""A Hugging Face causal LM through the real paths: a tokenizer trained locally (``tokenizers``), a tiny
GPT-2 pretrained on public tickets and saved, each fine-tune loading it with ``from_pretrained`` from
that folder and training LoRA adapters with ``peft``; audited, extracted from and canary-tested like
any model (outputs with ``.logits``, an ``attention_mask`` argument, a peft wrapper)."""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
tokenizers = pytest.importorskip("tokenizers")

import torch  # noqa: E402

from pytest_privacy import (  # noqa: E402
    PrivacyTrainer,
    TextDataset,
    assert_canary_exposure_below,
    load_example_dataset,
    measure_attack,
)
from pytest_privacy.data.text import DEFAULT_CANARY_FORMAT  # noqa: E402
from pytest_privacy.engine.store import ModelStore  # noqa: E402


def _train(model, ids, mask, *, epochs, lr, seed, params):
    opt = torch.optim.AdamW(params, lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        for b in np.array_split(rng.permutation(len(ids)), max(1, len(ids) // 32)):
            labels = ids[b].masked_fill(mask[b] == 0, -100)
            loss = model(input_ids=ids[b], attention_mask=mask[b], labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A local 'hub': the tokenizer, the private texts, and the pretrained base in a folder."""
    tickets = load_example_dataset("tickets", n=500, seed=1)
    public, private = tickets.texts[:300], tickets.texts[300:]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"])
    tok.train_from_iterator([*tickets.texts, DEFAULT_CANARY_FORMAT, " ".join("0123456789")], trainer)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=1, n_head=2)
    base = transformers.GPT2LMHeadModel(config)
    pre = TextDataset(public, tokenizer=tok, max_length=64)
    _train(base, torch.from_numpy(pre.ids), torch.from_numpy(pre.mask).long(), epochs=3, lr=1e-2, seed=0,
           params=base.parameters())
    folder = tmp_path_factory.mktemp("base")
    base.save_pretrained(folder)
    return TextDataset(private, tokenizer=tok, max_length=64), folder


def _lora(folder, epochs):
    def finetune(data, *, seed, device):
        torch.manual_seed(seed)
        model = transformers.GPT2LMHeadModel.from_pretrained(folder).to(device)
        model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, target_modules=["c_attn", "c_fc", "c_proj"],
                                                           fan_in_fan_out=True))
        ids, mask = torch.from_numpy(data.ids).to(device), torch.from_numpy(data.mask).long().to(device)
        return _train(model, ids, mask, epochs=epochs, lr=3e-2, seed=seed,
                      params=[p for p in model.parameters() if p.requires_grad])

    return finetune


def test_a_lora_fine_tune_of_a_pretrained_gpt2_is_audited_and_cached(hub, tmp_path):
    from pytest_privacy.data.likelihood import token_statistics

    text, folder = hub
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    setup = trainer.audit(_lora(folder, 25), text, n_references=4, seed=0)
    data = setup.membership_data()
    live = setup.target.model  # the peft model itself: read with its attention mask, through .logits
    assert isinstance(live, peft.PeftModel)
    direct = token_statistics(live, data.text.ids, data.text.mask)
    np.testing.assert_allclose(token_statistics(setup.target, data.text.ids, data.text.mask).lp, direct.lp, atol=1e-5)
    data.base = transformers.GPT2LMHeadModel.from_pretrained(folder)
    scores = {a: measure_attack(setup.target, data, attack=a, fpr=0.1) for a in ("lm_loss", "ref_base", "lm_lira")}
    assert scores["ref_base"].auc != scores["lm_loss"].auc  # the base model was read
    # A LoRA fine-tune of this tiny GPT-2 leaks little (measured at 40 epochs, 4 references: lm_lira AUC 0.51
    # with its shared variance, 0.58 with each text's own; ref_base 0.61): the honest verdict at FPR 0.1 is no FAIL.
    assert all(r.auc < 0.75 for r in scores.values())
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    again.audit(_lora(folder, 25), text, n_references=4, seed=0)
    assert again.models_trained == 0 and again.models_loaded == 5


def test_canaries_in_a_hugging_face_fine_tune(hub):
    text, folder = hub
    run = PrivacyTrainer().lm_canary_run(_lora(folder, 25), text, seed=0)
    r = assert_canary_exposure_below(run, max_exposure=13.3, on_inconclusive="warn")  # the space's 13.29 bits: never above
    assert [row.repetitions for row in r.exposures] == [1, 4, 16]
    assert r.exposures[-1].exposure > r.exposures[0].exposure  # 16 copies are exposed more than one


def test_the_example_base_is_pretrained_once_cached_by_the_store_and_loaded_with_from_pretrained(tmp_path, monkeypatch):
    """example_base: a tiny GPT-2 pretrained on public texts, saved for from_pretrained; a second call
    reads the store's entry (pretraining nothing) and saves the same weights; an entry damaged by hand is
    pretrained again, not trusted; bad settings are errors before any training."""
    from helpers import damage_entry

    from pytest_privacy.engine import example_base as module

    public = load_example_dataset("tickets", n=120, seed=3)
    store = ModelStore(tmp_path / "store")
    first = module.example_base(public, folder=tmp_path / "a", store=store, width=16, layers=1, epochs=2, lr=1e-2)
    model = transformers.AutoModelForCausalLM.from_pretrained(first)
    assert model.config.vocab_size == len(public.tokenizer) and model.config.n_layer == 1
    ids = torch.from_numpy(public.ids[:4])
    untrained = transformers.GPT2LMHeadModel(model.config)
    loss = lambda m: m(input_ids=ids, labels=ids.masked_fill(~torch.from_numpy(public.mask[:4]), -100)).loss  # noqa: E731
    assert loss(model) < loss(untrained) - 1.0  # pretrained: it predicts the tickets' words
    (key,) = [f.split("/")[-1].removesuffix(".safetensors") for f in store._relative_files() if f.endswith(".safetensors")]

    def no_training(*args, **kwargs):
        raise AssertionError("pretrained again although the store holds it")

    with monkeypatch.context() as m:
        m.setattr(module, "_pretrain", no_training)
        second = module.example_base(public, folder=tmp_path / "b", store=store, width=16, layers=1, epochs=2, lr=1e-2)
    again = transformers.AutoModelForCausalLM.from_pretrained(second)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    damage_entry(store, key, "flip_data_byte")
    with pytest.warns(UserWarning, match="corrupt|checksum|damaged"):
        third = module.example_base(public, folder=tmp_path / "c", store=store, width=16, layers=1, epochs=2, lr=1e-2)
    assert torch.equal(transformers.AutoModelForCausalLM.from_pretrained(third).lm_head.weight, model.lm_head.weight)
    # Two CI jobs asking for another base at once: one pretrains under the store's lock, the other reads it.
    import threading

    calls, pretrain = [], module._pretrain
    monkeypatch.setattr(module, "_pretrain", lambda *a, **k: calls.append(1) or pretrain(*a, **k))
    folders = [tmp_path / "e", tmp_path / "f"]
    jobs = [threading.Thread(target=module.example_base, args=(public,), kwargs=dict(folder=f, store=store, width=8, layers=1, epochs=1))
            for f in folders]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(calls) == 1 and (folders[0] / "config.json").exists() and (folders[1] / "config.json").exists()
    for kwargs, message in [({"width": 15}, "multiple of heads"), ({"epochs": 0}, "epochs"), ({"lr": -1}, "lr")]:
        with pytest.raises(ValueError, match=message):
            module.example_base(public, folder=tmp_path / "d", **kwargs)
    with pytest.raises(TypeError, match="TextDataset"):
        module.example_base(public.texts, folder=tmp_path / "d")
