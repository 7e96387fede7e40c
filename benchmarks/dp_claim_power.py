"""Does a one-run DP audit catch a loop whose noise was forgotten? A team's opacus DP-SGD loop on
digits claiming (eps=2, delta=1e-5), run through ``PrivacyTrainer.canary_run`` and
``assert_dp_claim_holds`` at the default settings (input-space canaries, their default count), over
seeds:

- honest: noise calibrated by opacus's accountant to the claim (``make_private_with_epsilon``);
- noise 0: the same loop with ``noise_multiplier=0`` (clipping still on);
- no DP: the plain loop, no clipping and no noise.

Each with SGD and with Adam. Prints, per case, how often the claim FAILed, PASSed and was
INCONCLUSIVE, the median epsilon lower bound, and the seconds per run; the README quotes the rows.
``--white-box``: the loop declares ``on_step`` and calls it after each step, so the canaries are
scored white-box (each step's update along their gradient) instead of by the final model's loss.

    python benchmarks/dp_claim_power.py [--seeds 20] [--kind input|mislabelled] [--white-box] [--out results.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402

CLAIM = {"epsilon": 2.0, "delta": 1e-5}
EPOCHS, BATCH, CLIP = 30, 64, 1.0


def opacus_loop(optimizer: str, noise: str, *, white_box: bool = False):
    """A team's training function: an MLP trained by their own opacus loop (calling ``on_step`` after
    each step when ``white_box``)."""

    def loop(x, y, *, seed, device, on_step=None):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(x.shape[1:])), 256), nn.ReLU(), nn.Linear(256, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.5) if optimizer == "sgd" else torch.optim.Adam(model.parameters(), lr=1e-3)
        data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
        if noise != "no DP":
            from opacus import PrivacyEngine

            engine = PrivacyEngine()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if noise == "honest":
                    model, opt, loader = engine.make_private_with_epsilon(
                        module=model, optimizer=opt, data_loader=loader, target_epsilon=CLAIM["epsilon"],
                        target_delta=CLAIM["delta"], epochs=EPOCHS, max_grad_norm=CLIP,
                    )
                else:
                    model, opt, loader = engine.make_private(
                        module=model, optimizer=opt, data_loader=loader, noise_multiplier=0.0, max_grad_norm=CLIP
                    )
        for _ in range(EPOCHS):
            for xb, yb in loader:
                if len(xb) == 0:
                    continue
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
                if on_step is not None:
                    on_step(model)
        return model

    if white_box:
        def train(x, y, *, seed, device, on_step):
            return loop(x, y, seed=seed, device=device, on_step=on_step)
    else:
        def train(x, y, *, seed, device):
            return loop(x, y, seed=seed, device=device)
    return train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--kind", default="input", choices=("input", "mislabelled"))
    parser.add_argument("--cases", default="all", help="comma-separated optimizer:noise, e.g. sgd:noise 0")
    parser.add_argument("--white-box", action="store_true", help="score the canaries at every step (on_step)")
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    from pytest_privacy import (
        PrivacyTrainer,
        assert_dp_claim_holds,
        load_example_dataset,
    )
    from pytest_privacy.report import recording

    torch.set_num_threads(1)
    data = load_example_dataset("digits")
    cases = [(o, n) for o in ("sgd", "adam") for n in ("honest", "noise 0", "no DP")]
    if args.cases != "all":
        cases = [tuple(c.split(":")) for c in args.cases.split(",")]
    rows = []
    for optimizer, noise in cases:
        verdicts, bounds, seconds = [], [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            run = PrivacyTrainer().canary_run(
                opacus_loop(optimizer, noise, white_box=args.white_box), data, seed=seed, kind=args.kind  # the default count
            )
            with recording() as results:
                try:
                    assert_dp_claim_holds(run, on_inconclusive="warn", **CLAIM)
                except AssertionError:
                    pass
            verdicts.append(results[0].verdict.value)
            bounds.append(results[0].epsilon_low)
            seconds.append(time.perf_counter() - start)
        row = {
            "optimizer": optimizer, "noise": noise, "kind": args.kind, "white_box": args.white_box, "seeds": args.seeds,
            "canaries": len(run.scores),
            "fail": verdicts.count("fail"), "pass": verdicts.count("pass"), "inconclusive": verdicts.count("inconclusive"),
            "median_epsilon_low": statistics.median(bounds), "seconds_per_run": statistics.median(seconds),
        }
        rows.append(row)
        print(
            f"{optimizer:5} {noise:8} {args.kind}: FAIL {row['fail']}/{args.seeds}, PASS {row['pass']}, "
            f"INCONCLUSIVE {row['inconclusive']}, median eps >= {row['median_epsilon_low']:.2f}, "
            f"{row['seconds_per_run']:.1f} s a run",
            flush=True,
        )
    emit({"claim": CLAIM, "epochs": EPOCHS, "batch": BATCH, "clip": CLIP, "white_box": args.white_box, "rows": rows}, args.out, show=False)


if __name__ == "__main__":
    main()
