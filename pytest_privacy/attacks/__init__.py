"""Membership-inference attacks: a registry of named attacks, each grouped in a suite.

Two kinds of attack, scores always ``[N]`` with higher = more likely member:

- score attacks (``Attack.score``) read the target's logits on the audit queries ``[N, A, C]`` with
  the labels ``[N]`` and the references (or None);
- label-only attacks (``Attack.score_labels``) may only ask a counted labels oracle (a ``LabelQuery``);
- language-model attacks (``Attack.score_text``) read a causal LM's per-token statistics of texts
  (a ``TextQuery``, :mod:`.lm`).

Each returns ``(scores, variant)``; ``variant`` says which flavour ran. The registry
(``register_attack``, suites, selection) is :mod:`.registry`; :mod:`.runner` runs an attack against a
model. Each attack file registers its own attacks: adding one touches only its file.
"""

from __future__ import annotations

from .registry import (
    ATTACKS,
    SUITES,
    Attack,
    LabelQuery,
    Selection,
    expand_attacks,
    get_attack,
    register_attack,
    register_suite,
    suite_attacks,
)

__all__ = [
    "ATTACKS", "SUITES", "Attack", "LabelQuery", "Selection", "expand_attacks", "get_attack", "register_attack",
    "register_suite", "suite_attacks",
]

register_suite("lira", "LiRA likelihood-ratio attacks (needs reference models)")
register_suite("rmia", "RMIA relative membership inference (rmia and rmia_online need --privacy-population)")
register_suite("baseline", "population baselines: loss, confidence, entropy, modified entropy, LiRA's global threshold")
register_suite("label_only", "label-only attacks (the model exposes only labels)")
# Relative gates against the MMD baseline run LiRA themselves: the suite has no attack of its own.
register_suite("mmd_baseline", "comparisons against the MMD+mixup-defended baseline")

# Importing the attack files registers their attacks, in this order (the privacy_attack fixture's).
from . import lira, rmia, baselines, qmia, label_only  # noqa: F401  isort: skip
from .lm import registered  # noqa: F401,E402  isort: skip
