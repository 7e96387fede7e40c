"""Executor benchmark: 16 digits references (+ the target) with a ``privacy_train_fn``, trained by
the local executor and by Ray, against a plain one-model-at-a-time loop in the same run.

Prints JSON: the plain loop; the local executor (cold store, then warm); Ray's start-up on its own
(``ray.init`` plus the first round of tasks that import torch on fresh workers); the Ray executor
with ``--workers`` workers on a cold store once started; the per-model time; and what a cluster of
K GPUs would give, projected from the measured per-model time (ideal K-fold, plus the measured
start-up and store I/O). The projection assumes a GPU trains a model as fast as one CPU worker
here; a GPU that is s times faster divides the training term by s.

    python benchmarks/bench_executors.py [--workers 2] [--epochs 30] [--repeat 3] [--out f.json]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from typing import Any

from _output import emit  # benchmarks/ is on sys.path when a script runs

N_REFERENCES = 16


def train_fn(x, y, *, seed, device):
    """A plain PyTorch loop, as a user writes it: MLP 64-128-10, Adam, batch 64."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model


EPOCHS = 30


def _warm_up(_: int) -> int:
    import torch

    return int(torch.ones(1).sum())


def main() -> None:
    global EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats; the minimum counts")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    EPOCHS = args.epochs

    import ray
    import torch

    from pytest_privacy import load_example_dataset
    from pytest_privacy.audit import PrivacyTrainer, Split
    from pytest_privacy.engine.executors import RayExecutor
    from pytest_privacy.engine.store import ModelStore

    x, y = load_example_dataset("digits")
    x = x.reshape(len(x), -1)
    n_models = N_REFERENCES + 1

    keep = Split.make(len(x), N_REFERENCES, 0).keep  # the halves the audit trains on

    def plain_loop() -> float:  # the same 17 trainings on the same halves, nothing else
        start = time.perf_counter()
        for m in range(n_models):
            train_fn(x[keep[m]], y[keep[m]], seed=m, device="cpu")
        return time.perf_counter() - start

    def audit(store: ModelStore, executor: Any = None) -> tuple[float, PrivacyTrainer]:
        trainer = PrivacyTrainer(store=store, **({"executor": executor} if executor else {}))
        start = time.perf_counter()
        trainer.audit(train_fn, (x, y), n_references=N_REFERENCES, seed=0)
        return time.perf_counter() - start, trainer

    train_fn(x[keep[0]], y[keep[0]], seed=0, device="cpu")  # warm-up: torch's first-call costs
    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - start
    start = time.perf_counter()
    ray.get([ray.remote(_warm_up).remote(i) for i in range(args.workers)])
    first_tasks = time.perf_counter() - start

    runs: dict[str, list[float]] = {"plain": [], "local_cold": [], "local_warm": [], "ray_cold": [], "ray_warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):  # interleaved, so drift on a shared host hits every mode alike
            runs["plain"].append(plain_loop())
            store = ModelStore(os.path.join(tmp, f"local{r}"))
            runs["local_cold"].append(audit(store)[0])
            runs["local_warm"].append(audit(store)[0])
            store = ModelStore(os.path.join(tmp, f"ray{r}"))
            seconds, trainer = audit(store, RayExecutor())
            assert trainer.models_trained == n_models
            runs["ray_cold"].append(seconds)
            runs["ray_warm"].append(audit(store, RayExecutor())[0])
    ray.shutdown()
    plain, local_cold, local_warm, ray_cold, ray_warm = (min(runs[k]) for k in runs)

    per_model = local_cold / n_models  # training + logits + one store write, one model at a time
    store_io = local_warm  # reading every entry back, on a warm store
    startup = ray_init + first_tasks
    projection = {
        str(k): round(startup + store_io + math.ceil(n_models / k) * per_model, 2) for k in (1, 2, 4, 8, 17)
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ray {ray.__version__}",
        "models": n_models,
        "repeats": args.repeat,
        "epochs": EPOCHS,
        "plain_loop_s": round(plain, 2),
        "local": {"cold_s": round(local_cold, 2), "warm_s": round(local_warm, 3),
                  "cold_over_plain": round(local_cold / plain, 2), "warm_speedup": round(local_cold / local_warm, 1)},
        "ray": {
            "workers": args.workers,
            "startup_s": {"ray_init": round(ray_init, 2), "first_tasks": round(first_tasks, 2)},
            "cold_s": round(ray_cold, 2), "warm_s": round(ray_warm, 3),
            "speedup_over_plain": round(plain / ray_cold, 2),
            "speedup_over_plain_with_startup": round(plain / (ray_cold + startup), 2),
        },
        "per_model_s": round(per_model, 3),
        "projected_s_on_k_workers": projection,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
