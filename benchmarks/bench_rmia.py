"""RMIA against LiRA at 2, 4 and 16 references on the example targets. Prints JSON.

Each target and its 16 references are trained once (20% of the data held out as RMIA's
population); the 2- and 4-reference rows use the first references of the same set.

    python benchmarks/bench_rmia.py [--out f.json]
"""

from __future__ import annotations

import argparse
import json

from pytest_privacy import TrainingRecipe, load_example_dataset
from pytest_privacy.assertions import attack_scores
from pytest_privacy.data import MembershipData, References
from pytest_privacy.metrics import auc, tpr_at_fpr
from pytest_privacy.audit import PrivacyTrainer

from _output import emit  # benchmarks/ is on sys.path when a script runs

TARGETS = {
    "digits MLP 512-512, 60 epochs": (("digits", {}), TrainingRecipe(hidden=(512, 512), epochs=60)),
    "mnist1d 6000, MLP 256-256, 60 epochs": (("mnist1d", {"n": 6000}), TrainingRecipe(hidden=(256, 256), epochs=60)),
}
ATTACKS = ("lira", "lira_offline", "rmia", "rmia_online")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out")
    args = ap.parse_args()
    trainer = PrivacyTrainer()
    rows = []
    for name, ((data_name, kwargs), recipe) in TARGETS.items():
        setup = trainer.audit(recipe, load_example_dataset(data_name, **kwargs), n_references=16, seed=0, population=0.2)
        full = setup.membership_data()
        refs = full.references
        for m in (2, 4, 16):
            sub = References(refs.logits[:m], refs.keep[:m], refs.augmentations, refs.seed,
                             population=type(refs.population)(refs.population.x, refs.population.y, refs.population.logits[:m]))
            data = MembershipData(full.x, full.y, full.is_member, sub)
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


if __name__ == "__main__":
    main()
