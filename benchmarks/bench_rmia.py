"""LiRA (fixed, per-example and shrunk variances) against RMIA at 2, 4, 8 and 16 references on the
example targets. Prints one JSON row per (target, references, attack) as it comes.

Each target and its 16 references are trained once (20% of the data held out as RMIA's
population) and cached in a model store (``--store``, default ``.pytest_cache/d/pytest-privacy``,
the plugin's default), so a re-run only scores; the 2-, 4- and 8-reference rows use the first
references of the same set.

    python benchmarks/bench_rmia.py [--targets digits,mnist1d,shapes32] [--threads 2]
        [--store DIR] [--out f.json] [--markdown f.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

from _output import emit  # benchmarks/ is on sys.path when a script runs

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.attacks.runner import attack_scores
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.data import MembershipData, References
from pytest_privacy.engine.store import ModelStore
from pytest_privacy.stats.roc import auc, tpr_at_fpr

# key -> (label, (data set, its options), recipe)
TARGETS = {
    "digits": ("digits MLP 512-512, 60 epochs", ("digits", {}), TrainingRecipe(hidden=(512, 512), epochs=60)),
    "mnist1d": (
        "mnist1d 6000, MLP 256-256, 60 epochs", ("mnist1d", {"n": 6000}), TrainingRecipe(hidden=(256, 256), epochs=60)
    ),
    # The small CNN of bench_shapes32.py (two conv blocks, 32 and 64 channels): 17 of them train on
    # two cores in minutes, where the ResNet of examples_extended would take far longer.
    "shapes32": (
        "shapes32 4000, CNN 32-64, 12 epochs",
        ("shapes32", {"n": 4000}),
        TrainingRecipe(model="cnn", hidden=(32, 64), epochs=12, batch_size=128, lr=1e-3),
    ),
}
ATTACKS = ("lira", "lira_offline", "lira_shrunk", "lira_offline_shrunk", "rmia", "rmia_online", "rmia_ratio")
REFERENCES = (2, 4, 8, 16)


def _first(refs: References, m: int) -> References:
    """The first ``m`` references of ``refs`` (their population logits too)."""
    pop = refs.population
    return References(
        refs.logits[:m], refs.keep[:m], refs.augmentations, refs.seed,
        population=type(pop)(pop.x, pop.y, pop.logits[:m]),
    )


def markdown(rows: list[dict], header: str) -> str:
    """One table: a row per target and reference count, a column per attack (AUC / TPR@1% / TPR@0.1%)."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    lines = [header, "", "| target | refs | " + " | ".join(attacks) + " |", "|---|---|" + "---|" * len(attacks)]
    cells: dict[tuple[str, int], dict[str, str]] = {}
    for r in rows:
        cells.setdefault((r["target"], r["references"]), {})[r["attack"]] = (
            f"{r['auc']:.3f} / {r['tpr_at_1pct']:.3f} / {r['tpr_at_0.1pct']:.3f}"
        )
    last = None
    for (target, m), by_attack in cells.items():
        name = target if target != last else ""
        last = target
        lines.append(f"| {name} | {m} | " + " | ".join(by_attack.get(a, "") for a in attacks) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--store", default=".pytest_cache/d/pytest-privacy", help="model store ('' for none)")
    ap.add_argument("--out")
    ap.add_argument("--markdown", help="also write the table as markdown")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = PrivacyTrainer(store=ModelStore(args.store) if args.store else None)
    rows = []
    setup_lines = []
    for key in args.targets.split(","):
        name, (data_name, kwargs), recipe = TARGETS[key]
        start = time.perf_counter()
        setup = trainer.audit(
            recipe, load_example_dataset(data_name, **kwargs), n_references=max(REFERENCES), seed=0, population=0.2
        )
        full = setup.membership_data()
        setup_lines.append(
            f"- {name}: {full.n_members} members / {full.n_nonmembers} non-members audited, "
            f"{len(full.references.population.y)} population points; "
            f"trained or loaded in {time.perf_counter() - start:.0f} s"
        )
        print(setup_lines[-1], flush=True)
        for m in REFERENCES:
            data = MembershipData(full.x, full.y, full.is_member, _first(full.references, m))
            for attack in ATTACKS:
                s = attack_scores(setup.target, data, attack)
                rows.append({
                    "target": name, "references": m, "attack": attack, "variant": s.variant,
                    "auc": round(auc(s.scores, data.is_member), 4),
                    "tpr_at_1pct": round(tpr_at_fpr(s.scores, data.is_member, 0.01), 4),
                    "tpr_at_0.1pct": round(tpr_at_fpr(s.scores, data.is_member, 0.001), 4),
                    "n_members": int(data.n_members), "n_nonmembers": int(data.n_nonmembers),
                })
                print(json.dumps(rows[-1]), flush=True)
    emit(rows, args.out, show=False)  # each row was printed as it came
    if args.markdown:
        header = (
            f"Measured {datetime.date.today().isoformat()} on {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, seed 0. Cells: "
            "AUC / TPR at 1% FPR / TPR at 0.1% FPR.\n\n" + "\n".join(setup_lines)
        )
        with open(args.markdown, "w") as fh:
            fh.write(markdown(rows, header))


if __name__ == "__main__":
    main()
