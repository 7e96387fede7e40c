"""Reference fine-tunes of a language model: the engine (an :class:`~pytest_privacy.LMRecipe`, all models as
one program) against the plain loop a team would write (one model at a time: peft's LoRA adapters, or a
full fine-tune, torch's AdamW, transformers' scheduler, torch's clipping; then each model's per-token
statistics of every text), on the same halves, seeds and minibatches, in the same run.

The base: a tiny GPT-2 (transformers, built from a config) pretrained on public generated tickets and
saved; the fine-tunes train on halves of other tickets. Each case prints one line, e.g.
``16 LoRA references: loop 41.2 s, engine 9.8 s, 4.20x, final loss 1.92 / 1.91`` (the final loss: the
models' mean token NLL on their own halves), and a warm cache against a cold one through the trainer.
Everything is written as JSON with ``--out``.

    python benchmarks/bench_lm.py [--models 16] [--n 800] [--epochs 2] [--threads 2] [--device cpu] [--out f.json]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import tempfile
import time

from _output import emit  # benchmarks/ is on sys.path when a script runs


def _base(text, *, width: int, layers: int, seed: int = 0):
    """A tiny GPT-2 pretrained for a few epochs on ``text`` (public tickets), in eval mode."""
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=len(text.tokenizer), n_positions=text.ids.shape[1], n_embd=width, n_layer=layers, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids, mask = torch.from_numpy(text.ids), torch.from_numpy(text.mask).long()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        for b in np.array_split(rng.permutation(len(ids)), len(ids) // 32):
            loss = model(input_ids=ids[b], labels=ids[b].masked_fill(mask[b] == 0, -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _reset_peak(device: str) -> int:
    """Start measuring peak memory: returns the baseline (bytes): CUDA's allocator, or this process's resident
    set on Linux (its high-water mark reset through /proc/self/clear_refs)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status("VmRSS")


def _peak(device: str) -> int:
    """Peak memory (bytes) since :func:`_reset_peak`."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return _status("VmHWM")


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _loop(recipe, folder, ids, mask, keep, seeds, device="cpu"):
    """The plain loop: one model at a time, as a team writes it (peft LoRA or a full fine-tune)."""
    import numpy as np
    import peft
    import torch
    import transformers

    from pytest_privacy.data.likelihood import token_statistics
    from pytest_privacy.engine.own_loop import PerModelBatches

    out = []
    ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).long().to(device)
    for m, seed in enumerate(seeds):
        model = transformers.GPT2LMHeadModel.from_pretrained(folder).to(device)
        if recipe.lora:
            model = peft.get_peft_model(model, peft.LoraConfig(
                r=recipe.lora_rank, lora_alpha=recipe.lora_rank, target_modules=["c_attn", "c_proj", "c_fc"],
                fan_in_fan_out=True, lora_dropout=0.0))
        model.eval()  # dropout off, as the engine's fine-tunes
        params = [p for p in model.parameters() if p.requires_grad]
        batches = PerModelBatches(np.zeros((len(ids), 1)), np.zeros(len(ids)), keep[[m]], [seed],
                                  batch_size=recipe.batch_size, steps_per_epoch=int(keep[m].sum()) // recipe.batch_size)
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)
        sched = transformers.get_linear_schedule_with_warmup(opt, recipe.warmup_steps, recipe.epochs * len(batches))
        for _ in range(recipe.epochs):
            for idx in batches.iter_indices():
                xb, mb = ids_t[idx[0]], mask_t[idx[0]]
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    loss = model(input_ids=xb, attention_mask=mb, labels=xb.masked_fill(mb == 0, -100)).loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                opt.step()
                sched.step()
        stats = token_statistics(model, ids, mask, spread=True, device=device)
        out.append(stats.lp)
    return out


def _matmul_rate(threads: int) -> float:
    """This machine's float32 matmul rate (GFLOP/s) on ``threads`` threads: 1024x1024 products, best of 5."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 1024**3 / best / 1e9


def _flops(base, recipe, keep, n_texts: int, length: int) -> float:
    """The linear layers' matmul FLOPs of the fine-tunes and their scoring (attention's own products and
    every elementwise op left out): per token, 2 P forward, 2 P for the inputs' gradient, 2 P more for the
    weights' in a full fine-tune (P: the linear layers' weights, the output head included); then one
    forward pass over every text per model."""
    from pytest_privacy.engine.stacked_lm import linear_shape

    p = sum(s[0] * s[1] for s in (linear_shape(m) for m in base.modules()) if s is not None)
    steps = int(keep.sum(axis=1).min()) // recipe.batch_size
    trained = len(keep) * recipe.epochs * steps * recipe.batch_size * length
    return (4 if recipe.lora else 6) * p * trained + 2 * p * len(keep) * n_texts * length


def _member_loss(lps, mask, keep) -> float:
    """The models' mean token NLL on their own halves (tokens after each text's first)."""
    import numpy as np

    real = mask.copy()
    real[:, 0] = False
    return float(np.mean([-lp[k][real[k]].mean() for lp, k in zip(lps, keep)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--n", type=int, default=800, help="private tickets (each model fine-tunes on half)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default="lora,full")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (both sides in bf16 autocast there)")
    parser.add_argument("--out")
    args = parser.parse_args()
    import numpy as np
    import torch

    from pytest_privacy import LMRecipe, PrivacyTrainer, load_example_dataset
    from pytest_privacy.engine.ensemble import default_memory_budget
    from pytest_privacy.engine.lm_finetune import finetune_models, models_per_stack
    from pytest_privacy.engine.seeds import balanced_keep, model_seeds
    from pytest_privacy.engine.store import ModelStore

    torch.set_num_threads(args.threads)
    tickets = load_example_dataset("tickets", n=args.n + 600, seed=7)
    public, private = tickets.subset(np.arange(600)), tickets.subset(np.arange(600, 600 + args.n))
    t0 = time.perf_counter()
    base = _base(public, width=args.width, layers=args.layers)
    folder = tempfile.mkdtemp()
    base.save_pretrained(folder)
    pretrain = time.perf_counter() - t0
    ids, mask = private.ids, private.mask
    keep = balanced_keep(args.models, len(ids), 0)
    seeds = model_seeds(0, range(args.models))
    recipes = {
        "lora": LMRecipe(base=folder, lora_rank=8, target_modules=("c_attn", "c_proj", "c_fc"), lr=1e-2,
                         epochs=args.epochs, batch_size=16, warmup_steps=4),
        "full": LMRecipe(base=folder, lr=2e-3, epochs=args.epochs, batch_size=16, warmup_steps=4),
    }
    rate = _matmul_rate(args.threads)
    rows = []
    for case in args.cases.split(","):
        recipe = recipes[case]
        baseline = _reset_peak(args.device)
        start = time.perf_counter()
        looped = _loop(recipe, folder, ids, mask, keep, seeds, args.device)
        loop_s = time.perf_counter() - start
        loop_peak = _peak(args.device) - baseline
        baseline = _reset_peak(args.device)
        start = time.perf_counter()
        device = torch.device(args.device)
        budget = default_memory_budget(device)
        tuned = finetune_models(recipe, copy.deepcopy(base), ids, mask, keep, seeds, device=device, budget=budget,
                                precision="bf16" if args.device == "cuda" else "float32")
        engine_s = time.perf_counter() - start
        engine_peak = _peak(args.device) - baseline
        per_stack = models_per_stack(recipe, base.to(device), ids.shape[1], device=device, budget=budget)
        loss_loop = _member_loss(looped, mask, keep)
        loss_engine = _member_loss([t.statistics["lm_lp"].astype(np.float64) for t in tuned], mask, keep)
        # the trainer: a cold run (train, score, store) against a warm one (everything from the store)
        store = tempfile.mkdtemp()
        start = time.perf_counter()
        PrivacyTrainer(store=ModelStore(store)).audit(recipe, private, n_references=args.models, seed=0,
                                                      device=args.device)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        warm_trainer = PrivacyTrainer(store=ModelStore(store))
        warm_trainer.audit(recipe, private, n_references=args.models, seed=0, device=args.device)
        warm = time.perf_counter() - start
        assert warm_trainer.models_trained == 0
        name = f"{args.models} {'LoRA references' if recipe.lora else 'full fine-tunes'}"
        gflop = _flops(base, recipe, keep, len(ids), ids.shape[1]) / 1e9  # the loop reads every text at full length
        # the engine trims each minibatch to its longest text: counted at the longest text of all (an upper bound)
        engine_gflop = _flops(base, recipe, keep, len(ids), int(mask.sum(axis=1).max())) / 1e9
        print(f"{name}: loop {loop_s:.1f} s, engine {engine_s:.1f} s, {loop_s / engine_s:.2f}x, final loss "
              f"{loss_loop:.3f} / {loss_engine:.3f}; trainer cold {cold:.1f} s, warm {warm:.2f} s ({cold / warm:.0f}x); "
              f"linear layers' GFLOP: loop {gflop:.0f} at {gflop / loop_s / rate:.0%}, engine <= {engine_gflop:.0f} at <= "
              f"{engine_gflop / engine_s / rate:.0%} of the {rate:.0f} GFLOP/s matmul rate; peak memory: loop "
              f"{loop_peak / 2**20:.0f} MiB, engine {engine_peak / 2**20:.0f} MiB (stacks of {per_stack}: "
              f"{engine_peak / per_stack / 2**20:.0f} MiB a model)", flush=True)
        rows.append({"case": name, "loop_s": round(loop_s, 2), "engine_s": round(engine_s, 2),
                     "speedup": round(loop_s / engine_s, 2), "final_loss_loop": round(loss_loop, 4),
                     "final_loss_engine": round(loss_engine, 4), "trainer_cold_s": round(cold, 2),
                     "trainer_warm_s": round(warm, 3), "warm_speedup": round(cold / warm, 1),
                     "loop_linear_gflop": round(gflop, 1), "loop_matmul_fraction": round(gflop / loop_s / rate, 3),
                     "engine_linear_gflop_at_most": round(engine_gflop, 1),
                     "engine_matmul_fraction_at_most": round(engine_gflop / engine_s / rate, 3),
                     "loop_peak_mib": round(loop_peak / 2**20), "engine_peak_mib": round(engine_peak / 2**20),
                     "engine_models_per_stack": per_stack, "engine_peak_mib_per_model": round(engine_peak / per_stack / 2**20)})
    emit({
        "benchmark": "bench_lm", "date": datetime.date.today().isoformat(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "threads": args.threads, "device": args.device, "torch": torch.__version__, "matmul_gflops": round(rate, 1),
        "settings": {"models": args.models, "texts": args.n, "length": int(ids.shape[1]), "vocab": len(tickets.tokenizer),
                     "epochs": args.epochs, "width": args.width, "layers": args.layers, "pretrain_s": round(pretrain, 1)},
        "rows": rows,
    }, args.out, show=False)


if __name__ == "__main__":
    main()
