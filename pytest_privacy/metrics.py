"""The statistics' public front, as DESIGN.md names it (``pytest_privacy.metrics.roc_curve``,
``tpr_at_fpr``, ``clopper_pearson``, ``gate``, ``epsilon_lower_bound``, ...): the names re-exported from
the stats room (:mod:`pytest_privacy.stats`), where each lives in the module of its concept. Import
from here in your own code; the package itself imports from ``stats``.
"""

from __future__ import annotations

from .stats.checks import (
    check_confidence,
    check_delta,
    check_gate_args,
    check_margin,
    check_max_auc,
    check_max_epsilon,
    check_rate,
    check_score_values,
)
from .stats.comparisons import (
    PairedComparison,
    SwapTest,
    paired_tpr_comparison,
    swap_test,
)
from .stats.epsilon import epsilon_lower_bound
from .stats.gates import (
    INVERTED_AUC,
    auc_gate,
    epsilon_gate,
    fail_p_value,
    gate,
    holm,
    inverted_reason,
)
from .stats.intervals import auc_confidence_interval, clopper_pearson, nonmembers_needed
from .stats.roc import (
    RocCounts,
    auc,
    operating_index,
    roc_area,
    roc_counts,
    roc_curve,
    tpr_at_fpr,
)

__all__ = ["INVERTED_AUC", "PairedComparison", "RocCounts", "SwapTest", "auc", "auc_confidence_interval", "auc_gate", "check_confidence", "check_delta", "check_gate_args", "check_margin", "check_max_auc", "check_max_epsilon", "check_rate", "check_score_values", "clopper_pearson", "epsilon_gate", "epsilon_lower_bound", "fail_p_value", "gate", "holm", "inverted_reason", "nonmembers_needed", "operating_index", "paired_tpr_comparison", "roc_area", "roc_counts", "roc_curve", "swap_test", "tpr_at_fpr"]
