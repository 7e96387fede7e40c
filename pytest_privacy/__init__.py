"""pytest-privacy: membership-inference privacy gates for ML models, as a pytest plugin.

Everything public is re-exported here lazily, so ``import pytest_privacy`` imports neither torch
nor pytest; they load on first use of what needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "assert_tpr_at_fpr_below": "assertions",
    "assert_auc_below": "assertions",
    "assert_no_more_vulnerable_than": "assertions",
    "assert_epsilon_below": "assertions",
    "assert_dp_claim_holds": "assertions",
    "measure_attack": "assertions",
    "assert_no_extraction": "assertions",
    "assert_canary_exposure_below": "assertions",
    "DPAuditResult": "results",
    "SessionReport": "results",
    "Baseline": "data",
    "ComparisonResult": "results",
    "attack_scores": "attacks.runner",
    "register_attack": "attacks.registry",
    "register_suite": "attacks.registry",
    "Attack": "attacks.registry",
    "PrivacyInconclusiveWarning": "assertions",
    "GaussianFitWarning": "assertions",
    "PrivacyInconclusiveError": "assertions",
    "PrivacyLeakError": "assertions",
    "MembershipData": "data",
    "TextDataset": "data.text",
    "TextMembershipData": "data.text_membership",
    "TextReferences": "data.text_membership",
    "LMAuditResult": "results",
    "References": "data",
    "Population": "data",
    "load_example_dataset": "datasets",
    "Dataset": "datasets",
    "PrivacyConfig": "config",
    "AttackResult": "results",
    "GateResult": "results",
    "Verdict": "results",
    "TrainingRecipe": "engine.recipe",
    "LMRecipe": "engine.lm_recipe",
    "train_ensemble": "engine.ensemble",
    "Ensemble": "engine.ensemble",
    "balanced_keep": "engine.seeds",
    "make_queries": "data.augmentations",
    "training_function": "audit.training_functions",
    "stacked_training": "audit.stacked_source",
    "StackedModels": "engine.own_loop",
    "StackedAdapters": "engine.own_loop",
    "PerModelBatches": "engine.own_loop",
    "per_model_loss": "engine.own_loop",
    "per_model_lm_loss": "engine.own_loop",
    "PrivacyTrainer": "audit",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # cache: later lookups skip this function
        return value
    raise AttributeError(f"module 'pytest_privacy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
