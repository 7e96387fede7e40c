"""The shapes32 example data set: how fast it generates, how well a small CNN learns it, how much it leaks.

Prints JSON: generation time for 10,000 images (best of three, cold cache), then the target of one
audit (``PrivacyTrainer`` with 4 references, seed 0) on ``n`` images: its accuracy on its members
(train) and on the non-members (test), and LiRA's AUC and TPR at 1% FPR against it.

    python benchmarks/bench_shapes32.py [--n 4000] [--epochs 12] [--threads 2] [--out f.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from _output import emit  # benchmarks/ is on sys.path when a script runs


def generation_seconds(n: int = 10000, repeat: int = 3) -> float:
    from pytest_privacy import datasets

    best = float("inf")
    for _ in range(repeat):
        datasets._shapes32.cache_clear()
        start = time.perf_counter()
        datasets.load_example_dataset("shapes32", n=n)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out")
    args = ap.parse_args()

    import torch

    from pytest_privacy import TrainingRecipe, load_example_dataset
    from pytest_privacy.attacks.runner import attack_scores
    from pytest_privacy.audit import PrivacyTrainer
    from pytest_privacy.stats.roc import auc, tpr_at_fpr

    if args.threads:
        torch.set_num_threads(args.threads)
    gen_s = generation_seconds()
    x, y = load_example_dataset("shapes32", n=args.n)
    recipe = TrainingRecipe(model="cnn", hidden=(32, 64), epochs=args.epochs, batch_size=128, lr=1e-3)
    start = time.perf_counter()
    setup = PrivacyTrainer().audit(recipe, (x, y), n_references=4, seed=0)
    train_s = time.perf_counter() - start
    with torch.no_grad():
        pred = setup.target(torch.from_numpy(x)).argmax(-1).numpy()
    member = setup.target_keep
    data = setup.membership_data()
    start = time.perf_counter()
    scores, variant, _ = attack_scores(setup.target, data, "lira")
    attack_s = time.perf_counter() - start
    emit(
        {
            "data": f"shapes32 n={args.n}",
            "generate_10000_s": round(gen_s, 3),
            "recipe": f"cnn (32, 64), {args.epochs} epochs, batch 128, adam lr 1e-3",
            "n_references": 4,
            "train_accuracy": round(float(np.mean(pred[member] == y[member])), 4),
            "test_accuracy": round(float(np.mean(pred[~member] == y[~member])), 4),
            "lira_variant": variant,
            "lira_auc": round(auc(scores, data.is_member), 4),
            "lira_tpr_at_1pct_fpr": round(tpr_at_fpr(scores, data.is_member, 0.01), 4),
            "train_seconds": round(train_s, 1),
            "attack_seconds": round(attack_s, 2),
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
