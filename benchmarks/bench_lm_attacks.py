"""Which LM attack the helpers should run by default: every attack of the ``lm`` suite on a small causal
LM (the tests' GRU, full fine-tune, no scrubbing) fine-tuned on generated support tickets, at 2, 4, 8
and 16 reference fine-tunes (the first references of one set of 16 per seed), over several seeds.
Prints one JSON object: per seed, references and attack, AUC and TPR at FPR 1% and 5%; and the medians.
TPR at FPR 0.1% needs more non-members than one target has (n/2: one false positive is 0.5% of 200),
so it is read from the recipe's 17 models each the target in turn (the others its 16 references,
``audit="recipe"``): 17 x n/2 non-member trials at one threshold; Min-K%++ reads the next-token spread,
which references do not keep, so it has no pooled figure.

    python benchmarks/bench_lm_attacks.py [--n 400] [--epochs 4] [--seeds 3] [--threads 2] [--out f.json]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

from _output import emit  # benchmarks/ is on sys.path when a script runs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from helpers import finetune_tiny  # noqa: E402  the tests' tiny GRU LM and its AdamW loop

from pytest_privacy import PrivacyTrainer, load_example_dataset  # noqa: E402
from pytest_privacy.attacks import ATTACKS  # noqa: E402
from pytest_privacy.attacks.runner import attack_scores, recipe_scores  # noqa: E402
from pytest_privacy.data.text_membership import TextMembershipData, TextReferences  # noqa: E402
from pytest_privacy.stats.roc import auc, tpr_at_fpr  # noqa: E402

ATTACK_NAMES = [name for name, a in ATTACKS.items() if a.text and name != "ref_base"]  # (no base model here)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    text = load_example_dataset("tickets", n=args.n)
    vocab = len(text.tokenizer)

    def finetune(data, *, seed, device):
        return finetune_tiny(data, seed=seed, device=device, epochs=args.epochs, vocab=vocab)

    rows, pooled, start = [], [], time.perf_counter()
    for seed in range(args.seeds):
        setup = PrivacyTrainer().audit(finetune, text, n_references=16, seed=seed)
        full = setup.membership_data()
        for m in (2, 4, 8, 16):
            refs = TextReferences(full.references.lp[:m], full.references.keep[:m], seed)
            data = TextMembershipData(full.text, full.is_member, refs)
            for name in ATTACK_NAMES:
                s = attack_scores(setup.target, data, name).scores
                rows.append({
                    "seed": seed, "references": m, "attack": name, "auc": round(auc(s, data.is_member), 4),
                    "tpr_at_1pct": round(tpr_at_fpr(s, data.is_member, 0.01), 4),
                    "tpr_at_5pct": round(tpr_at_fpr(s, data.is_member, 0.05), 4),
                })
        recipe = TextMembershipData(full.text, full.is_member, full.references).with_recipe_trials(setup.target)
        for name in ATTACK_NAMES:
            if ATTACKS[name].pools:
                s, keep, _ = recipe_scores(recipe, name)
                pooled.append({
                    "seed": seed, "attack": name, "models": len(s), "nonmember_trials": int((~keep).sum()),
                    "auc": round(auc(s.ravel(), keep.ravel()), 4),
                    "tpr_at_01pct": round(tpr_at_fpr(s.ravel(), keep.ravel(), 0.001), 4),
                    "tpr_at_1pct": round(tpr_at_fpr(s.ravel(), keep.ravel(), 0.01), 4),
                })
    medians = {
        f"{name}@{m}": {
            k: statistics.median(r[k] for r in rows if r["attack"] == name and r["references"] == m)
            for k in ("auc", "tpr_at_1pct", "tpr_at_5pct")
        }
        for m in (2, 4, 8, 16) for name in ATTACK_NAMES
    }
    pooled_medians = {
        name: {k: statistics.median(r[k] for r in pooled if r["attack"] == name) for k in ("auc", "tpr_at_01pct", "tpr_at_1pct")}
        for name in ATTACK_NAMES if ATTACKS[name].pools
    }
    emit({
        "when": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.processor() or platform.machine(),
        "threads": args.threads, "n": args.n, "epochs": args.epochs, "seeds": args.seeds,
        "seconds": round(time.perf_counter() - start, 1), "medians": medians, "rows": rows,
        "pooled_medians": pooled_medians, "pooled": pooled,
    }, args.out, show=False)
    for key, v in medians.items():
        print(f"{key:28s} AUC {v['auc']:.3f}  TPR@1% {v['tpr_at_1pct']:.3f}  TPR@5% {v['tpr_at_5pct']:.3f}")
    for name, v in pooled_medians.items():
        print(f"{name + ' (17 models)':28s} AUC {v['auc']:.3f}  TPR@0.1% {v['tpr_at_01pct']:.3f}  TPR@1% {v['tpr_at_1pct']:.3f}")


if __name__ == "__main__":
    main()
