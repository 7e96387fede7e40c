"""Audit the recipe, not one draw of it (issue 16, item 1): the pooled gate on real digits models.

Trains 17 models of each example recipe on balanced halves of the 1,797 digits (every point a member
of 8 or 9 models), scores each model in turn with leave-one-out LiRA (the other 16 models its
references, fixed variance below 64 references as the registered ``lira`` attack) and gates the
pooled 17 x 1,797 trials at FPR 1e-3, beside the single-target gate of model 0 (at 1e-3 and 1e-2)
and, for contrast, the naive iid gate on the flattened trials. Prints JSON.

    nice python benchmarks/bench_recipe_audit.py [--cache scores.npz] [--out f.json]

``--cache`` keeps the scores: a second run gates without training.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _output import emit  # benchmarks/ is on sys.path when a script runs

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.attacks.lira import FIXED_VARIANCE_BELOW, lira_scores
from pytest_privacy.engine.ensemble import train_ensemble
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.stats.gates import gate
from pytest_privacy.stats.pooled import pooled_gate

N_MODELS = 17
FPR = 1e-3
# name -> (recipe, the pooled gate's max_tpr at FPR 1e-3, the single-target max_tpr at FPR 1e-2, expected)
RECIPES = {
    "memorising MLP 512-512, 60 epochs": (TrainingRecipe(model="mlp", hidden=(512, 512), epochs=60), 0.005, 0.02, "fail"),
    "regularised MLP 128, wd 1e-3, shifts": (
        TrainingRecipe(model="mlp", hidden=(128,), epochs=20, weight_decay=1e-3, augmentations=("shift",)),
        0.05, 0.05, "pass",
    ),
}


def loo_lira(logits: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``[K, N]`` LiRA online scores, model ``k`` the target and the other ``K - 1`` its references."""
    k_models = logits.shape[0]
    rows = []
    for k in range(k_models):
        others = np.r_[0:k, k + 1 : k_models]
        fixed = len(others) < FIXED_VARIANCE_BELOW  # what the registered ``lira`` attack does
        rows.append(lira_scores(logits[k], logits[others], labels, keep[others], variant="online", fixed_variance=fixed))
    return np.stack(rows)


def scores_of(name: str, recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray, cache: dict) -> np.ndarray:
    if name in cache:
        return cache[name]
    start = time.perf_counter()
    ensemble = train_ensemble(recipe, x, y, keep, seed=0, device="cpu")
    logits = ensemble.logits(x, device="cpu")  # [K, N, A, C], A the recipe's queries
    print(f"# {name}: trained and queried {N_MODELS} models in {time.perf_counter() - start:.0f} s", flush=True)
    cache[name] = loo_lira(logits, y, keep)
    return cache[name]


def summary(g) -> dict:
    return {
        "verdict": g.verdict.value, "tpr_at_fpr": round(g.tpr_at_fpr, 5), "tpr": round(g.tpr, 5),
        "tpr_low": round(g.tpr_low, 5), "tpr_high": round(g.tpr_high, 5), "fpr_achieved": round(g.fpr_achieved, 6),
        "fpr_low": round(g.fpr_low, 6), "fpr_high": round(g.fpr_high, 6), "n_members": g.n_members,
        "n_nonmembers": g.n_nonmembers, "reason": g.reason,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", help="an .npz to read the scores from, or write them to")
    ap.add_argument("--out")
    args = ap.parse_args()
    x, y = load_example_dataset("digits")
    keep = balanced_keep(N_MODELS + 1, len(y), seed=0)[:N_MODELS]  # 17 rows: each point IN for 8 or 9
    cache = dict(np.load(args.cache)) if args.cache and os.path.exists(args.cache) else {}
    rows = []
    for name, (recipe, max_tpr, max_tpr_1pct, expected) in RECIPES.items():
        s = scores_of(name, recipe, x, y, keep, cache)
        row = {
            "recipe": name, "expected": expected, "max_tpr": max_tpr,
            "pooled": summary(pooled_gate(s, keep, fpr=FPR, max_tpr=max_tpr)),
            # For contrast only: the iid bound on the flattened trials ignores their dependence.
            "naive_iid_flattened": summary(gate(s.ravel(), keep.ravel(), fpr=FPR, max_tpr=max_tpr)),
            "single_model0_fpr1e-3": summary(gate(s[0], keep[0], fpr=FPR, max_tpr=max_tpr)),
            f"single_model0_fpr1e-2_max{max_tpr_1pct:g}": summary(gate(s[0], keep[0], fpr=1e-2, max_tpr=max_tpr_1pct)),
        }
        rows.append(row)
        print(f"# {name}: pooled {row['pooled']['verdict']} (expected {expected})", flush=True)
    if args.cache:
        np.savez(args.cache, **cache)
    emit(rows, args.out)


if __name__ == "__main__":
    main()
