"""The self-contained HTML report (``--privacy-html``).

One file, readable offline and attachable to a CI run: no network access of any kind (no CDN, no
external CSS, JavaScript or fonts); the ROC figures are inlined as base64 PNG data URIs. The page has

- a header with the run's context: versions, platform, time, models trained and loaded, the
  settings that reproduce the run (``report.config``) and what the model cache keys cover;
- the verdicts, one ``<tr class="result" data-verdict=... data-test=...>`` per result, with the
  numbers that decided them (the same wording as the terminal summary);
- the release-to-release comparison (``--privacy-compare``), one ``<tr class="change ...">`` per gate;
- an attack comparison for every test that ran several attacks;
- per result: the gate's reason, its log-log ROC figure (``<img class="roc">``, when matplotlib is
  importable; otherwise the page says the figures were left out) and its most vulnerable records,
  with the records themselves as images when they are images.

Every string from the run (test ids, reasons, settings, ...) is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ..results import (
    AnyResult,
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    SessionReport,
)
from .summary import decided_tpr, dp_claim_text, dp_power, dp_proven, verdict_label

__all__ = ["render_html", "write_html"]

# Settings of report.config that reproduce a run, with the command-line option that sets each.
_REPRODUCE = {
    "profile": "profile", "n_references": "references", "seed": "seed", "attacks": "attacks",
    "device": "device", "population": "population", "canaries": "canaries", "inconclusive": "inconclusive",
}
_NO_RESULTS = (
    "No privacy result was recorded in this session: no privacy gate ran to its assertion "
    "(deselected, skipped, or erroring before it)."
)
_NO_MATPLOTLIB = (
    "matplotlib is not installed, so this report has no ROC figures "
    "(install it with: pip install 'pytest-privacy[plot]')."
)

_CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --inconclusive: #b26b00; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2328; margin: 0 auto; max-width: 1200px; padding: 1.5em; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .3em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid var(--line); padding-bottom: .2em; } h3 { font-size: 1.05em; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: .6em .8em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid var(--line); padding: .3em .55em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.limit { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; min-width: 6.5em; text-align: center; border-radius: 1em; padding: .1em .7em;
         color: #fff; font-weight: 700; font-size: 12px; letter-spacing: .03em; white-space: nowrap; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.inconclusive { background: var(--inconclusive); }
.outcome { font-size: 1.15em; padding: .5em .8em; border-radius: .4em; margin: 0 0 1em; }
.outcome.failed { border: 2px solid var(--fail); } .outcome.passed { border: 2px solid var(--pass); }
.badge.smoke { background: repeating-linear-gradient(45deg, var(--pass), var(--pass) 6px, #2c974b 6px, #2c974b 12px); }
.context { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1em; margin: .5em 0; }
.context dt { color: var(--muted); } .context dd { margin: 0; }
.notice { border-left: 4px solid var(--inconclusive); background: #fff8c5; padding: .5em .8em; margin: 1em 0; }
.empty { border-left: 4px solid var(--muted); background: #f6f8fa; padding: .8em 1em; margin: 1em 0; font-size: 1.05em; }
.counts span { margin-right: 1em; }
.detail { border: 1px solid var(--line); border-radius: 8px; padding: .2em 1em 1em; margin: 1.2em 0; }
.detail.fail { border-left: 6px solid var(--fail); } .detail.pass { border-left: 6px solid var(--pass); }
.detail.inconclusive { border-left: 6px solid var(--inconclusive); }
img.roc { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure { margin: .5em 0; } figcaption { color: var(--muted); font-size: 12px; }
tr.strongest td { font-weight: 600; }
tr.record.member td:last-child { color: var(--fail); font-weight: 600; }
img.record-image { width: 64px; height: 64px; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
tr.change.regressed td:first-child { color: var(--fail); font-weight: 700; }
tr.change.improved td:first-child { color: var(--pass); font-weight: 600; }
.muted { color: var(--muted); }
"""


def write_html(report: SessionReport, path: str | os.PathLike[str]) -> None:
    """Write ``report`` as one self-contained HTML file at ``path``, atomically: the page goes to a
    temporary file beside ``path`` that then replaces it, so a reader never sees half a page."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(report)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_html(report: SessionReport, *, figures: bool = True) -> str:
    """The report page as a string (``figures=False`` leaves out the ROC figures, as a missing
    matplotlib does, and says so)."""
    plotting = figures and _matplotlib_available()
    results = list(report.results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pytest-privacy report {_e(report.created)}</title>",
        f"<style>{_CSS}</style></head><body>",
        _outcome(report),
        _header(report),
    ]
    if not results:
        note = report.note or _NO_RESULTS
        parts.append(f'<p class="empty" id="empty-report">{_e(note)}</p>')
    else:
        if figures and not plotting and any(_has_roc(r) for r in results):
            parts.append(f'<p class="notice" id="no-figures">{_e(_NO_MATPLOTLIB)}</p>')
        elif not figures:
            parts.append('<p class="notice" id="no-figures">ROC figures were left out of this report.</p>')
        if report.note:
            parts.append(f'<p class="notice" id="note">{_e(report.note)}</p>')
        parts += [_verdicts(results), _release_comparison(report), _attack_comparisons(results)]
        parts.append('<h2 id="details">Details</h2>')
        parts += [_detail(i, r, plotting) for i, r in enumerate(results)]
    parts.append(
        '<p class="muted">Written by pytest-privacy. A PASS bounds what the attacks here could show on '
        "this audit set; it is not a proof of privacy.</p></body></html>"
    )
    return "\n".join(p for p in parts if p) + "\n"


# ------------------------------------------------------------------------------------ header


def _outcome(report: SessionReport) -> str:
    """The session's outcome first, in the colour its exit status means: a failed run never reads
    as a pass because its own gates passed."""
    from .summary import session_outcome

    outcome = session_outcome(report)
    if outcome is None:
        return ""
    state, why = outcome
    badge = "fail" if state == "failed" else "pass"
    return (
        f'<p id="outcome" class="outcome {state}"><span class="badge {badge}">SESSION {state.upper()}</span> '
        f"{_e(why)}</p>"
    )


def _header(report: SessionReport) -> str:
    """Title and run context: versions, platform, time, models, reproduction settings, cache keys."""
    config = report.config or {}
    context = [
        ("created", report.created),
        ("pytest-privacy", report.pytest_privacy),
        ("commit", getattr(report, "commit", None) or "unknown"),
        ("torch", report.torch or "not imported"),
        ("python", report.python),
        ("platform", report.platform),
        ("models", (f"{report.models_trained} trained in {report.seconds_training:.1f}s, "
                   f"{report.models_loaded} loaded from cache")),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in context)
    settings = "".join(
        f'<tr data-setting="{_e(k)}"><th>{_e(k)}</th><td class="mono">{_e(_setting(v))}</td></tr>'
        for k, v in sorted(config.items()) if v is not None
    )
    command = _reproduce_command(config)
    out = [
        '<header id="context"><h1>pytest-privacy report</h1>',
        f'<dl class="context">{rows}</dl>',
    ]
    if command:
        out.append(f'<p>Reproduce with (plus your test selection):</p><pre id="reproduce">{_e(command)}</pre>')
    if settings:
        out.append(f'<details id="settings"><summary>All settings</summary><table class="settings">{settings}</table></details>')
    if report.cache_keys:
        keys = "".join(f"<li class='mono'>{_e(k)}</li>" for k in report.cache_keys)
        out.append(f'<details id="cache-keys"><summary>What the model cache keys cover</summary><ul>{keys}</ul></details>')
    out.append("</header>")
    return "\n".join(out)


def _setting(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _reproduce_command(config: dict[str, Any]) -> str:
    """``pytest --privacy-...`` with the settings that decide which models train and how they are
    attacked (the rest of the settings is in the table below it)."""
    args = [f"--privacy-{opt}={_setting(config[key])}" for key, opt in _REPRODUCE.items() if config.get(key) is not None]
    return "pytest " + " ".join(args) if args else ""


# ---------------------------------------------------------------------------------- verdicts


def _verdicts(results: list[AnyResult]) -> str:
    """The verdict table: one ``tr.result`` per result, linked to its details."""
    counts = {v: sum(r.verdict.value == v for r in results) for v in ("pass", "fail", "inconclusive")}
    summary = "".join(f'<span class="count-{v}">{_badge_text(v)}: {n}</span>' for v, n in counts.items())
    head = "".join(f"<th>{h}</th>" for h in (
        "Verdict", "Test", "Attack (variant)", "Measured", "Limit", "AUC", "ε lower bound", "n", "Refs", "Time"))
    rows = []
    for i, r in enumerate(results):
        measured, limit, n, refs = _headline(r)
        auc = f"{r.auc:.3f}" if isinstance(r, AttackResult) else "–"
        eps = f"{r.epsilon_low:.3f}" if getattr(r, "epsilon_low", None) is not None else "–"
        rows.append(
            f'<tr class="result" id="row-{i}" data-verdict="{r.verdict.value}" data-kind="{r.kind}" '
            f'data-test="{_e(_test(r))}" data-attack="{_e(r.attack)}">'
            f"<td>{_badge(r)}</td>"
            f'<td class="mono"><a href="#result-{i}">{_e(_test(r))}</a></td>'
            f"<td>{_e(_attack(r))}</td><td>{_e(measured)}</td><td class='limit'>{_e(limit)}</td>"
            f'<td class="num">{auc}</td><td class="num">{eps}</td><td class="num">{_e(n)}</td>'
            f'<td class="num">{_e(refs)}</td><td class="num">{r.seconds or 0:.1f}s</td></tr>'
        )
    return (
        f'<h2 id="verdicts">Verdicts</h2><p class="counts">{summary}</p>'
        f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _headline(r: AnyResult) -> tuple[str, str, str, str]:
    """What was measured, the limit it was held to, the sample sizes and the references: the
    numbers of the terminal summary line (:func:`.summary.format_summary`), in columns."""
    if isinstance(r, DPAuditResult):
        accountant = f", accountant ε {r.accountant_epsilon:g}" if r.accountant_epsilon else ""
        return (
            f"{dp_proven(r, symbols='greek')} ({dp_power(r)}){accountant}",
            f"claim {dp_claim_text(r, symbols='greek')}",
            f"{r.n_correct}/{r.n_guesses} guesses of {r.n_canaries} canaries",
            "–",
        )
    if isinstance(r, ComparisonResult):
        return (
            (f"TPR {r.tpr:.4f} vs baseline {r.tpr_baseline:.4f}: difference {r.tpr_diff:+.4f} "
            f"[{r.diff_low:+.4f}, {r.diff_high:+.4f}]; accuracy {r.accuracy:.3f} vs {r.accuracy_baseline:.3f}"),
            f"TPR − baseline ≤ {r.margin:g} at FPR {r.fpr:g}",
            f"{r.n_members}/{r.n_nonmembers}",
            f"{r.n_references}/{r.n_references_baseline}",
        )
    queries = f", {r.queries:,} queries" if r.queries else ""
    if r.gate == "auc":
        measured, limit = f"AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}]", f"AUC ≤ {r.max_auc:g}"
    elif r.gate == "epsilon":
        measured, limit = f"ε ≥ {r.epsilon_low:.3f}", f"ε ≤ {r.max_epsilon:g}"
    else:
        measured, limit = decided_tpr(r, le="≤", ge="≥"), f"TPR ≤ {r.max_tpr:g} at FPR {r.fpr:g}"
    return measured + queries, limit, f"{r.n_members}/{r.n_nonmembers}", str(r.n_references)


# ---------------------------------------------------------------------- release to release


def _release_comparison(report: SessionReport) -> str:
    """The comparison with a stored run, when one was asked for: the terminal's columns as a table."""
    from .compare import comparison_header, comparison_rows

    c = report.comparison
    if c is None:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in comparison_header())
    body = "".join(
        f'<tr class="change {g.status}" data-test="{_e(g.test_id)}">' + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
        for g, row in zip(c.changes, comparison_rows(c))
    )
    criteria = f"; fails on {c.criteria}" if c.criteria else "; no failure criteria (--privacy-compare-fail)"
    outcome = "<strong>failed</strong>" if c.failed else "no regression"
    notes = "".join(f'<p class="notice">{_e(n)}</p>' for n in c.notes)
    return (
        f'<section id="release-comparison"><h2>Release to release</h2><p>Against stored run '
        f"<code>{_e(c.against)}</code> ({_e(c.against_created)}, commit <code>{_e(c.against_commit or '-')}</code>)"
        f"{_e(criteria)}, at {c.confidence:.0%}: {outcome}. Lower bounds marked <em>paired</em> compare the two "
        "runs' scores on the same audit points.</p>"
        f'<table class="release-comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}</section>'
    )


# ------------------------------------------------------------------------- attack comparison


def _attack_comparisons(results: list[AnyResult]) -> str:
    """For each test that recorded several results: its attacks side by side, the one with the
    highest AUC (the strongest attack on this model) in bold."""
    groups: dict[str, list[tuple[int, AnyResult]]] = {}
    for i, r in enumerate(results):
        groups.setdefault(_test(r), []).append((i, r))
    tables = []
    for test, members in groups.items():
        if len(members) < 2:
            continue
        aucs = [r.auc for _, r in members if isinstance(r, AttackResult)]
        best = max(aucs) if aucs else None
        rows = []
        for i, r in members:
            strongest = isinstance(r, AttackResult) and r.auc == best
            if isinstance(r, AttackResult):
                tpr = f"{r.tpr_at_fpr:.4f} @ FPR {r.fpr:g}"
                auc = f"{r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}]"
            elif isinstance(r, ComparisonResult):
                tpr, auc = f"{r.tpr:.4f} @ FPR {r.fpr:g} (baseline {r.tpr_baseline:.4f})", "–"
            else:
                tpr, auc = "–", "–"
            eps = f"{r.epsilon_low:.3f}" if getattr(r, "epsilon_low", None) is not None else "–"
            rows.append(
                f'<tr class="attack-row{" strongest" if strongest else ""}" data-verdict="{r.verdict.value}">'
                f'<td><a href="#result-{i}">{_e(_attack(r))}</a></td><td>{_e(_gate(r))}</td><td>{_badge(r)}</td>'
                f'<td class="num">{_e(tpr)}</td><td class="num">{_e(auc)}</td><td class="num">{eps}</td>'
                f'<td class="num">{r.seconds or 0:.1f}s</td></tr>'
            )
        tables.append(
            f'<h3 class="mono">{_e(test)}</h3><table class="attack-comparison" data-test="{_e(test)}">'
            "<thead><tr><th>Attack (variant)</th><th>Gate</th><th>Verdict</th><th>TPR estimate</th>"
            f"<th>AUC [interval]</th><th>ε lower bound</th><th>Time</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    if not tables:
        return ""
    return '<section id="attack-comparison"><h2>Attack comparison</h2>' + "".join(tables) + "</section>"


# ----------------------------------------------------------------------------------- details


def _detail(i: int, r: AnyResult, plotting: bool) -> str:
    """One result in full: the gate's reason, its numbers, the ROC figure and the most vulnerable
    records."""
    out = [
        f'<section class="detail {r.verdict.value}" id="result-{i}" data-test="{_e(_test(r))}" data-kind="{r.kind}">',
        f'<h3>{_badge(r)} <span class="mono">{_e(_test(r))}</span> — {_e(_attack(r))}</h3>',
        f'<pre class="reason">{_e(r.reason)}</pre>',
        _numbers(r),
    ]
    if isinstance(r, AttackResult):
        if plotting and _has_roc(r):
            out.append(
                f'<figure><img class="roc" id="roc-{i}" alt="{_e(f"ROC of {r.attack} on {_test(r)}")}" '
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
    if isinstance(r, DPAuditResult):
        rows = [
            ("claim", dp_claim_text(r, symbols="greek")), ("proven", dp_proven(r, symbols="greek")), ("bound", r.reading),
            ("power", dp_power(r)), ("perfect guesses would prove ε", f"{r.max_detectable:.4f}"),
            ("accountant ε", _opt(r.accountant_epsilon)),
            ("Gaussian-DP μ lower bound", _opt(r.gdp_mu_low)), ("ε from μ", _opt(r.gdp_epsilon_low)),
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
            ("gate", _gate(r)),
            (f"TPR at FPR {r.fpr:g} (estimate)", f"{r.tpr_at_fpr:.4f}"),
            ("deciding point", (f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f} "
                               f"(≤ {r.fpr_high:.4f}), threshold {r.threshold:.4g}")),
            ("AUC", f"{r.auc:.4f} [{r.auc_low:.4f}, {r.auc_high:.4f}]"),
            ("ε lower bound (δ = 0)", _opt(r.epsilon_low)),
            ("members / non-members", f"{r.n_members:,} / {r.n_nonmembers:,}"),
            ("queries", f"{r.queries:,}" if r.queries else None), ("confidence", f"{r.confidence:g}"),
            ("references", r.n_references),
        ]
    rows += [("seed", r.seed), ("profile", r.profile)]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v is not None)
    return f'<table class="numbers">{body}</table>'


def _vulnerable(i: int, r: AttackResult) -> str:
    """The records the attack ranks most likely members: where to look for duplicates, outliers
    and mislabelled examples."""
    keys = any(getattr(p, "key", None) for p in r.most_vulnerable)  # content hashes, when recorded
    images = any(p.thumbnail for p in r.most_vulnerable)  # image records: shown, as the data owner sees them

    def image(p: Any) -> str:
        alt = f"record {p.index}, label {p.label}"
        return f'<td><img class="record-image" alt="{_e(alt)}" src="{p.thumbnail}"></td>' if p.thumbnail else "<td>–</td>"

    rows = "".join(
        f'<tr class="record{" member" if p.member else ""}" data-index="{p.index}">'
        + (image(p) if images else "")
        + f'<td class="num">{p.index}</td><td class="num">{p.label}</td><td class="num">{p.score:.4g}</td>'
        + (f'<td class="mono">{_e(getattr(p, "key", None) or "–")}</td>' if keys else "")
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


# ----------------------------------------------------------------------------------- figures


def _matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _has_roc(r: AnyResult) -> bool:
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


# ----------------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    """``value`` as text, escaped for HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def _opt(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def _test(r: AnyResult) -> str:
    return r.test_id or "-"


def _attack(r: AnyResult) -> str:
    if isinstance(r, ComparisonResult):
        return f"{r.attack} ({r.variant}) vs {r.baseline}"
    return f"{r.attack} ({r.variant})"


def _gate(r: AnyResult) -> str:
    if isinstance(r, DPAuditResult):
        return "DP audit"
    if isinstance(r, ComparisonResult):
        return "comparison"
    return {"tpr_at_fpr": "TPR at FPR", "auc": "AUC", "epsilon": "ε"}[r.gate]


def _badge_text(verdict: str) -> str:
    return verdict.upper()


def _badge(r: AnyResult) -> str:
    """The coloured verdict badge: PASS green, FAIL red, INCONCLUSIVE amber, "PASS (smoke)" for a
    smoke-profile pass (it shows the suite runs, not that the model is private)."""
    text = verdict_label(r)
    smoke = " smoke" if text.endswith("(smoke)") else ""
    return f'<span class="badge {r.verdict.value}{smoke}">{_e(text)}</span>'
