"""Reference-training benchmark: the vectorised engine against a plain one-model-at-a-time loop.

Prints JSON. Each measurement runs in a fresh subprocess, so peak memory (ru_maxrss on CPU,
max_memory_allocated on CUDA) belongs to that run alone. For every case: wall time of both, their
ratio, achieved GFLOP/s against a large matmul's on the same machine (against the session's best
matmul rate, and as the median of each engine run over a matmul measured just before it, since a
shared host's rate drifts), peak memory, and the mean
test accuracy of the models each trained (the engine must not trade accuracy for speed). Then a
cold vs warm run of the cached trainer.

    python benchmarks/bench_training.py [--cases mlp16,mlp64,cnn16] [--device auto] [--repeat 3] [--out f.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from _output import emit  # benchmarks/ is on sys.path when a script runs

CASES = {
    # name: data set, recipe kwargs, models, epochs
    "mlp16": ("digits", {"model": "mlp", "hidden": (128, 128), "batch_size": 64}, 16, 10),
    "mlp64": ("digits", {"model": "mlp", "hidden": (128, 128), "batch_size": 64}, 64, 10),
    "mlp16_wide": ("mnist1d", {"model": "mlp", "hidden": (256, 256), "batch_size": 128}, 16, 10),
    "cnn16": ("images28", {"model": "cnn", "hidden": (16, 32), "batch_size": 64}, 16, 2),
    # The LiRA paper's recipe shape, small: ResNet-8 with BatchNorm, SGD + Nesterov, cosine with a
    # warm-up, weight decay on weights only, reflect-pad-4 crops and flips, on 32x32x3 images.
    "resnet16": ("images32", {
        "model": "resnet", "depth": 8, "width": 16, "batch_size": 128, "optimizer": "sgd", "lr": 0.1,
        "momentum": 0.9, "nesterov": True, "schedule": "cosine", "warmup_epochs": 0.5, "weight_decay": 5e-4,
        "weight_decay_on": "weights", "augmentations": ("crop", "flip"),
    }, 16, 2),
}
# The same ResNets trained long enough to learn (2 epochs leave both at chance): the accuracy check
# behind resnet16's speed-up. About 6 minutes for the loop on 2 cores; not in the default --cases.
CASES["resnet16_long"] = (CASES["resnet16"][0], CASES["resnet16"][1], 16, 12)
# The GPU target (64 small ResNets >= 10x the loop), long enough to learn: for a GPU
# (gpu_check.sh runs it first); on 2 CPU cores its loop alone would take about 12 minutes.
CASES["resnet64"] = (CASES["resnet16"][0], CASES["resnet16"][1], 64, 12)
DEFAULT_CASES = [c for c in CASES if c not in ("resnet16_long", "resnet64")]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from pytest_privacy import load_example_dataset

    if name == "digits":
        x, y = load_example_dataset("digits")
        return x.reshape(len(x), -1), y
    if name == "mnist1d":
        return load_example_dataset("mnist1d", n=4000)
    if name == "images32":
        from pytest_privacy.datasets import EXAMPLE_DATASETS

        if "shapes32" in EXAMPLE_DATASETS:
            return load_example_dataset("shapes32", n=2000)
        rng = np.random.default_rng(0)  # (before shapes32 existed) noise images, for timing only
        return rng.normal(size=(2000, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 2000)
    # 28x28 single-channel images: class-dependent blobs plus noise, generated locally.
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 10, n)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(6, 22, size=(10, 2))
    blobs = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 18.0)
    x = blobs[y] + 0.3 * rng.normal(size=(n, 28, 28))
    return x[:, None].astype(np.float32), y.astype(np.int64)


def train_flops(module, example_shape, examples: int) -> float:
    """Multiply-adds of Linear and Conv layers per example, x2 FLOPs, x3 for forward + backward."""
    import torch
    from torch import nn

    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Linear):
            macs += mod.in_features * mod.out_features
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            macs += out[0].numel() * mod.in_channels * math.prod(mod.kernel_size) // mod.groups

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with torch.no_grad():
        module(torch.zeros((1, *example_shape)))
    for h in handles:
        h.remove()
    return 6.0 * macs * examples


def _loop(recipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray, dev, precision: str = "float32") -> tuple[np.ndarray, float]:
    """The plain loop anyone would write: one model at a time, torch.optim and torch's schedulers,
    its own batches; BatchNorm models drop each epoch's last partial batch; augmentations are
    drawn per batch on the device with the engine's own view code for one model (so the ratio
    measures stacking, not augmentation code). Returns every model's logits on ``x`` and the seconds
    spent computing them, which the caller takes off: the engine's time is training only, so the
    loop's must be too. ``precision="bf16"``: forward and loss under bf16 autocast, as the engine's
    steps run where it trains in bf16 (the comparison at the same arithmetic)."""
    import torch
    import torch.nn.functional as F

    from pytest_privacy.engine.models import build_model
    from pytest_privacy.engine.precision import autocast
    from pytest_privacy.engine.seeds import model_seeds
    from pytest_privacy.engine.views import TrainViews

    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    outs, evaluating = [], 0.0
    for m in range(keep.shape[0]):
        torch.manual_seed(m)
        model = build_model(recipe, x.shape[1:], 10).to(dev)
        params = list(model.parameters())
        decay = [p for p in params if recipe.weight_decay_on == "all" or p.dim() >= 2]
        groups = [{"params": decay}, {"params": [p for p in params if all(p is not d for d in decay)], "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
        if recipe.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                                  nesterov=recipe.nesterov)
        else:
            kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
            opt = kind(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
        idx = np.flatnonzero(keep[m])
        drop_last = bool(list(model.buffers()))
        per_epoch = len(idx) // recipe.batch_size if drop_last else -(-len(idx) // recipe.batch_size)
        total, warm = recipe.epochs * per_epoch, round(recipe.warmup_epochs * per_epoch)
        sched = torch.optim.lr_scheduler
        main = sched.CosineAnnealingLR(opt, T_max=total - warm) if recipe.schedule == "cosine" else sched.LambdaLR(opt, lambda _: 1.0)
        if warm:
            main = sched.SequentialLR(opt, [sched.LinearLR(opt, 1 / warm, total_iters=warm - 1), main], [warm])
        views = TrainViews.of(recipe.augmentations, x.shape[1:], seeds=model_seeds(m, [0]), data_std=float(x.std()))
        rng = np.random.default_rng(m)
        for _ in range(recipe.epochs):
            perm = torch.from_numpy(rng.permutation(idx)).to(dev)
            for s in range(0, per_epoch * recipe.batch_size, recipe.batch_size):
                b = perm[s : s + recipe.batch_size]
                xb = xt[b]
                if views is not None:
                    params_b = torch.from_numpy(views.draw(rng, len(b))).to(dev)
                    xb = views.apply(xb[None], params_b[None], [True])[0]
                opt.zero_grad()
                with autocast(precision, dev):
                    loss = F.cross_entropy(model(xb).float(), yt[b], label_smoothing=recipe.label_smoothing)
                loss.backward()
                opt.step()
                main.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()  # training's kernels finish before the evaluation's clock starts
        started = time.perf_counter()
        model.eval()
        with torch.no_grad():
            outs.append(torch.cat([model(xb).float().cpu() for xb in xt.split(1024)]).numpy())
        evaluating += time.perf_counter() - started
    return np.stack(outs), evaluating


def run_one(case: str, what: str, device: str) -> dict:
    import torch

    from pytest_privacy import TrainingRecipe, balanced_keep
    from pytest_privacy.engine.ensemble import resolve_device, train_models
    from pytest_privacy.engine.models import build_model
    from pytest_privacy.engine.precision import training_precision
    from pytest_privacy.engine.seeds import model_seeds

    data, kwargs, n_models, epochs = CASES[case]
    x, y = load(data)
    recipe = TrainingRecipe(epochs=epochs, **kwargs)
    keep = balanced_keep(n_models, len(x), 0)
    dev = resolve_device(device)
    precision = training_precision(recipe, dev.type)  # the engine's; the "loop_same_precision" contender's too
    loop_precision = precision if what == "loop_same_precision" else "float32"
    # Warm up both contenders (thread pools, first-call dispatch) on a one-epoch, two-model run:
    # a session pays that once, and it is not what the comparison is about.
    warm = recipe.model_copy(update={"epochs": 1})
    if what == "engine":
        train_models(warm, x, y, keep[:2], model_seeds(1, range(2)), device=device)
    else:
        _loop(warm, x, y, keep[:1], dev, loop_precision)
    start = time.perf_counter()
    if what == "engine":
        ens = train_models(recipe, x, y, keep, model_seeds(0, range(n_models)), device=device)
        elapsed = time.perf_counter() - start
        logits = ens.logits(x, queries=False, device=device)[:, :, 0]
    else:
        logits, evaluating = _loop(recipe, x, y, keep, dev, loop_precision)
        elapsed = time.perf_counter() - start - evaluating  # training only, as the engine's
    test_acc = float(np.mean([(logits[m].argmax(-1) == y)[~keep[m]].mean() for m in range(n_models)]))
    flops = train_flops(build_model(recipe, x.shape[1:], 10), x.shape[1:], epochs * int(keep.sum()))
    peak = (
        torch.cuda.max_memory_allocated() if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "seconds": elapsed, "gflops": flops / elapsed / 1e9, "peak_memory_mb": peak / 2**20, "test_acc": test_acc,
        "precision": precision if what == "engine" else loop_precision,
    }


def matmul_peak(device: str) -> float:
    import torch

    from pytest_privacy.engine.ensemble import resolve_device

    dev = resolve_device(device)
    n = 4096 if dev.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(3):
        a @ b
    reps = 50 if dev.type == "cuda" else 5
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def cache_run(store_dir: str, device: str) -> dict:
    import torch  # noqa: F401 - imports are paid by any session; time the trainer's own work

    from pytest_privacy import TrainingRecipe, load_example_dataset
    from pytest_privacy.audit import PrivacyTrainer
    from pytest_privacy.engine.store import ModelStore

    # So are the library's engine modules, which every audit imports, cold or warm (the executor
    # asks the engine for the device): imported before the clock too, and reported. Where Python
    # caches no bytecode (PYTHONDONTWRITEBYTECODE, as on this project's machines) compiling them
    # was 20-30 ms, more than half of a warm audit.
    started = time.perf_counter()
    for name in ("pytest_privacy.engine.ensemble", "pytest_privacy.engine.dropout", "pytest_privacy.engine.resnets",
                 "pytest_privacy.audit.stacked_source"):
        importlib.import_module(name)
    imports = time.perf_counter() - started
    recipe = TrainingRecipe(hidden=(128, 128), epochs=10)
    try:
        data = load_example_dataset("digits")
    except ImportError:  # a device without scikit-learn: the same size of data, generated
        data = load_example_dataset("synthetic", n=1797)
    start = time.perf_counter()
    trainer = PrivacyTrainer(store=ModelStore(store_dir))
    trainer.audit(recipe, data, n_references=16, seed=0, device=device)
    return {
        "seconds": time.perf_counter() - start, "trained": trainer.models_trained, "loaded": trainer.models_loaded,
        "library_imports_seconds": imports,
    }


def _sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs per contender; the minimum is reported")
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_cache", help=argparse.SUPPRESS)
    ap.add_argument("--_peak", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        print(json.dumps(run_one(*args._one, args.device)))
        return
    if args._cache:
        print(json.dumps(cache_run(args._cache, args.device)))
        return
    if args._peak:
        print(json.dumps({"gflops": matmul_peak(args.device)}))
        return

    import torch

    from pytest_privacy.engine.ensemble import resolve_device

    dev = resolve_device(args.device)
    peak = max(_sub(["--_peak", "--device", args.device])["gflops"] for _ in range(args.repeat))
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "matmul_gflops": round(peak, 1),
        },
        "cases": {},
    }
    from pytest_privacy import TrainingRecipe
    from pytest_privacy.engine.precision import training_precision

    for case in args.cases.split(","):
        data, kwargs, n_models, epochs = CASES[case]
        # Interleaved repeats, minimum reported (as timeit does): a shared machine only ever adds time.
        runs: dict[str, list[dict]] = {"loop": [], "engine": []}
        if training_precision(TrainingRecipe(**kwargs), dev.type) != "float32":
            # The engine trains this case in bf16 here: the plain loop stays float32 (what people
            # write); this third contender is the same loop under the engine's autocast, so the
            # report separates what stacking gains from what the arithmetic gains.
            runs["loop_same_precision"] = []
        paired = []  # engine GFLOP/s over the matmul rate measured just before it (the host drifts)
        for _ in range(args.repeat):
            for what in runs:
                before = _sub(["--_peak", "--device", args.device])["gflops"] if what == "engine" else None
                runs[what].append(_sub(["--_one", case, what, "--device", args.device]))
                if before:
                    paired.append(runs[what][-1]["gflops"] / before)
        best = {w: min(rs, key=lambda r: r["seconds"]) for w, rs in runs.items()}
        for w, rs in runs.items():
            best[w]["all_seconds"] = [round(r["seconds"], 3) for r in rs]
        loop, engine = best["loop"], best["engine"]
        report["cases"][case] = {
            "setup": {"data": data, **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}, "models": n_models, "epochs": epochs},
            **best,
            "speedup": round(loop["seconds"] / engine["seconds"], 2),
            **({"speedup_same_precision": round(best["loop_same_precision"]["seconds"] / engine["seconds"], 2)}
               if "loop_same_precision" in best else {}),
            "engine_pct_of_matmul_peak": round(100 * engine["gflops"] / peak, 1),
            "engine_pct_of_matmul_peak_paired_median": round(100 * float(np.median(paired)), 1),
        }
        print(json.dumps({case: report["cases"][case]}), file=sys.stderr)
    colds, warms = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as store:
            colds.append(_sub(["--_cache", store, "--device", args.device]))
            warms.append(_sub(["--_cache", store, "--device", args.device]))
    cold, warm = (min(r, key=lambda x: x["seconds"]) for r in (colds, warms))
    report["cache"] = {"cold": cold, "warm": warm, "speedup": round(cold["seconds"] / warm["seconds"], 1)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
