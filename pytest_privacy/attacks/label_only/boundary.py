"""The ``label_only_boundary`` attack: distance to the decision boundary, larger for members.

It picks its method from the model: gradients (:mod:`.boundary_whitebox`) for a torch module,
HopSkipJump (:mod:`.hopskipjump`) for anything else or with ``black_box=True``.
"""

from __future__ import annotations

import numpy as np

from ...data.querying import CachedTarget, is_module
from ..queries import LabelQuery
from ..registry import Attack, register_attack
from .boundary_whitebox import boundary_scores_whitebox
from .hopskipjump import boundary_scores_blackbox

__all__: list[str] = []


def _boundary(q: LabelQuery) -> tuple[np.ndarray, str]:
    # A training function's target answers from cached logits; its live module is behind .model.
    live = q.model.model if isinstance(q.model, CachedTarget) else q.model
    if is_module(live) and not q.options.get("black_box", False):
        return boundary_scores_whitebox(live, q.x, q.y), "white-box gradient search"
    budget = int(q.options.get("max_queries", 1000))
    return (
        boundary_scores_blackbox(q.oracle, q.x, q.y, max_queries=budget, seed=q.seed),
        f"black-box HopSkipJump, <= {budget} queries per point",
    )


register_attack(
    Attack(
        "label_only_boundary", "label_only", False,
        "distance to the decision boundary: gradient search for torch modules, HopSkipJump otherwise",
        score_labels=_boundary,
    )
)
