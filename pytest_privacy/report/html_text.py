"""The small pieces every part of the HTML report writes: escaped text, a result's names and its
verdict badge."""

from __future__ import annotations

import html
from typing import Any

from ..results import (
    AnyResult,
    ComparisonResult,
    DPAuditResult,
    LMAuditResult,
)
from .summary import verdict_label

__all__ = ["attack_name", "badge", "badge_text", "escape", "gate_name", "optional", "test_name"]


def escape(value: Any) -> str:
    """``value`` as text, escaped for HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def optional(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def test_name(r: AnyResult) -> str:
    return r.test_id or "-"


def attack_name(r: AnyResult) -> str:
    if isinstance(r, ComparisonResult):
        return f"{r.attack} ({r.variant}) vs {r.baseline}"
    return f"{r.attack} ({r.variant})"


def gate_name(r: AnyResult) -> str:
    if isinstance(r, LMAuditResult):
        return {"extraction": "PII extraction", "exposure": "canary exposure"}[r.gate]
    if isinstance(r, DPAuditResult):
        return "DP audit"
    if isinstance(r, ComparisonResult):
        return "comparison"
    return {"tpr_at_fpr": "TPR at FPR", "auc": "AUC", "epsilon": "ε", "measure": "measurement"}[r.gate]


def badge_text(verdict: str) -> str:
    return verdict.upper()


def badge(r: AnyResult) -> str:
    """The coloured verdict badge: PASS green, FAIL red, INCONCLUSIVE amber, "PASS (smoke)" for a
    smoke-profile pass (it shows the suite runs, not that the model is private)."""
    text = verdict_label(r)
    smoke = " smoke" if text.endswith("(smoke)") else ""
    return f'<span class="badge {r.verdict.value}{smoke}">{escape(text)}</span>'
