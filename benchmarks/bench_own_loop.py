"""Your own loop, still vectorised (issue 15, item 2): a user's PyTorch loop on
``StackedModels`` against the recipe engine and a plain one-model-at-a-time loop.

Sixteen digits MLPs (64-128-128-10 as ``bench_training``'s ``mlp16`` case, or
``--hidden 512,512``), Adam at the recipe's default learning rate, batch 64, 10 epochs,
each model on its half of a balanced keep, or with ``--model resnet`` sixteen ResNet-8s
(width 16, BatchNorm; float32, no augmentation) on 2,000 ``shapes32`` images, batch 128,
2 epochs, trained in the same process by:

- ``own_loop``: the user's loop written once on :class:`StackedModels` +
  :class:`PerModelBatches`, with ``torch.optim.Adam`` as it comes;
- ``own_loop_fused``: the same loop with ``torch.optim.Adam(..., fused=True)``;
- ``engine``: :func:`pytest_privacy.train_ensemble` with the equivalent
  ``TrainingRecipe``;
- ``plain``: the same model, optimizer and minibatches, one model after another.

All of them build model ``m`` with the same initial weights (the engine's per-model
seeding). Contenders run interleaved ``--repeat`` times after a warm-up; the minimum is
reported (a shared machine only ever adds time). Each is clocked on training only (its
evaluation, 256 examples at a time, is taken off, as in ``bench_training``; until
2026-12-02 it was included, which cost nothing for MLPs). Prints JSON: seconds, the ratios (the
issue's target: own loop within 1.5x of the engine), and each contender's mean test
accuracy (on every model's non-members). ``--profile`` adds the own loop's top
operators by CPU time.

    python benchmarks/bench_own_loop.py [--model mlp|resnet] [--hidden 128,128]
        [--models 16] [--epochs 10] [--repeat 3] [--threads 1] [--profile] [--out f.json]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from _output import emit  # benchmarks/ is on sys.path when a script runs
from torch import nn

from pytest_privacy import (
    TrainingRecipe,
    balanced_keep,
    load_example_dataset,
    train_ensemble,
)
from pytest_privacy.engine.models import build_model
from pytest_privacy.engine.own_loop import (
    PerModelBatches,
    StackedModels,
    per_model_loss,
    seeded_model,
)
from pytest_privacy.engine.seeds import model_seeds

SEED = 0


def own_loop(
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray,
    *,
    fused: bool = False,
) -> tuple[np.ndarray, float]:
    """The user's loop, written once, on all models at once; logits ``[M, N, C]`` and the
    seconds spent computing them.
    ``fused``: ``torch.optim.Adam(fused=True)``, one kernel per step (torch's CPU
    default updates tensor by tensor, op by op)."""
    seeds = model_seeds(SEED, range(keep.shape[0]))
    models = StackedModels(factory(recipe, x), seeds)
    batches = PerModelBatches(x, y, keep, seeds, batch_size=recipe.batch_size)
    opt = torch.optim.Adam(models.parameters(), lr=recipe.lr, fused=fused or None)
    for _ in range(recipe.epochs):
        for xb, yb in batches:
            opt.zero_grad()
            per_model_loss(F.cross_entropy, models(xb), yb).sum().backward()
            opt.step()
    return evaluate(lambda xb: models.forward_shared(xb), models.eval(), x)


def engine(
    recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, float]:
    """The recipe engine; logits ``[M, N, C]`` and the seconds spent computing them."""
    ensemble = train_ensemble(recipe, x, y, keep, seed=SEED, device="cpu")
    start = time.perf_counter()
    logits = ensemble.logits(x, queries=False, device="cpu")[:, :, 0]
    return logits, time.perf_counter() - start


def evaluate(
    fn: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, x: np.ndarray
) -> tuple[np.ndarray, float]:
    """``fn`` on ``x`` in eval mode, 256 examples at a time: the logits and the seconds
    spent (each contender's time is training only, as in ``bench_training``)."""
    start = time.perf_counter()
    module.eval()
    with torch.no_grad():
        out = torch.cat([fn(xb) for xb in torch.from_numpy(x).split(256)], dim=-2)
    return out.numpy(), time.perf_counter() - start


def plain(
    recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, float]:
    """The loop anyone would write, one model after another, with the same minibatch
    rule as the own loop (each model's own permutation, full minibatches); logits
    ``[M, N, C]`` and the seconds spent computing them."""
    seeds = model_seeds(SEED, range(keep.shape[0]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    steps = int(keep.sum(1).min()) // recipe.batch_size
    out, evaluating = [], 0.0
    for m, s in enumerate(seeds):
        model = seeded_model(factory(recipe, x), s)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        order = PerModelBatches(
            x, y, keep[[m]], [s], batch_size=recipe.batch_size, steps_per_epoch=steps
        )
        for _ in range(recipe.epochs):
            for idx in order.iter_indices():
                b = torch.from_numpy(idx[0])
                opt.zero_grad()
                F.cross_entropy(model(xt[b]), yt[b]).backward()
                opt.step()
        logits, seconds = evaluate(model, model, x)
        out.append(logits)
        evaluating += seconds
    return np.stack(out), evaluating


def factory(recipe: TrainingRecipe, x: np.ndarray) -> Callable[[], nn.Module]:
    """The recipe's own model, so all contenders train the same architecture."""
    return lambda: build_model(recipe, tuple(x.shape[1:]), 10)


CONTENDERS: dict[str, Callable[..., tuple[np.ndarray, float]]] = {
    "own_loop": own_loop,
    "own_loop_fused": lambda *a: own_loop(*a, fused=True),
    "engine": engine,
    "plain": plain,
}


def profile_own_loop(
    recipe: TrainingRecipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray
) -> dict[str, object]:
    """What limits the own loop: milliseconds per step by phase (gathering the batch,
    forward and loss, backward, optimizer) with torch's default and fused Adam, and the
    fused loop's eight most expensive operators (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    report: dict[str, object] = {}
    for fused in (False, True):
        seeds = model_seeds(SEED, range(keep.shape[0]))
        models = StackedModels(factory(recipe, x), seeds)
        batches = PerModelBatches(x, y, keep, seeds, batch_size=recipe.batch_size)
        opt = torch.optim.Adam(models.parameters(), lr=recipe.lr, fused=fused or None)
        spent = dict.fromkeys(("batch", "forward", "backward", "optimizer"), 0.0)
        for _ in range(recipe.epochs):
            epoch = iter(batches)
            for _ in range(len(batches)):
                t0 = time.perf_counter()
                xb, yb = next(epoch)
                t1 = time.perf_counter()
                opt.zero_grad()
                loss = per_model_loss(F.cross_entropy, models(xb), yb).sum()
                t2 = time.perf_counter()
                loss.backward()
                t3 = time.perf_counter()
                opt.step()
                t4 = time.perf_counter()
                for k, dt in zip(
                    spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True
                ):
                    spent[k] += dt
        steps = recipe.epochs * len(batches)
        name = "fused_adam" if fused else "default_adam"
        report[f"ms_per_step_{name}"] = {
            k: round(1e3 * v / steps, 3) for k, v in spent.items()
        }
    start = time.perf_counter()
    engine(recipe, x, y, keep)
    report["engine_ms_per_step_all_in"] = round(
        1e3 * (time.perf_counter() - start) / steps, 3
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        own_loop(recipe, x, y, keep, fused=True)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    report["fused_top_ops"] = [
        {
            "op": e.key,
            "calls": e.count,
            "self_ms": round(e.self_cpu_time_total / 1e3, 1),
            "pct": round(100 * e.self_cpu_time_total / total, 1),
        }
        for e in top
    ]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=("mlp", "resnet"), default="mlp")
    ap.add_argument("--hidden", default="128,128", help="the MLP's hidden widths, e.g. 512,512")
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--epochs", type=int, help="default: 10 (mlp), 2 (resnet)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="interleaved runs per contender; the minimum is reported",
    )
    ap.add_argument("--profile", action="store_true", help="also profile the own loop")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a small shared host, two OpenMP threads "
        "that wait for each other's core run 10-50x slower, which measures the host, "
        "not the code)",
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    hidden = tuple(int(h) for h in args.hidden.split(","))
    if args.model == "mlp":
        data = "digits"
        x, y = load_example_dataset(data)
        x = x.reshape(len(x), -1).astype(np.float32)
        recipe = TrainingRecipe(
            model="mlp", hidden=hidden, batch_size=64, epochs=args.epochs or 10
        )
        layers = [x.shape[1], *hidden, 10]
    else:  # float32 for all: the engine would train it in bf16 on a CPU with AMX
        data = "shapes32"
        x, y = load_example_dataset(data, n=2000)
        recipe = TrainingRecipe(
            model="resnet", depth=8, width=16, batch_size=128, epochs=args.epochs or 2,
            precision="float32",
        )
        layers = "ResNet-8, width 16, BatchNorm"
    y = y.astype(np.int64)
    keep = balanced_keep(args.models, len(x), SEED)
    # Warm-up (thread pools, vmap's first-call tracing): a session pays it once.
    warm = recipe.model_copy(update={"epochs": 1})
    for run in CONTENDERS.values():
        run(warm, x, y, keep[:2])
    seconds: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    accuracy: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in CONTENDERS.items():
            start = time.perf_counter()
            logits, evaluating = run(recipe, x, y, keep)
            seconds[name].append(time.perf_counter() - start - evaluating)  # training only
            accuracy[name] = float(
                np.mean(
                    [
                        (logits[m].argmax(-1) == y)[~keep[m]].mean()
                        for m in range(len(keep))
                    ]
                )
            )
    best = {k: min(v) for k, v in seconds.items()}
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "setup": {
            "data": data,
            "layers": layers,
            "models": args.models,
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "optimizer": "adam",
            "lr": recipe.lr,
        },
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "all_seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
        "own_loop_over_engine": round(best["own_loop"] / best["engine"], 2),
        "own_loop_fused_over_engine": round(best["own_loop_fused"] / best["engine"], 2),
        "target_own_loop_over_engine": 1.5,
        "plain_over_own_loop": round(best["plain"] / best["own_loop"], 2),
        "plain_over_own_loop_fused": round(best["plain"] / best["own_loop_fused"], 2),
        "test_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
    }
    if args.profile:
        report["own_loop_profile"] = profile_own_loop(recipe, x, y, keep)
    emit(report, args.out)


if __name__ == "__main__":
    main()
