"""The HTML report's per-result sections: the gate's reason and numbers, its log-log ROC figure and
its most vulnerable records."""

from __future__ import annotations

import base64
import io
from typing import Any

from ..results import (
    AnyResult,
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    LMAuditResult,
)
from .html_text import attack_name, badge, escape, gate_name, optional, test_name
from .summary import dp_claim_text, dp_power, dp_proven, gaussian_fit_text

__all__ = ["detail", "has_roc", "matplotlib_available"]


def detail(i: int, r: AnyResult, plotting: bool) -> str:
    """One result in full: the gate's reason, its numbers, the ROC figure and the most vulnerable
    records."""
    out = [
        f'<section class="detail {r.verdict.value}" id="result-{i}" data-test="{escape(test_name(r))}" data-kind="{r.kind}">',
        f'<h3>{badge(r)} <span class="mono">{escape(test_name(r))}</span> — {escape(attack_name(r))}</h3>',
        f'<pre class="reason">{escape(r.reason)}</pre>',
        _numbers(r),
    ]
    if isinstance(r, AttackResult):
        if plotting and has_roc(r):
            out.append(
                f'<figure><img class="roc" id="roc-{i}" alt="{escape(f"ROC of {r.attack} on {test_name(r)}")}" '
                f'src="data:image/png;base64,{_roc_png(r)}"><figcaption>Log-log ROC with its '
                f"{r.confidence:.0%} Clopper-Pearson band, the gate's limits and the point that decided "
                "the verdict.</figcaption></figure>"
            )
        if r.most_vulnerable:
            out.append(_vulnerable(i, r))
    out.append("</section>")
    return "\n".join(out)


def _numbers(r: AnyResult) -> str:
    """The result's evidence as a two-column table."""
    rows: list[tuple[str, Any]]
    if isinstance(r, LMAuditResult) and r.gate == "extraction":
        rows = [
            ("member texts extracted", f"{r.extracted} of {r.n_members}"),
            ("non-member texts extracted", f"{r.extracted_nonmembers} of {r.n_nonmembers}"),
            ("Fisher's exact p (members more often)", f"{r.p_value:.3g}"), ("limit", f"≤ {r.max_extracted} member texts"),
            ("confidence", f"{r.confidence:g}"),
        ] + ([("secrets given back (digests, never the text)", ", ".join(
            f"{'member' if s.member else 'non-member'} text {s.record}: {s.kind} tokens {s.start}-{s.end} #{s.digest}"
            for s in r.secrets[:10]
        ) + (f" and {len(r.secrets) - 10} more" if len(r.secrets) > 10 else ""))] if r.secrets else [])
    elif isinstance(r, LMAuditResult):
        rows = [
            (f"canaries repeated {e.repetitions}x ({e.canaries} trained on)",
             f"{e.exposure:.2f} bits" + ("" if e.low == e.high else f" [{e.low:.2f}, {e.high:.2f}]") + f" of {e.space_bits:.1f}")
            for e in r.exposures
        ] + [("limit", f"≤ {r.max_exposure:g} bits"), ("confidence", f"{r.confidence:g}")]
    elif isinstance(r, DPAuditResult):
        rows = [
            ("claim", dp_claim_text(r, symbols="greek")), ("proven", dp_proven(r, symbols="greek")), ("bound", r.reading),
            ("power", dp_power(r)), ("perfect guesses would prove ε", f"{r.max_detectable:.4f}"),
            ("accountant ε", optional(r.accountant_epsilon)),
            ("Gaussian-DP μ lower bound", optional(r.gdp_mu_low)), ("ε from μ", optional(r.gdp_epsilon_low)),
            ("canaries / guesses / correct", f"{r.n_canaries} / {r.n_guesses} / {r.n_correct}"),
            ("confidence", f"{r.confidence:g}"),
        ]
    elif isinstance(r, ComparisonResult):
        rows = [
            ("baseline", r.baseline), ("TPR at FPR " + f"{r.fpr:g}", f"{r.tpr:.4f} (baseline {r.tpr_baseline:.4f})"),
            ("difference", f"{r.tpr_diff:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}], margin {r.margin:g}"),
            ("p-value", f"{r.p_value:.4g}"), ("accuracy", f"{r.accuracy:.4f} (baseline {r.accuracy_baseline:.4f})"),
            ("members / non-members", f"{r.n_members:,} / {r.n_nonmembers:,}"),
            ("references", f"{r.n_references} (baseline {r.n_references_baseline})"), ("confidence", f"{r.confidence:g}"),
        ]
    else:
        rows = [
            ("gate", gate_name(r)),
            (f"TPR at FPR {r.fpr:g} (estimate)", f"{r.tpr_at_fpr:.4f}"),
            ("deciding point", (f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f} "
                               f"(≤ {r.fpr_high:.4f}), threshold {r.threshold:.4g}")),
            ("AUC", f"{r.auc:.4f} [{r.auc_low:.4f}, {r.auc_high:.4f}]"),
            ("ε lower bound (δ = 0)", optional(r.epsilon_low)),
            ("members / non-members", f"{r.n_members:,} / {r.n_nonmembers:,}"),
            ("queries", f"{r.queries:,}" if r.queries else None), ("confidence", f"{r.confidence:g}"),
            ("references", r.n_references),
            ("Gaussian model of the references", gaussian_fit_text(r)),
        ]
    rows += [("seed", r.seed), ("profile", r.profile)]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v is not None)
    return f'<table class="numbers">{body}</table>'


def _vulnerable(i: int, r: AttackResult) -> str:
    """The records the attack ranks most likely members: where to look for duplicates, outliers
    and mislabelled examples."""
    keys = any(getattr(p, "key", None) for p in r.most_vulnerable)  # content hashes, when recorded
    images = any(p.thumbnail for p in r.most_vulnerable)  # image records: shown, as the data owner sees them

    def image(p: Any) -> str:
        alt = f"record {p.index}, label {p.label}"
        return f'<td><img class="record-image" alt="{escape(alt)}" src="{p.thumbnail}"></td>' if p.thumbnail else "<td>–</td>"

    rows = "".join(
        f'<tr class="record{" member" if p.member else ""}" data-index="{p.index}">'
        + (image(p) if images else "")
        + f'<td class="num">{p.index}</td><td class="num">{p.label}</td><td class="num">{p.score:.4g}</td>'
        + (f'<td class="mono">{escape(getattr(p, "key", None) or "–")}</td>' if keys else "")
        + f"<td>{'yes' if p.member else 'no'}</td></tr>"
        for p in r.most_vulnerable
    )
    key_head = "<th>Key</th>" if keys else ""
    image_head = "<th>Record</th>" if images else ""
    return (
        f'<h4>Most vulnerable records</h4><table class="vulnerable" id="vulnerable-{i}">'
        f"<thead><tr>{image_head}<th>Index</th><th>Label</th><th>Score</th>{key_head}<th>Member</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def has_roc(r: AnyResult) -> bool:
    return isinstance(r, AttackResult) and bool(r.roc_fpr)


def _roc_png(r: AttackResult) -> str:
    """``r``'s log-log ROC figure (:func:`.plots.roc_figure`) as base64 PNG."""
    from .plots import roc_figure

    fig = roc_figure(r)  # (selects the Agg backend before pyplot is imported)
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", bbox_inches="tight")  # keeps the legend beside the axes
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
