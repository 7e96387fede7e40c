"""How small an FPR each example target can decide, how many models a verdict needs, and families.

For each example gate (the ``examples/`` targets, seed 0):

- ``smallest decided FPR``: the smallest FPR on a grid at which the gate (the target's ``max_tpr``)
  is not INCONCLUSIVE, for one target model (16 references) and for the recipe audit
  (``audit="recipe"``: 17 models, each the target in turn, pooled);
- ``models``: trained for the example gate by the fixed ``ci`` profile (16 references + target) and by
  ``n_references="auto"`` (4, 8, 16, 32, 64 while INCONCLUSIVE), and whether the verdicts agree;
- ``family``: the verdict of ``attack=["lira", "lira_offline", "lira_shrunk"]`` at
  ``fpr=[1e-3, 1e-2]`` (Holm over the six), single target and recipe audit.

    python benchmarks/bench_power.py [--out power.json]

Timings are not measured here; models are cached in the default store, so a second run only scores.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from _output import emit  # benchmarks/ is on sys.path when a script runs

from pytest_privacy import (
    PrivacyInconclusiveWarning,
    PrivacyLeakError,
    TrainingRecipe,
    assert_tpr_at_fpr_below,
    load_example_dataset,
)
from pytest_privacy.audit import PrivacyTrainer
from pytest_privacy.report import recording
from pytest_privacy.stats.looks import AUTO_SCHEDULE, AdaptiveReferences

RELEASE = TrainingRecipe(model="mlp", hidden=(128,), epochs=20, weight_decay=1e-3, augmentations=("shift",))
MEMORISING = TrainingRecipe(model="mlp", hidden=(512, 512), epochs=60)
# name: (recipe, the example gate's fpr and max_tpr, whether membership is shuffled (no signal))
TARGETS: dict[str, tuple[TrainingRecipe, float, float, bool]] = {
    "digits release (MLP 128, weight decay, shifts)": (RELEASE, 1e-2, 0.05, False),
    "digits memorising (MLP 512-512, 60 epochs)": (MEMORISING, 1e-2, 0.02, False),
    "digits memorising, shuffled membership": (MEMORISING, 1e-2, 0.05, True),
}
GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
FAMILY = ["lira", "lira_offline", "lira_shrunk"]


def _verdicts(gate: Callable[[], Any]) -> list[Any]:
    """Run a gate and return its recorded results, whatever it raised."""
    with warnings.catch_warnings(), recording() as results:
        warnings.simplefilter("ignore", PrivacyInconclusiveWarning)
        try:
            gate()
        except PrivacyLeakError:
            pass
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out")
    args = ap.parse_args()
    trainer = PrivacyTrainer()
    digits = load_example_dataset("digits")
    rows = []
    for name, (recipe, fpr, max_tpr, shuffled) in TARGETS.items():
        def data_with(m: int, recipe: TrainingRecipe = recipe, shuffled: bool = shuffled) -> Any:
            setup = trainer.audit(recipe, digits, n_references=m, seed=0)
            data = setup.membership_data()
            return data.shuffled_membership(seed=1) if shuffled else data

        target = trainer.audit(recipe, digits, n_references=16, seed=0).target
        single = data_with(16)
        pooled = single.with_recipe_trials(target)

        def gate(data: Any, f: float, limit: float = max_tpr, **kw: Any) -> list[Any]:
            return _verdicts(lambda: assert_tpr_at_fpr_below(target, data, fpr=f, max_tpr=limit, on_inconclusive="warn", **kw))

        row: dict[str, Any] = {"target": name, "gate": f"TPR <= {max_tpr:g} at FPR {fpr:g}"}
        for audit, data in (("model", single), ("recipe", pooled)):
            # max_tpr must exceed fpr: at the grid's top the example's own limit applies
            decided = [(f, r[0]) for f in GRID if max_tpr > f and (r := gate(data, f))[0].verdict.value != "inconclusive"]
            f, r = decided[0] if decided else (None, None)
            row[f"smallest decided FPR ({audit})"] = f"{f:g} {r.verdict.value.upper()}" if f else "none on the grid"
            family = gate(data, [1e-3, 1e-2], max(max_tpr, 0.011), attack=FAMILY)
            verdict = "FAIL" if any(x.verdict.value == "fail" for x in family) else (
                "PASS" if all(x.verdict.value == "pass" for x in family) else "INCONCLUSIVE")
            row[f"family ({audit})"] = verdict
        fixed = gate(single, fpr)[0]
        adaptive = AdaptiveReferences(data_with).at(AUTO_SCHEDULE[0])
        auto = gate(adaptive, fpr)[0]
        row["models fixed (ci)"] = f"{fixed.n_references + 1} {fixed.verdict.value.upper()}"
        row["models auto"] = f"{auto.n_references + 1} {auto.verdict.value.upper()}"
        row["same verdict"] = fixed.verdict == auto.verdict
        rows.append(row)
        print(json.dumps(row), flush=True)
    fixed_models = [int(r["models fixed (ci)"].split()[0]) for r in rows]
    auto_models = [int(r["models auto"].split()[0]) for r in rows]
    print(json.dumps({"median models fixed": float(np.median(fixed_models)), "median models auto": float(np.median(auto_models))}))
    emit(rows, args.out, show=False)


if __name__ == "__main__":
    main()
