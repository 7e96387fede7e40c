"""A language model fine-tuned by a team's own function, audited like a classifier: the same trainer,
split, store and helpers, on a TextDataset; token ids stay int64, the cache serves a second run, and
every LM attack finds a memorising fine-tune's members and nothing on membership no model saw."""

import numpy as np
import pytest
from helpers import finetune_tiny

from pytest_privacy import (
    PrivacyLeakError,
    PrivacyTrainer,
    Verdict,
    assert_tpr_at_fpr_below,
    load_example_dataset,
    measure_attack,
)
from pytest_privacy.attacks import ATTACKS
from pytest_privacy.audit import PrivacyDataWarning
from pytest_privacy.data.text import TextDataset
from pytest_privacy.data.text_membership import TextMembershipData
from pytest_privacy.engine.store import ModelStore

TEXT = load_example_dataset("tickets", n=200)
VOCAB = len(TEXT.tokenizer)
LM_ATTACKS = [name for name, a in ATTACKS.items() if a.text and name != "ref_base"]


def _finetune(epochs):
    seen = []

    def finetune(data, *, seed, device):
        assert isinstance(data, TextDataset) and data.ids.dtype == np.int64 and data.texts is not None
        seen.append(len(data))
        return finetune_tiny(data, seed=seed, device=device, epochs=epochs, vocab=VOCAB)

    finetune.seen = seen
    return finetune


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    fn = _finetune(12)
    trainer = PrivacyTrainer(store=ModelStore(store))
    setup = trainer.audit(fn, TEXT, n_references=4, seed=0)
    return setup, trainer, fn, store


def test_a_fine_tune_is_audited_on_halves_and_its_members_found_by_every_attack(memorised):
    setup, trainer, fn, _ = memorised
    data = setup.membership_data()
    assert isinstance(data, TextMembershipData) and data.references.n_references == 4
    assert trainer.models_trained == 5 and sorted(set(fn.seen)) == [100]  # balanced halves of 200 texts
    assert data.x.dtype == np.int64 and np.array_equal(data.text.ids, TEXT.ids[setup.points])
    for attack in LM_ATTACKS:
        r = measure_attack(setup.target, data, attack=attack, fpr=0.05)
        assert r.auc_low > 0.6, (attack, r.auc)  # 12 epochs on 100 texts: memorised
    with pytest.raises(PrivacyLeakError, match="min_k"):
        assert_tpr_at_fpr_below(setup.target, data, fpr=0.1, max_tpr=0.3)  # the default (measured strongest)


def test_no_attack_finds_membership_no_model_trained_on(memorised):
    setup, *_ = memorised
    shuffled = setup.membership_data().shuffled_membership(1)
    for attack in LM_ATTACKS:
        r = measure_attack(setup.target, shuffled, attack=attack, fpr=0.05)
        assert r.auc_low < 0.5 < r.auc_high, (attack, r.auc)


def test_a_second_run_trains_nothing_and_scores_the_same(memorised):
    setup, _, _, store = memorised
    again = PrivacyTrainer(store=ModelStore(store))
    warm = again.audit(_finetune(12), TEXT, n_references=4, seed=0)
    assert again.models_trained == 0 and again.models_loaded == 5
    a = measure_attack(setup.target, setup.membership_data(), attack="min_k_plus_plus", fpr=0.05)
    b = measure_attack(warm.target, warm.membership_data(), attack="min_k_plus_plus", fpr=0.05)
    assert a.auc == pytest.approx(b.auc, abs=1e-6)
    # Extraction needs the live target: a warm run trains it once more (from inside generation's no_grad).
    from pytest_privacy.attacks.lm.extraction import pii_extracted

    assert pii_extracted(warm.target, warm.membership_data().text).shape == (len(TEXT),)
    assert again.models_trained == 1


def test_duplicate_texts_are_dropped_with_a_warning_and_a_recipe_is_refused():
    from pytest_privacy import TrainingRecipe

    doubled = TextDataset(TEXT.texts[:40] + TEXT.texts[:3], tokenizer=TEXT.tokenizer, max_length=64)
    trainer = PrivacyTrainer()
    with pytest.warns(PrivacyDataWarning, match="dropped 3 texts"):
        setup = trainer.audit(_finetune(1), doubled, n_references=2, seed=0)
    assert len(setup.membership_data()) == 40
    with pytest.raises(TypeError, match="privacy_train_fn"):
        PrivacyTrainer().audit(TrainingRecipe(), TEXT, n_references=2, seed=0)


def test_an_attack_of_the_other_kind_is_an_error_naming_the_right_ones(memorised):
    setup, *_ = memorised
    with pytest.raises(ValueError, match="audits classifiers; on a language model's texts use one of: lm_loss"):
        measure_attack(setup.target, setup.membership_data(), attack="lira")
    rng = np.random.default_rng(0)
    from pytest_privacy import MembershipData

    data = MembershipData(rng.normal(size=(20, 3)).astype(np.float32), np.arange(20) % 2, np.arange(20) % 2 == 0)
    with pytest.raises(ValueError, match="audits a language model"):
        measure_attack(lambda x: np.zeros((len(x), 2)), data, attack="min_k")
    assert measure_attack(setup.target, setup.membership_data(), fpr=0.05).attack == "min_k"
    without = TextMembershipData(setup.membership_data().text, setup.is_member)
    assert measure_attack(setup.target, without, fpr=0.05).attack == "min_k"
    with pytest.raises(ValueError, match="needs reference fine-tunes"):
        measure_attack(setup.target, without, attack="lm_lira")
    assert measure_attack(setup.target, setup.membership_data(), fpr=0.05).verdict is Verdict.MEASURED


def _judged(gate, *args, **kwargs):
    """A gate's result whatever its verdict (a FAIL's from the error)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return gate(*args, on_inconclusive="warn", **kwargs)
        except PrivacyLeakError:
            return None


def test_a_recipe_audit_pools_every_fine_tune_as_the_target_in_turn(memorised):
    """audit='recipe' on text: 5 fine-tunes x 100 non-members certify an FPR one target's 100 cannot,
    the membership no model trained on is not called a leak by any pooled attack, and Min-K%++ (which
    needs the next-token spread the references do not keep) is judged on the target alone."""
    setup, *_ = memorised
    data = setup.membership_data()
    recipe = data.with_recipe_trials(setup.target)
    assert recipe.recipe.n_models == 5 and recipe.recipe.lp.shape == (5, *TEXT.ids.shape)
    one = _judged(assert_tpr_at_fpr_below, setup.target, data, fpr=0.02, max_tpr=0.3)
    assert one.verdict is Verdict.INCONCLUSIVE and "183 non-members" in one.reason  # 100 cannot certify 0.02
    with pytest.raises(PrivacyLeakError, match=r"(?s)recipe audit of 5 models.*500 members, 500 non-members"):
        assert_tpr_at_fpr_below(setup.target, recipe, fpr=0.02, max_tpr=0.3)
    shuffled = recipe.shuffled_membership(1)
    for attack in LM_ATTACKS:
        r = _judged(assert_tpr_at_fpr_below, setup.target, shuffled, attack=attack, fpr=0.05, max_tpr=0.3)
        assert r is not None and r.verdict is not Verdict.FAIL, attack
        assert ("recipe audit of 5 models" in r.variant) == (attack != "min_k_plus_plus"), (attack, r.variant)
    # lm_lira on every trial: a shared variance (4 references), members ranked above non-members in each.
    from sklearn.metrics import roc_auc_score

    from pytest_privacy.attacks.runner import recipe_scores

    scores, keep, variant = recipe_scores(recipe, "lm_lira")
    assert "fixed variance" in variant and min(roc_auc_score(k, s) for k, s in zip(keep, scores)) > 0.9
    half = recipe.subset(np.arange(100))
    assert half.recipe.lp.shape == (5, 100, TEXT.ids.shape[1]) and half.recipe.keep.shape == (5, 100)
    with pytest.raises(ValueError, match="needs reference fine-tunes"):
        TextMembershipData(data.text, data.is_member).with_recipe_trials(setup.target)


@pytest.fixture(scope="module")
def extracting(memorised):
    """A target fine-tuned 30 epochs on its 100 member texts (a third of them come back, measured) and
    one that learnt nothing, with their audit data."""
    setup, *_ = memorised
    data = setup.membership_data()
    target = finetune_tiny(data.text.subset(np.flatnonzero(data.is_member)), seed=0, device="cpu", epochs=30, vocab=VOCAB)
    untrained = finetune_tiny(TEXT.subset(np.arange(0)), seed=0, device="cpu", epochs=0, vocab=VOCAB)
    return target, untrained, data


def test_pii_of_a_memorised_fine_tune_is_extracted_and_of_an_untrained_one_not(extracting):
    from pytest_privacy import LMAuditResult, assert_no_extraction

    target, untrained, data = extracting
    with pytest.raises(PrivacyLeakError, match="member texts extracted") as failed:
        assert_no_extraction(target, data)
    message = str(failed.value)
    assert "deduplicate the training texts" in message  # the language model's hint
    r = _judged_result(assert_no_extraction, target, data)
    assert r.verdict is Verdict.FAIL and r.extracted == len({s.record for s in r.secrets if s.member}) > 0
    first = next(s for s in r.secrets if s.member)
    assert f"text {first.record} (pii tokens {first.start}-{first.end}, #{first.digest}" in message
    for s in r.secrets:  # named, never said: no secret's text in the message or the stored reason
        secret = TEXT.tokenizer.decode(data.text.ids[s.record, s.start : s.end])
        assert secret not in message and secret not in r.model_dump_json()
    r = assert_no_extraction(untrained, data)
    assert isinstance(r, LMAuditResult) and r.verdict is Verdict.PASS and r.extracted == 0 and r.secrets == []
    assert r.n_members + r.n_nonmembers == len(data)
    with pytest.raises(TypeError, match="TextMembershipData"):
        assert_no_extraction(untrained, TEXT)
    with pytest.raises(ValueError, match="max_extracted"):
        assert_no_extraction(untrained, data, max_extracted=-1)


def _judged_result(gate, *args, **kwargs):
    """A gate's result, a FAIL's included (as the session's reports record it)."""
    from pytest_privacy.report import recording

    with recording() as results:
        try:
            gate(*args, **kwargs)
        except PrivacyLeakError:
            pass
    return results[-1]


def test_extraction_by_seeded_samples_a_pattern_and_whole_suffixes(extracting, monkeypatch):
    """Sampling finds at least what greedy decoding does, the same on a second run; a regular
    expression finds the phone numbers of texts whose PII is not marked; a fixed prefix gives back
    members' whole suffixes; the digests are keyed by the store's secret when it is set."""
    from pytest_privacy import assert_no_extraction

    target, untrained, data = extracting
    greedy = _judged_result(assert_no_extraction, target, data)
    sampled = _judged_result(assert_no_extraction, target, data, samples=4, temperature=0.7, seed=1)
    assert sampled.extracted >= greedy.extracted and "4 samples at temperature 0.7 (seed 1)" in sampled.variant
    assert _judged_result(assert_no_extraction, target, data, samples=4, temperature=0.7, seed=1).secrets == sampled.secrets
    unmarked = TextMembershipData(TextDataset(data.text.texts, tokenizer=TEXT.tokenizer, max_length=64), data.is_member)
    phone = r"\d{3} \d{3} \d{4}"
    by_pattern = _judged_result(assert_no_extraction, target, unmarked, pattern=phone)
    assert by_pattern.verdict is Verdict.FAIL and {s.kind for s in by_pattern.secrets} == {"pattern"}
    assert assert_no_extraction(untrained, unmarked, pattern=phone).verdict is Verdict.PASS
    suffixes = _judged_result(assert_no_extraction, target, data, prefix=20, suffix=8)
    assert suffixes.verdict is Verdict.FAIL and "suffix" in {s.kind for s in suffixes.secrets if s.member}
    assert "prompted with the first 20 tokens" in suffixes.variant
    monkeypatch.setenv("PYTEST_PRIVACY_STORE_KEY", "a secret of this team")
    keyed = _judged_result(assert_no_extraction, target, data)
    assert [s.record for s in keyed.secrets] == [s.record for s in greedy.secrets]
    assert all(a.digest != b.digest for a, b in zip(keyed.secrets, greedy.secrets))
    for kwargs, message in [
        ({"prefix": 0}, r"prefix must be an integer in \[1, inf\)"), ({"samples": -1}, "samples must be"),
        ({"samples": 2, "temperature": 0}, "temperature must be"), ({"pattern": "("}, "regular expression"),
        ({"suffix": 0}, "suffix must be"), ({"prefix": 64}, "no member text has a secret"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(ValueError, match=message):
            assert_no_extraction(target, data, **kwargs)
    ids_only = TextMembershipData(TextDataset(ids=data.text.ids, mask=data.text.mask), data.is_member)
    with pytest.raises(ValueError, match="decoded texts"):
        assert_no_extraction(target, ids_only, pattern=phone)


def test_planted_canaries_are_exposed_by_a_fine_tune_and_not_by_one_that_learnt_nothing(tmp_path):
    from pytest_privacy import LMAuditResult, assert_canary_exposure_below

    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    learnt_nothing = trainer.lm_canary_run(_finetune(0), TEXT, seed=0)
    r = assert_canary_exposure_below(learnt_nothing, max_exposure=10.0)
    assert isinstance(r, LMAuditResult) and r.verdict is Verdict.PASS
    assert [row.repetitions for row in r.exposures] == [1, 4, 16]
    assert sum(row.canaries for row in r.exposures) == int(learnt_nothing.canaries.included.sum())
    planted = learnt_nothing.canaries.training_text(TEXT)
    assert len(planted.pii_spans) == len(planted) and planted.pii_spans[-1] == [(4, 8)]  # the secret, marked
    fine_tune = _finetune(10)
    run = trainer.lm_canary_run(fine_tune, TEXT, seed=0)
    assert fine_tune.seen == [len(TEXT) + int((run.canaries.included * run.canaries.repetitions).sum())]
    with pytest.raises(PrivacyLeakError, match="a secret is exposed"):
        assert_canary_exposure_below(run, max_exposure=10.0)
    again = PrivacyTrainer(store=ModelStore(tmp_path))
    assert not again.lm_canary_run(_finetune(10), TEXT, seed=0).trained and again.models_trained == 0
    with pytest.raises(ValueError, match="length=19"):
        trainer.lm_canary_run(fine_tune, TEXT, seed=0, length=19)
    with pytest.raises(TypeError, match="lm_canary_run fixture"):
        assert_canary_exposure_below(TEXT, max_exposure=10.0)
    no_digits = TextDataset(["no digits here at all"] * 2 + ["nor here"], tokenizer=TEXT.tokenizer.__class__(["no digits here at all nor"]), max_length=8)
    with pytest.raises(ValueError, match="does not know"):
        trainer.lm_canary_run(fine_tune, no_digits, seed=0)


def test_families_and_more_references_work_on_texts(memorised, tmp_path):
    from pytest_privacy.stats.looks import AUTO_SCHEDULE, AdaptiveReferences

    setup, *_ = memorised
    with pytest.raises(PrivacyLeakError, match=r"(?s)a family of 2, Holm-corrected.*lm_lira.*min_k"):
        assert_tpr_at_fpr_below(setup.target, setup.membership_data(), attack=["lm_lira", "min_k"], fpr=0.1, max_tpr=0.3)
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    fn = _finetune(12)
    looks = AdaptiveReferences(lambda m: trainer.audit(fn, TEXT, n_references=m, seed=0).membership_data())
    data = looks.at(AUTO_SCHEDULE[0])
    with pytest.raises(PrivacyLeakError):
        assert_tpr_at_fpr_below(setup.target, data, fpr=0.1, max_tpr=0.3, attack="lm_lira")
    assert trainer.models_trained == AUTO_SCHEDULE[0] + 1  # decided at the first look: no more fine-tunes


def test_a_space_too_large_to_enumerate_is_sampled_with_exact_bounds(tmp_path):
    """Secrets of 8 digits (10^8): ranked among 20,000 secrets drawn uniformly, as the paper does. A
    canary planted 16 times beats every sampled secret (its exposure certified above 10 bits from the
    count alone); a fine-tune that learnt nothing exposes none; the sample is part of the cache key."""
    from pytest_privacy import assert_canary_exposure_below
    from pytest_privacy.audit.lm_canaries import SAMPLED_CANDIDATES
    from pytest_privacy.data.likelihood import sequence_log_likelihoods

    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    run = trainer.lm_canary_run(_finetune(10), TEXT, seed=0, length=8, repetitions=(1, 16), per_count=4)
    assert run.canaries.sampled.shape == (SAMPLED_CANDIDATES, 8) and run.secret_ll.shape == (8,)
    assert np.array_equal(run.scores, run.secret_ll)
    with pytest.raises(PrivacyLeakError, match="a secret is exposed") as failed:
        assert_canary_exposure_below(run, max_exposure=10.0)
    assert "ranked among 20,000 sampled secrets" in str(failed.value)
    nothing = trainer.lm_canary_run(_finetune(0), TEXT, seed=0, length=8, repetitions=(1, 16), per_count=4)
    r = assert_canary_exposure_below(nothing, max_exposure=10.0)
    assert r.verdict is Verdict.PASS and all(row.high < 10.0 for row in r.exposures)
    # the scores are the model's own: one secret scored by hand, token by token
    import torch

    model = finetune_tiny(TEXT.subset(np.arange(0)), seed=0, device="cpu", epochs=0, vocab=VOCAB)
    c = nothing.canaries
    ids = torch.from_numpy(np.r_[c.prefix, c.alphabet[c.secrets[0]]][None])
    lp = torch.log_softmax(model(ids)[0].double(), -1)
    by_hand = sum(float(lp[len(c.prefix) - 1 + j, c.alphabet[c.secrets[0, j]]]) for j in range(8))
    # (token_statistics reduces a float32 model's log-softmax in float32: 8 tokens, each within ~2^-24 relative)
    assert sequence_log_likelihoods(model, c.prefix, c.alphabet, c.secrets[:1])[0] == pytest.approx(by_hand, rel=8 * 2**-23)


def test_a_dp_claim_is_audited_on_a_language_models_canaries():
    from pytest_privacy import assert_dp_claim_holds
    from pytest_privacy.results import Verdict as V

    trainer = PrivacyTrainer()
    few = trainer.lm_canary_run(_finetune(10), TEXT, seed=0)  # 24 canaries: too few to test eps = 2
    from pytest_privacy import PrivacyInconclusiveWarning

    with pytest.warns(PrivacyInconclusiveWarning, match="needs >= "):
        r = assert_dp_claim_holds(few, epsilon=2.0, delta=1e-5, on_inconclusive="warn")
    assert r.verdict is V.INCONCLUSIVE and "canaries" in r.reason and r.n_canaries == 24
    # No DP at all, 30 epochs: 300 canaries planted once each prove eps >= 1.78 (measured).
    many = trainer.lm_canary_run(_finetune(30), TEXT, seed=0, repetitions=(1,), per_count=300)
    with pytest.raises(PrivacyLeakError, match="claim violated"):
        assert_dp_claim_holds(many, epsilon=1.0, delta=1e-5)


def test_a_loop_that_ignores_its_data_is_no_pass_and_ids_a_model_cannot_read_are_a_clear_error(tmp_path):
    import torch

    from pytest_privacy import PrivacyInconclusiveWarning, assert_canary_exposure_below
    from pytest_privacy.data.querying import QueryFailed

    class Constant(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, VOCAB)

    run = PrivacyTrainer().lm_canary_run(lambda data, *, seed, device: Constant(), TEXT, seed=0)
    with pytest.warns(PrivacyInconclusiveWarning, match="left no trace"):
        r = assert_canary_exposure_below(run, max_exposure=10.0, on_inconclusive="warn")
    assert r.verdict is Verdict.INCONCLUSIVE
    small = finetune_tiny(TEXT.subset(np.arange(0)), seed=0, device="cpu", epochs=0, vocab=10)  # ids go to VOCAB
    data = TextMembershipData(TEXT, np.arange(len(TEXT)) % 2 == 0)
    with pytest.raises(QueryFailed, match=r"querying the model \(TinyLM\) failed on inputs of shape \[16, 64\].*IndexError"):
        measure_attack(small, data, attack="min_k")



def test_tickets_with_a_byte_level_bpe_trained_here_are_audited_the_same_way(tmp_path):
    """load_example_dataset("tickets", tokenizer="bpe"): a byte-level BPE of 512 tokens trained on the
    tickets (tokenizers, nothing downloaded) that decodes back exactly, the PII spans its tokens, the
    same data on a second call; a fine-tune on it is audited, its PII extracted and canaries planted
    (each digit one token) as with the word-level tokenizer."""
    pytest.importorskip("tokenizers")
    from pytest_privacy import assert_no_extraction

    bpe = load_example_dataset("tickets", n=200, tokenizer="bpe")
    assert type(bpe.tokenizer).__module__.startswith("tokenizers") and bpe.tokenizer.get_vocab_size() == 512
    assert np.array_equal(bpe.ids, load_example_dataset("tickets", n=200, tokenizer="bpe").ids)
    for i in range(len(bpe)):
        assert bpe.tokenizer.decode(bpe.ids[i, : bpe.lengths[i]].tolist()) == bpe.texts[i]
        name, phone, email = (bpe.tokenizer.decode(bpe.ids[i, s:e].tolist()).strip() for s, e in bpe.pii_spans[i])
        assert name in bpe.texts[i] and phone in bpe.texts[i] and email.endswith("@example.com")
    trainer = PrivacyTrainer(store=ModelStore(tmp_path))

    def finetune(data, *, seed, device):
        return finetune_tiny(data, seed=seed, device=device, epochs=30, vocab=512)

    setup = trainer.audit(finetune, bpe, n_references=2, seed=0)
    data = setup.membership_data()
    assert measure_attack(setup.target, data, attack="min_k", fpr=0.05).auc_low > 0.6
    # A phone number is 7 BPE tokens (3 words): greedy decoding gives back 1 of 100 members' PII, which
    # proves nothing (INCONCLUSIVE); 8 seeded samples at temperature 0.7 give back 12, against 2 (FAIL).
    greedy = _judged_result(assert_no_extraction, setup.target, data, on_inconclusive="warn")
    assert greedy.verdict is Verdict.INCONCLUSIVE and greedy.extracted <= 2
    with pytest.raises(PrivacyLeakError, match="member texts extracted"):
        assert_no_extraction(setup.target, data, samples=8, temperature=0.7)
    run = trainer.lm_canary_run(finetune, bpe, seed=0)
    assert len(run.canaries.alphabet) == 10 and run.candidate_ll.shape[-1] == 10**4
    with pytest.raises(ValueError, match="'word' .* or 'bpe'"):
        load_example_dataset("tickets", n=20, tokenizer="BPE")
    with pytest.raises(ValueError, match="not text"):
        load_example_dataset("digits", tokenizer="bpe")
