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

import os
import tempfile
from pathlib import Path
from typing import Any

from ..results import (
    AnyResult,
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    LMAuditResult,
    SessionReport,
)
from .html_details import detail, has_roc, matplotlib_available
from .html_text import (
    attack_name,
    badge,
    badge_text,
    escape,
    gate_name,
    test_name,
)
from .summary import decided_tpr, dp_claim_text, dp_power, dp_proven, lm_measurement

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
.badge.inconclusive { background: var(--inconclusive); } .badge.measured { background: var(--muted); }
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
.detail.inconclusive { border-left: 6px solid var(--inconclusive); } .detail.measured { border-left: 6px solid var(--muted); }
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
    plotting = figures and matplotlib_available()
    results = list(report.results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pytest-privacy report {escape(report.created)}</title>",
        f"<style>{_CSS}</style></head><body>",
        _outcome(report),
        _header(report),
    ]
    if not results:
        note = report.note or _NO_RESULTS
        parts.append(f'<p class="empty" id="empty-report">{escape(note)}</p>')
    else:
        if figures and not plotting and any(has_roc(r) for r in results):
            parts.append(f'<p class="notice" id="no-figures">{escape(_NO_MATPLOTLIB)}</p>')
        elif not figures:
            parts.append('<p class="notice" id="no-figures">ROC figures were left out of this report.</p>')
        if report.note:
            parts.append(f'<p class="notice" id="note">{escape(report.note)}</p>')
        parts += [_verdicts(results), _release_comparison(report), _attack_comparisons(results)]
        parts.append('<h2 id="details">Details</h2>')
        parts += [detail(i, r, plotting) for i, r in enumerate(results)]
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
        f"{escape(why)}</p>"
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
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in context)
    settings = "".join(
        f'<tr data-setting="{escape(k)}"><th>{escape(k)}</th><td class="mono">{escape(_setting(v))}</td></tr>'
        for k, v in sorted(config.items()) if v is not None
    )
    command = _reproduce_command(config)
    out = [
        '<header id="context"><h1>pytest-privacy report</h1>',
        f'<dl class="context">{rows}</dl>',
    ]
    if command:
        out.append(f'<p>Reproduce with (plus your test selection):</p><pre id="reproduce">{escape(command)}</pre>')
    if settings:
        out.append(f'<details id="settings"><summary>All settings</summary><table class="settings">{settings}</table></details>')
    if report.cache_keys:
        keys = "".join(f"<li class='mono'>{escape(k)}</li>" for k in report.cache_keys)
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
    counts = {v: sum(r.verdict.value == v for r in results) for v in ("pass", "fail", "inconclusive", "measured")}
    counts = {v: n for v, n in counts.items() if n or v != "measured"}
    summary = "".join(f'<span class="count-{v}">{badge_text(v)}: {n}</span>' for v, n in counts.items())
    head = "".join(f"<th>{h}</th>" for h in (
        "Verdict", "Test", "Attack (variant)", "Measured", "Limit", "AUC", "ε lower bound", "n", "Refs", "Time"))
    rows = []
    for i, r in enumerate(results):
        measured, limit, n, refs = _headline(r)
        auc = f"{r.auc:.3f}" if isinstance(r, AttackResult) else "–"
        eps = f"{r.epsilon_low:.3f}" if getattr(r, "epsilon_low", None) is not None else "–"
        rows.append(
            f'<tr class="result" id="row-{i}" data-verdict="{r.verdict.value}" data-kind="{r.kind}" '
            f'data-test="{escape(test_name(r))}" data-attack="{escape(r.attack)}">'
            f"<td>{badge(r)}</td>"
            f'<td class="mono"><a href="#result-{i}">{escape(test_name(r))}</a></td>'
            f"<td>{escape(attack_name(r))}</td><td>{escape(measured)}</td><td class='limit'>{escape(limit)}</td>"
            f'<td class="num">{auc}</td><td class="num">{eps}</td><td class="num">{escape(n)}</td>'
            f'<td class="num">{escape(refs)}</td><td class="num">{r.seconds or 0:.1f}s</td></tr>'
        )
    return (
        f'<h2 id="verdicts">Verdicts</h2><p class="counts">{summary}</p>'
        f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _headline(r: AnyResult) -> tuple[str, str, str, str]:
    """What was measured, the limit it was held to, the sample sizes and the references: the
    numbers of the terminal summary line (:func:`.summary.format_summary`), in columns."""
    if isinstance(r, LMAuditResult):
        return (*lm_measurement(r, symbols="greek"), "–")
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
    elif r.gate == "measure":
        measured, limit = decided_tpr(r, le="≤", ge="≥"), "none (a measurement)"
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
    head = "".join(f"<th>{escape(h)}</th>" for h in comparison_header())
    body = "".join(
        f'<tr class="change {g.status}" data-test="{escape(g.test_id)}">' + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for g, row in zip(c.changes, comparison_rows(c))
    )
    criteria = f"; fails on {c.criteria}" if c.criteria else "; no failure criteria (--privacy-compare-fail)"
    outcome = "<strong>failed</strong>" if c.failed else "no regression"
    notes = "".join(f'<p class="notice">{escape(n)}</p>' for n in c.notes)
    return (
        f'<section id="release-comparison"><h2>Release to release</h2><p>Against stored run '
        f"<code>{escape(c.against)}</code> ({escape(c.against_created)}, commit <code>{escape(c.against_commit or '-')}</code>)"
        f"{escape(criteria)}, at {c.confidence:.0%}: {outcome}. Lower bounds marked <em>paired</em> compare the two "
        "runs' scores on the same audit points.</p>"
        f'<table class="release-comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}</section>'
    )


# ------------------------------------------------------------------------- attack comparison


def _attack_comparisons(results: list[AnyResult]) -> str:
    """For each test that recorded several results: its attacks side by side, the one with the
    highest AUC (the strongest attack on this model) in bold."""
    groups: dict[str, list[tuple[int, AnyResult]]] = {}
    for i, r in enumerate(results):
        groups.setdefault(test_name(r), []).append((i, r))
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
                f'<td><a href="#result-{i}">{escape(attack_name(r))}</a></td><td>{escape(gate_name(r))}</td><td>{badge(r)}</td>'
                f'<td class="num">{escape(tpr)}</td><td class="num">{escape(auc)}</td><td class="num">{eps}</td>'
                f'<td class="num">{r.seconds or 0:.1f}s</td></tr>'
            )
        tables.append(
            f'<h3 class="mono">{escape(test)}</h3><table class="attack-comparison" data-test="{escape(test)}">'
            "<thead><tr><th>Attack (variant)</th><th>Gate</th><th>Verdict</th><th>TPR estimate</th>"
            f"<th>AUC [interval]</th><th>ε lower bound</th><th>Time</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    if not tables:
        return ""
    return '<section id="attack-comparison"><h2>Attack comparison</h2>' + "".join(tables) + "</section>"
