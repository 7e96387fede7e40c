"""Every public entry point against a catalogue of bad inputs: does each raise a clear error before
any model trains or is queried, and does the message say what to do? Prints one row per case and the
totals the README's reliability table reports.

    python benchmarks/bad_inputs.py [--out bad_inputs.json] [--markdown]

A case passes when it raises (ValueError, TypeError or a pytest usage error) with no model trained
and no model queried. "Names the fix" is read from the message: it must say what to do (a did-you-mean,
an accepted set of values, or an instruction such as "use", "pass", "return", "set", "choose"). The
store cases also check that no file the store did not write was deleted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402

from pytest_privacy import (  # noqa: E402
    LMRecipe,
    MembershipData,
    References,
    TrainingRecipe,
    assert_auc_below,
    assert_dp_claim_holds,
    assert_epsilon_below,
    assert_no_extraction,
    assert_no_more_vulnerable_than,
    assert_tpr_at_fpr_below,
    attack_scores,
    load_example_dataset,
    measure_attack,
)
from pytest_privacy.attacks.lm.runner import lm_scores  # noqa: E402
from pytest_privacy.audit import PrivacyTrainer  # noqa: E402
from pytest_privacy.data.text import TextDataset  # noqa: E402
from pytest_privacy.data.text_membership import TextMembershipData  # noqa: E402
from pytest_privacy.engine.store import ModelStore  # noqa: E402
from pytest_privacy.metrics import gate  # noqa: E402
from pytest_privacy.report.storage import RunStorage  # noqa: E402
from pytest_privacy.stats.exposure import exposure  # noqa: E402

FIX = re.compile(
    r"did you mean|use |pass |return |set |choose|must be|must have|must return|expected|needs? |"
    r"give |name a|point |wrap |encode|convert|clean|deduplicate|raise max_tpr|train them|one of|"
    r"accepted|build one|define|should be|fix |compute|retrain|write e\.g\.|drop ",
    re.I,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 5)).astype(np.float32)
Y = RNG.integers(0, 3, 200)
MEMBER = np.arange(200) % 2 == 0
REFS = References(RNG.normal(size=(4, 200, 3)).astype(np.float32), np.stack([MEMBER, ~MEMBER] * 2))
DATA = MembershipData(X, Y, MEMBER, REFS)
TEXT_IDS = np.arange(1, 201).reshape(20, 10)  # 20 texts of 10 distinct tokens, a PII span in each
TEXTS = TextMembershipData(
    TextDataset(ids=TEXT_IDS, mask=np.ones((20, 10), bool), pii_spans=[[(4, 7)]] * 20), np.arange(20) % 2 == 0
)


class Tripwire:
    """A model that records whether anything queried it."""

    calls = 0

    def __call__(self, xb: np.ndarray) -> np.ndarray:
        Tripwire.calls += 1
        return np.zeros((len(xb), 3))


def recipe(**kw: object) -> Callable[[], object]:
    return lambda: TrainingRecipe(**kw)


def audit(dataset: object, **kw: object) -> Callable[[], object]:
    recipe_kw = {"hidden": (4,), "epochs": 1, **kw}

    def run() -> object:
        trainer = PrivacyTrainer()
        try:
            return trainer.audit(TrainingRecipe(**recipe_kw), dataset, n_references=2, seed=0)
        finally:
            if trainer.models_trained:
                raise AssertionError(f"{trainer.models_trained} models trained before the error")

    return run


def _torch() -> object:
    import torch

    return torch


def _functional_dropout() -> object:
    torch = _torch()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = torch.nn.Linear(5, 3)

        def forward(self, x: object) -> object:
            return self.l(torch.nn.functional.dropout(x, 0.5, training=self.training))

    return Net()


class _CanaryRun:
    scores, included = np.linspace(0, 1, 20), np.arange(20) % 2 == 0


def _storage(key: bytes | None = None) -> RunStorage:
    return RunStorage(tempfile.mkdtemp(), key=key)


def _empty_report() -> object:
    from pytest_privacy.report.session_report import build_report

    return build_report([], {})


def _edited_signed_run() -> object:
    import json

    storage = _storage(b"secret")
    run = storage.save(_empty_report(), "v1")
    payload = json.loads(Path(run.path).read_text())
    payload["created"] = "edited"
    Path(run.path).write_text(json.dumps(payload))
    return storage.load("v1")


def helper(fn: Callable[..., object], *args: object, **kw: object) -> Callable[[], object]:
    return lambda: fn(Tripwire(), *args, **kw)


# (entry point, bad input, call)
CASES: list[tuple[str, str, Callable[[], object]]] = [
    ("TrainingRecipe", "typo epoch=5", recipe(epoch=5)),
    ("TrainingRecipe", "typo learning_rate=1.0", recipe(learning_rate=1.0)),
    ("TrainingRecipe", "epochs=True", recipe(epochs=True)),
    ("TrainingRecipe", "epochs=0", recipe(epochs=0)),
    ("TrainingRecipe", "lr=NaN", recipe(lr=float("nan"))),
    ("TrainingRecipe", "lr=-1", recipe(lr=-1.0)),
    ("TrainingRecipe", "model='transformer'", recipe(model="transformer")),
    ("TrainingRecipe", "augmentations=('rotate',)", recipe(augmentations=("rotate",))),
    ("TrainingRecipe", "optimizer='rmsprop'", recipe(optimizer="rmsprop")),
    ("TrainingRecipe", "hidden=(0,)", recipe(hidden=(0,))),
    ("audit data", "one class", audit((X, np.zeros(200, int)))),
    ("audit data", "empty", audit((X[:0], Y[:0]))),
    ("audit data", "a dict", audit({"x": X, "y": Y})),
    ("audit data", "NaN in x", audit((np.where(np.arange(1000).reshape(200, 5) == 7, np.nan, X), Y))),
    ("audit data", "float labels", audit((X, Y + 0.5))),
    ("audit data", "negative labels", audit((X, Y - 1))),
    ("audit data", "labels of the wrong length", audit((X, Y[:-1]))),
    ("audit data", "1-D x", audit((X[:, 0], Y))),
    ("MembershipData", "is_member all True", lambda: MembershipData(X, Y, np.ones(200, bool))),
    ("MembershipData", "is_member of 2s", lambda: MembershipData(X, Y, np.full(200, 2))),
    ("MembershipData", "members overlap non-members", lambda: MembershipData(np.r_[X[:1], X[:1], X[2:]], Y, MEMBER)),
    ("MembershipData", "references on other points", lambda: MembershipData(X[:100], Y[:100], MEMBER[:100], REFS)),
    ("References", "keep not bool", lambda: References(REFS.logits, REFS.keep.astype(int))),
    ("References", "NaN logits", lambda: References(np.full((2, 200, 3), np.nan), REFS.keep[:2])),
    ("assert_tpr_at_fpr_below", "max_tpr < fpr", helper(assert_tpr_at_fpr_below, DATA, fpr=0.2, max_tpr=0.1)),
    ("assert_tpr_at_fpr_below", "max_tpr == fpr", helper(assert_tpr_at_fpr_below, DATA, fpr=0.1, max_tpr=0.1)),
    ("assert_tpr_at_fpr_below", "fpr=0", helper(assert_tpr_at_fpr_below, DATA, fpr=0.0, max_tpr=0.1)),
    ("assert_tpr_at_fpr_below", "fpr=NaN", helper(assert_tpr_at_fpr_below, DATA, fpr=float("nan"), max_tpr=0.1)),
    ("assert_tpr_at_fpr_below", "confidence=1.5", helper(assert_tpr_at_fpr_below, DATA, fpr=0.01, max_tpr=0.1, confidence=1.5)),
    ("assert_tpr_at_fpr_below", "on_inconclusive='fial'", helper(assert_tpr_at_fpr_below, DATA, fpr=0.01, max_tpr=0.1, on_inconclusive="fial")),
    ("assert_tpr_at_fpr_below", "attack='lria'", helper(assert_tpr_at_fpr_below, DATA, fpr=0.01, max_tpr=0.1, attack="lria")),
    ("assert_tpr_at_fpr_below", "data=(x, y)", helper(assert_tpr_at_fpr_below, (X, Y), fpr=0.01, max_tpr=0.1)),
    ("assert_auc_below", "max_auc=0.3", helper(assert_auc_below, DATA, max_auc=0.3)),
    ("assert_auc_below", "on_inconclusive='xfial'", helper(assert_auc_below, DATA, max_auc=0.6, on_inconclusive="xfial")),
    ("assert_epsilon_below", "max_epsilon=-1", helper(assert_epsilon_below, DATA, max_epsilon=-1.0)),
    ("assert_epsilon_below", "delta=1", helper(assert_epsilon_below, DATA, max_epsilon=1.0, delta=1.0)),
    *[
        ("assert_no_more_vulnerable_than", f"confidence={c}", lambda c=c: assert_no_more_vulnerable_than(Tripwire(), Tripwire(), DATA, fpr=0.01, confidence=c))
        for c in (0, 1, -1, float("nan"))
    ],
    ("assert_no_more_vulnerable_than", "margin=-0.1", lambda: assert_no_more_vulnerable_than(Tripwire(), Tripwire(), DATA, fpr=0.01, margin=-0.1)),
    ("attack_scores", "not a model", lambda: attack_scores("model", DATA, "loss")),
    ("attack_scores", "model returns None", lambda: attack_scores(lambda x: None, DATA, "loss")),
    ("attack_scores", "model returns one-hot labels", lambda: attack_scores(lambda x: np.eye(3)[np.zeros(len(x), int)], DATA, "loss")),
    ("attack_scores", "model returns labels [B]", lambda: attack_scores(lambda x: np.zeros(len(x), int), DATA, "loss")),
    ("attack_scores", "options for a score attack", lambda: attack_scores(Tripwire(), DATA, "loss", attack_options={"k": 1})),
    ("metrics.gate", "scores with NaN", lambda: gate([0.1, np.nan], [True, False], fpr=0.1, max_tpr=0.5)),
    ("metrics.gate", "is_member all True", lambda: gate([0.1, 0.2], [True, True], fpr=0.1, max_tpr=0.5)),
    ("assert_dp_claim_holds", "epsilon=inf", lambda: assert_dp_claim_holds(_CanaryRun(), epsilon=float("inf"), delta=0.0)),
    ("assert_epsilon_below", "max_epsilon=inf", helper(assert_epsilon_below, DATA, max_epsilon=float("inf"))),
    ("audit data", "a stray label 100 among 0..2", audit((X, np.where(np.arange(200) == 5, 100, Y)))),
    ("TrainingRecipe factory", "float64 model", lambda: audit((X, Y), model=lambda: _torch().nn.Linear(5, 3).double())()),
    ("TrainingRecipe factory", "meta-device model", lambda: audit((X, Y), model=lambda: _torch().nn.Linear(5, 3, device="meta"))()),
    ("TrainingRecipe factory", "F.dropout in the forward", lambda: audit((X, Y), model=_functional_dropout)()),
    ("RunStorage.save", "name '42' (reads as a run number)", lambda: _storage().save(_empty_report(), "42")),
    ("RunStorage.load", "a signed run edited by hand", lambda: _edited_signed_run()),
    ("assert_dp_claim_holds", "epsilon and mu both", lambda: assert_dp_claim_holds(_CanaryRun(), epsilon=1.0, delta=1e-5, mu=0.5)),
    ("assert_dp_claim_holds", "no claim at all", lambda: assert_dp_claim_holds(_CanaryRun())),
    ("assert_dp_claim_holds", "mu=inf", lambda: assert_dp_claim_holds(_CanaryRun(), mu=float("inf"))),
    ("assert_dp_claim_holds", "mu at delta 0", lambda: assert_dp_claim_holds(_CanaryRun(), mu=0.5, delta=0.0)),
    ("measure_attack", "fpr=0", helper(measure_attack, DATA, fpr=0.0)),
    ("measure_attack", "attack 'lirra'", helper(measure_attack, DATA, fpr=0.01, attack="lirra")),
    ("TextDataset", "texts without a tokenizer", lambda: TextDataset(["a b c"], max_length=4)),
    ("TextDataset", "ids without their mask", lambda: TextDataset(ids=np.ones((2, 3), int))),
    ("TextDataset", "no texts", lambda: TextDataset([], tokenizer=lambda t: [1, 2], max_length=4)),
    ("TextDataset", "a text longer than max_length", lambda: TextDataset(["a b c d e"], tokenizer=lambda t: [1] * 5, max_length=4)),
    ("LMRecipe", "lora_rnk=8 (typo)", lambda: LMRecipe(base=lambda: None, lora_rnk=8)),
    ("LMRecipe", "an nn.Module instance as base", lambda: LMRecipe(base=_torch().nn.Linear(2, 2))),
    ("LMRecipe", "target_modules without lora_rank", lambda: LMRecipe(base=lambda: None, target_modules=("c_attn",))),
    ("lm_scores", "attack 'mink'", lambda: lm_scores(Tripwire(), TextDataset(ids=np.ones((2, 3), int), mask=np.ones((2, 3), bool)), "mink")),
    ("lm_scores", "a tuple for data", lambda: lm_scores(Tripwire(), (np.ones((2, 3), int),), "lm_loss")),
    ("assert_no_extraction", "prefix=0", lambda: assert_no_extraction(Tripwire(), TEXTS, prefix=0)),
    ("assert_no_extraction", "samples=-1", lambda: assert_no_extraction(Tripwire(), TEXTS, samples=-1)),
    ("assert_no_extraction", "temperature=0", lambda: assert_no_extraction(Tripwire(), TEXTS, samples=2, temperature=0)),
    ("assert_no_extraction", "pattern='(' (not a regex)", lambda: assert_no_extraction(Tripwire(), TEXTS, pattern="(")),
    ("assert_no_extraction", "pattern on ids without texts", lambda: assert_no_extraction(Tripwire(), TEXTS, pattern=r"\d+")),
    ("assert_no_extraction", "prefix longer than every text", lambda: assert_no_extraction(Tripwire(), TEXTS, prefix=10)),
    ("load_example_dataset", "tokenizer='BPE' (case)", lambda: load_example_dataset("tickets", n=20, tokenizer="BPE")),
    ("load_example_dataset", "a tokenizer for digits", lambda: load_example_dataset("digits", tokenizer="bpe")),
    ("stats.exposure", "NaN secret", lambda: exposure(float("nan"), np.zeros(5), space_size=100, enumerated=False)),
    ("stats.exposure", "space_size=1", lambda: exposure(0.0, np.zeros(5), space_size=1, enumerated=False)),
]

PLUGIN_TESTS = "def test_gate(membership_data):\n    pass\n"
PLUGIN_CASES: list[tuple[str, list[str]]] = [
    ("--privacy-device=gpu", ["--privacy-device=gpu"]),
    ("--privacy-device=cuda (no CUDA)", ["--privacy-device=cuda"]),
    ("--privacy-seed=-1", ["--privacy-seed=-1"]),
    ("--privacy-references=3", ["--privacy-references=3"]),
    ("--privacy-profile=fast", ["--privacy-profile=fast"]),
    ("--privacy-inconclusive=fial", ["--privacy-inconclusive=fial"]),
    ("--privacy-attacks=lria", ["--privacy-attacks=lria"]),
    ("--privacy-attacks that deselects every gate", ["--privacy-attacks=mmd_baseline"]),
    ("--privacy-max-memory=lots", ["--privacy-max-memory=lots"]),
    ("--privacy-cache-dir under a file", ["--privacy-cache-dir={tmp}/keep.txt/cache"]),
    ("--privacy-cache-dir=the project", ["--privacy-cache-dir={tmp}", "--privacy-clear-cache"]),
    ("--privacy-report under a file", ["--privacy-report={tmp}/keep.txt/r.json"]),
    ("--privacy-storage is a file", ["--privacy-autosave", "--privacy-storage={tmp}/keep.txt"]),
    ("--privacy-save='' (empty name)", ["--privacy-save="]),
    ("--privacy-audit=recipe with 2 references", ["--privacy-audit=recipe", "--privacy-references=2"]),
    ("ini privacy_no_cache = maybe", ["-o", "privacy_no_cache=maybe"]),
    ("ini privacy_executor = rey", ["-o", "privacy_executor=rey"]),
]


def run_case(call: Callable[[], object]) -> tuple[bool, str, bool]:
    """(raised a clear error early, the message, the model was never queried)."""
    Tripwire.calls = 0
    try:
        call()
    except (ValueError, TypeError) as exc:  # StoredRunError is a ValueError
        return True, str(exc), Tripwire.calls == 0
    except AssertionError as exc:  # a verdict, or models trained before the error
        return False, f"{type(exc).__name__}: {exc}", Tripwire.calls == 0
    return False, "no error", Tripwire.calls == 0


def run_plugin_case(args: list[str], tmp: Path) -> tuple[bool, str, bool]:
    """A pytest run on a one-gate suite: a usage error (exit 4) before collection trains anything,
    and nothing of the project deleted."""
    (tmp / "keep.txt").write_text("mine")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *[a.format(tmp=tmp) for a in args]],
        cwd=tmp, capture_output=True, text=True, timeout=120,
    )
    text = (out.stderr + out.stdout).strip().splitlines()
    message = next((line for line in text if "ERROR" in line or "selects none" in line), text[-1] if text else "")
    intact = (tmp / "keep.txt").exists() and (tmp / "conftest.py").exists()
    return out.returncode == 4, message, intact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the totals as a Markdown table")
    args = parser.parse_args()
    rows = []
    for entry, bad, call in CASES:
        early, message, untouched = run_case(call)
        rows.append({"entry": entry, "input": bad, "raised_early": early and untouched,
                     "names_fix": bool(FIX.search(message)), "message": message.splitlines()[0][:160]})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "conftest.py").write_text(textwrap.dedent("""
            import pytest
            from pytest_privacy import TrainingRecipe, load_example_dataset

            @pytest.fixture(scope="session")
            def privacy_dataset():
                return load_example_dataset("synthetic", n=100)

            @pytest.fixture(scope="session")
            def privacy_recipe():
                return TrainingRecipe(hidden=(4,), epochs=1)
        """))
        (tmp / "test_gate.py").write_text("import pytest\n\n@pytest.mark.lira\n" + PLUGIN_TESTS)
        for bad, opts in PLUGIN_CASES:
            usage, message, intact = run_plugin_case(opts, tmp)
            rows.append({"entry": "pytest plugin", "input": bad, "raised_early": usage, "names_fix": bool(FIX.search(message)),
                         "files_kept": intact, "message": message[:160]})
    # A store never deletes what it did not write.
    with tempfile.TemporaryDirectory() as d:
        project = Path(d)
        (project / "src").mkdir()
        (project / "src" / "model.py").write_text("x")
        try:
            ModelStore(project).clear()
            early, message = False, "accepted a folder that is not a store"
        except ValueError as exc:
            early, message = True, str(exc)
        rows.append({"entry": "ModelStore", "input": "a project folder as the store", "raised_early": early,
                     "names_fix": bool(FIX.search(message)), "files_kept": (project / "src" / "model.py").exists(),
                     "message": message[:160]})
    for r in rows:
        flag = "ok " if r["raised_early"] and r["names_fix"] else "BAD"
        print(f"{flag} {r['entry']:32} {r['input']:42} {r['message'][:90]}")
    total = len(rows)
    early = sum(r["raised_early"] for r in rows)
    fixes = sum(r["raised_early"] and r["names_fix"] for r in rows)
    deleted = sum(not r.get("files_kept", True) for r in rows)
    summary = {"cases": total, "raised_early": early, "named_the_fix": fixes, "files_deleted": deleted,
               "wrong_verdicts": sum("Privacy" in r["message"] and not r["raised_early"] for r in rows)}
    if args.markdown:
        print("\n| cases | clear error before any training or query | message names the fix | wrong verdicts | files deleted |")
        print("|---|---|---|---|---|")
        print(f"| {total} | {early} ({early / total:.0%}) | {fixes} ({fixes / total:.0%}) | {summary['wrong_verdicts']} | {deleted} |")
    emit({"summary": summary, "rows": rows}, args.out, show=False)
    print(summary)


if __name__ == "__main__":
    main()
