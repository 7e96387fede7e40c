"""QMIA (no references) against the population loss baseline, RMIA's ratio at 2 and 4 references and
LiRA at 16, on the example targets of ``bench_rmia.py`` (the same recipes, 20% of the data held out as
the population QMIA fits on and RMIA reads). Prints one JSON row per (target, attack) as it comes, with
the seconds its scoring took (training excluded: the references are shared and cached).

    python benchmarks/bench_qmia.py [--targets digits,mnist1d,shapes32] [--threads 2] [--store DIR]
        [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import time

from _output import emit  # benchmarks/ is on sys.path when a script runs
from bench_rmia import TARGETS, _first

from pytest_privacy import load_example_dataset
from pytest_privacy.attacks.runner import attack_scores
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.data import MembershipData
from pytest_privacy.engine.store import ModelStore
from pytest_privacy.stats.roc import auc, tpr_at_fpr

CASES = (("loss", 2), ("qmia", 2), ("rmia_ratio", 2), ("rmia_ratio", 4), ("lira", 16))  # (attack, references)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--store", default=".pytest_cache/d/pytest-privacy")
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    trainer = PrivacyTrainer(store=ModelStore(args.store) if args.store else None)
    rows = []
    for key in args.targets.split(","):
        name, (data_name, kwargs), recipe = TARGETS[key]
        setup = trainer.audit(recipe, load_example_dataset(data_name, **kwargs), n_references=16, seed=0, population=0.2)
        full = setup.membership_data()
        for attack, m in CASES:
            data = MembershipData(full.x, full.y, full.is_member, _first(full.references, m))
            start = time.perf_counter()
            s = attack_scores(setup.target, data, attack)
            rows.append({
                "target": name, "attack": attack, "references": 0 if attack in ("loss", "qmia") else m,
                "auc": round(auc(s.scores, data.is_member), 4),
                "tpr_at_1pct": round(tpr_at_fpr(s.scores, data.is_member, 0.01), 4),
                "tpr_at_0.1pct": round(tpr_at_fpr(s.scores, data.is_member, 0.001), 4),
                "seconds": round(time.perf_counter() - start, 2), "population": len(full.references.population.y),
            })
            print(json.dumps(rows[-1]), flush=True)
    emit(rows, args.out, show=False)


if __name__ == "__main__":
    main()
