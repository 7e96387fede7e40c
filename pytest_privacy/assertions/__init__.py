"""The ``assert_*`` helpers: run an attack, gate its scores, and fail with a message a person can act on.

One module per kind of question: :mod:`.membership` (TPR at FPR, AUC, epsilon, measure only),
:mod:`.baseline` (release against release), :mod:`.dp_claim` (a DP claim, by one run's canaries),
:mod:`.lm` (a language model's PII extraction and canary exposure).
What they share: :mod:`.running` (trials, looks, families, records) and :mod:`.policy` (what a verdict
does: raise, warn, skip).
"""

from __future__ import annotations

from .baseline import assert_no_more_vulnerable_than
from .dp_claim import assert_dp_claim_holds
from .lm import assert_canary_exposure_below, assert_no_extraction
from .membership import (
    assert_auc_below,
    assert_epsilon_below,
    assert_tpr_at_fpr_below,
    measure_attack,
)
from .policy import (
    GaussianFitWarning,
    OnInconclusive,
    PrivacyInconclusiveError,
    PrivacyInconclusiveWarning,
    PrivacyLeakError,
    gate_defaults,
    set_inconclusive_default,
)

__all__ = [
    "GaussianFitWarning",
    "OnInconclusive",
    "PrivacyInconclusiveError",
    "PrivacyInconclusiveWarning",
    "PrivacyLeakError",
    "assert_auc_below",
    "assert_canary_exposure_below",
    "assert_dp_claim_holds",
    "assert_epsilon_below",
    "assert_no_extraction",
    "assert_no_more_vulnerable_than",
    "assert_tpr_at_fpr_below",
    "gate_defaults",
    "measure_attack",
    "set_inconclusive_default",
]
