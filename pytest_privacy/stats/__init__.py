"""The statistics room (numpy and scipy only): every number a verdict rests on.

- ``checks``: the parameter and input checks shared by every statistic.
- ``roc``: ROC counts and the curves and rates read from them.
- ``intervals``: exact binomial bounds and the audit size a rate needs.
- ``gates``: the three-way gates on one target's scores (TPR at FPR, AUC, epsilon) and Holm.
- ``pooled``: the gate over a recipe's models pooled, with cluster-aware bounds (``audit="recipe"``).
- ``looks``: more references on demand (``n_references="auto"``), each look at its share of the error.
- ``epsilon``: an epsilon lower bound from membership scores.
- ``exposure``: a canary's exposure in bits (Carlini et al. 2019), with exact bounds, and its verdict.
- ``comparisons``: two score sets on the same points (release against release, model against baseline).
- ``one_run``, ``one_run_power``, ``one_run_fdp``, ``dp_claim``: one-run audits of a DP claim (the
  (epsilon, delta) bound, what it can catch before it runs, the f-DP test) and the verdict on it.

``pytest_privacy.metrics`` re-exports the public names (the contract in DESIGN.md).
"""
