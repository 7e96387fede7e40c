"""What a person reads first: one line per result in the terminal, and compact junit properties."""

from __future__ import annotations

from ..results import (
    AnyResult,
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    LMAuditResult,
    SessionReport,
    Verdict,
)

__all__ = ["certified", "decided_tpr", "dp_power", "format_summary", "junit_properties", "session_outcome", "verdict_label"]


def session_outcome(report: SessionReport) -> tuple[str, str] | None:
    """``("failed" | "passed", why)``: the session's outcome as its exit status means it, in the
    words every report opens with (None when the report does not know it, e.g. one written by an
    older version). A failed session names what failed it: leaks proven, gates left inconclusive
    under ``--privacy-inconclusive=fail``, a regression against a stored run, other failing tests."""
    if report.outcome is None:
        return None
    counts = {v.value: sum(r.verdict is v for r in report.results) for v in Verdict}
    measured = f", {counts['measured']} measured (no limit)" if counts["measured"] else ""
    if report.outcome == "passed":
        return "passed", f"{len(report.results)} privacy result(s): {counts['pass']} pass{measured}" + (
            f", {counts['inconclusive']} inconclusive (not failing the run: --privacy-inconclusive="
            f"{report.config.get('inconclusive', 'fail')})" if counts["inconclusive"] else ""
        )
    why = []
    if counts["fail"]:
        why.append(f"{counts['fail']} gate(s) proved a leak")
    if counts["inconclusive"] and report.config.get("inconclusive", "fail") == "fail":
        why.append(f"{counts['inconclusive']} gate(s) inconclusive (counted as failures: --privacy-inconclusive=fail)")
    c = report.comparison
    if c is not None and c.failed and c.criteria:
        why.append(f"a privacy regression against stored run {c.against_run or c.against}")
    if not why:
        why.append("tests failed or errored (see pytest's output)")
    return "failed", "; ".join(why)


def format_summary(results: list[AnyResult]) -> list[str]:
    """One line per result: verdict, test, attack, TPR (interval) at the achieved FPR, limit, AUC,
    epsilon lower bound, sample sizes, seed and time."""
    lines = []
    for r in results:
        tail = f"seed={r.seed}, {r.seconds or 0:.1f}s"
        if isinstance(r, LMAuditResult):
            measured, limit, n = lm_measurement(r)
            lines.append(f"{verdict_label(r):12} {r.test_id or '-'}  {r.attack} ({r.variant}): {measured}, limit {limit}, n={n}, {tail}")
            continue
        if isinstance(r, DPAuditResult):
            accountant = f", accountant {r.accountant_epsilon:g}" if r.accountant_epsilon else ""
            lines.append(
                f"{verdict_label(r):12} {r.test_id or '-'}  {r.attack} ({r.variant}): {dp_proven(r)} "
                f"({dp_power(r)}), claim {dp_claim_text(r)}, {r.reading} bound"
                f"{accountant}, {r.n_correct}/{r.n_guesses} guesses of {r.n_canaries} canaries, {tail}"
            )
            continue
        if isinstance(r, ComparisonResult):
            lines.append(
                f"{verdict_label(r):12} {r.test_id or '-'}  {r.attack} ({r.variant}) at FPR {r.fpr:g}: "
                f"TPR {r.tpr:.4f} vs baseline {r.tpr_baseline:.4f} (difference {r.tpr_diff:+.4f} "
                f"[{r.diff_low:+.4f}, {r.diff_high:+.4f}], margin {r.margin:g}), accuracy {r.accuracy:.3f} vs "
                f"{r.accuracy_baseline:.3f}, n={r.n_members}/{r.n_nonmembers}, {tail}"
            )
            continue
        if r.gate == "auc":
            measured = f"AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}], limit AUC<={r.max_auc:g}"
        elif r.gate == "epsilon":
            measured = f"limit eps<={r.max_epsilon:g}, AUC {r.auc:.3f}"
        elif r.gate == "measure":
            measured = f"{decided_tpr(r)}, no limit, AUC {r.auc:.3f} [{r.auc_low:.3f}, {r.auc_high:.3f}]"
        else:
            measured = f"{decided_tpr(r)}, limit TPR<={r.max_tpr:g}@FPR{r.fpr:g}, AUC {r.auc:.3f}"
        eps = f", eps>={r.epsilon_low:.2f}" if r.epsilon_low is not None else ""
        queries = f", {r.queries:,} queries" if r.queries else ""
        if r.audit == "recipe":  # the counts are pooled trials of every model, not points
            queries += f", audit: recipe of {r.n_models} models"
        fit = f", Gaussian fit: {gaussian_fit_text(r)}" if r.gaussian_fit is not None else ""
        lines.append(
            f"{verdict_label(r):12} {r.test_id or '-'}  {r.attack} ({r.variant}): {measured}{eps}, "
            f"n={r.n_members}/{r.n_nonmembers}, refs={r.n_references}{queries}{fit}, {tail}"
        )
    return lines


def gaussian_fit_text(r: AttackResult) -> str | None:
    """LiRA's Gaussian-fit check as reports write it: ``p=0.41, fits`` or ``p=0.0003, does not fit
    (worst points 17, 4, 230)``; None for attacks without the check."""
    fit = r.gaussian_fit
    if fit is None:
        return None
    left_out = f", {fit.n_degenerate} point(s) without spread left out" if fit.n_degenerate else ""
    if not fit.rejected:
        return f"p={fit.p_value:.2g}, fits{left_out}"
    return f"p={fit.p_value:.2g}, does not fit (worst points {', '.join(map(str, fit.worst))}){left_out}"


_SYMBOLS = {"plain": ("eps", "mu", "delta", "<=", ">="), "greek": ("ε", "μ", "δ", " ≤ ", " ≥ ")}


def dp_claim_text(r: DPAuditResult, *, symbols: str = "plain") -> str:
    """The claim a DP audit held the model to: ``eps<=2 at delta 1e-05``, or for a Gaussian-DP claim
    ``mu<=0.8 (eps<=3.1 at delta 1e-05)`` (``symbols="greek"``: ``ε ≤ 2 at δ 1e-05``)."""
    eps, mu, delta, le, _ = _SYMBOLS[symbols]
    shown = f"{r.epsilon_claim:g}" if r.mu_claim is None else f"{r.epsilon_claim:.3g}"  # mu's epsilon: derived
    text = f"{eps}{le}{shown} at {delta} {r.delta:g}"
    return f"{mu}{le}{r.mu_claim:g} ({text})" if r.mu_claim is not None else text


def dp_proven(r: DPAuditResult, *, symbols: str = "plain") -> str:
    """What the canaries proved, in the claim's terms: ``eps>=1.234`` or ``mu>=0.456 (eps>=2.1)``."""
    eps, mu, _, _, ge = _SYMBOLS[symbols]
    if r.mu_claim is not None and r.gdp_mu_low is not None:
        return f"{mu}{ge}{r.gdp_mu_low:.3f} ({eps}{ge}{r.epsilon_low:.3f})"
    return f"{eps}{ge}{r.epsilon_low:.3f}"


def dp_power(r: DPAuditResult) -> str:
    """What a one-run audit could have caught: the smallest true epsilon at which it refutes the claim
    half the time with best-case canaries (older results: the perfect-guess ceiling, said as such)."""
    if r.epsilon_detectable is None:
        return f"perfect guesses would prove {r.max_detectable:.3f}"
    if r.epsilon_detectable == float("inf"):
        return "no power: it cannot refute this claim"
    return f"catches the claim only if eps >= {r.epsilon_detectable:.2f}, at best"


def lm_measurement(r: LMAuditResult, *, symbols: str = "plain") -> tuple[str, str, str]:
    """A language model's extraction or exposure gate: what was measured, the limit, and the sample:
    ``3/150 member texts extracted (0/150 non-member), p=0.12`` or per repetition count
    ``1x 2.3 bits, 4x 9.1 bits [..]`` (``symbols="greek"``: ≤ for <=)."""
    le = _SYMBOLS[symbols][3].strip()
    if r.gate == "extraction":
        return (
            f"{r.extracted}/{r.n_members} member texts extracted ({r.extracted_nonmembers}/{r.n_nonmembers} non-member), "
            f"p={r.p_value:.2g}",
            f"extracted{le}{r.max_extracted}",
            f"{r.n_members}/{r.n_nonmembers}",
        )
    rows = ", ".join(
        f"{e.repetitions}x {e.exposure:.1f} bits" + ("" if e.low == e.high else f" [{e.low:.1f}, {e.high:.1f}]")
        for e in r.exposures
    )
    space = max((e.space_bits for e in r.exposures), default=0.0)
    return (
        f"exposure {rows} (of {space:.1f} possible)", f"exposure{le}{r.max_exposure:g} bits",
        f"{sum(e.canaries for e in r.exposures)} canaries",
    )


def verdict_label(r: AnyResult) -> str:
    """``PASS``, ``FAIL``, ``INCONCLUSIVE``, or ``PASS (smoke)`` for a smoke-profile pass."""
    # A smoke run has 4 references: its PASS says the suite runs, not that the model is private.
    smoke = " (smoke)" if r.profile == "smoke" and r.verdict.value == "pass" else ""
    return r.verdict.value.upper() + smoke


def decided_tpr(r: AttackResult, *, le: str = "<=", ge: str = ">=") -> str:
    """The certified bound that decided a TPR gate (so no PASS line shows a rate above its limit),
    or the estimate with its interval when nothing was decided (``le``/``ge``: how to write the
    comparisons, e.g. "≤" in Markdown and HTML)."""
    if r.verdict.value == "pass":
        return f"TPR{le}{r.tpr_high:.4f} certified at FPR{le}{r.fpr:g} (estimate {r.tpr_at_fpr:.4f} at FPR {r.fpr:g})"
    if r.verdict.value == "fail":
        return f"TPR{ge}{r.tpr_low:.4f} certified at FPR{le}{r.fpr_high:.4f} (estimate {r.tpr_at_fpr:.4f} at FPR {r.fpr:g})"
    return f"TPR {r.tpr:.4f} [{r.tpr_low:.4f}, {r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f}"


def certified(r: AttackResult) -> tuple[str, str] | None:
    """The bounds that decided a TPR gate, as the summary writes them: ``("<=0.0301", "<=0.01")``
    for a PASS (TPR, FPR), ``(">=0.0387", "<=0.0097")`` for a FAIL; None when undecided."""
    if r.verdict.value == "pass":
        return f"<={r.tpr_high:.4f}", f"<={r.fpr:g}"
    if r.verdict.value == "fail":
        return f">={r.tpr_low:.4f}", f"<={r.fpr_high:.4f}"
    return None


def junit_properties(result: AnyResult) -> list[tuple[str, str]]:
    """The verdict and headline numbers of a result, for junit XML (the full result, ROC included,
    is in the JSON report), each named for what it is and equal to what the summary line prints:
    ``privacy_tpr_estimate`` the TPR at the gate's FPR, ``privacy_tpr_certified`` and
    ``privacy_fpr_certified`` the bounds that decided it (a PASS or FAIL), ``privacy_tpr_interval`` at
    ``privacy_fpr_achieved`` the operating point of an undecided one. A family's members (several
    results of one test) carry their attack and FPR in every name (``privacy_tpr_estimate[lira@0.01]``)."""
    props = [*_headline(result), ("privacy_summary", format_summary([result])[0])]
    if isinstance(result, AttackResult) and "family of" in result.variant:
        tag = f"[{result.attack}@{result.fpr:g}]"
        props = [(name + tag, value) for name, value in props]
    return props


def _headline(result: AnyResult) -> list[tuple[str, str]]:
    props = [("privacy_verdict", result.verdict.value), ("privacy_attack", result.attack)]
    if isinstance(result, LMAuditResult):
        measured, limit, _ = lm_measurement(result)
        props += [("privacy_measured", measured), ("privacy_limit", limit)]
    elif isinstance(result, DPAuditResult):
        props += [("privacy_epsilon_low", f"{result.epsilon_low:.4f}"), ("privacy_epsilon_claim", f"{result.epsilon_claim:g}")]
        if result.mu_claim is not None and result.gdp_mu_low is not None:
            props += [("privacy_mu_low", f"{result.gdp_mu_low:.4f}"), ("privacy_mu_claim", f"{result.mu_claim:g}")]
    elif isinstance(result, ComparisonResult):
        props += [("privacy_tpr", f"{result.tpr:.4f}"), ("privacy_tpr_baseline", f"{result.tpr_baseline:.4f}")]
    elif result.gate == "auc":
        props += [("privacy_auc", f"{result.auc:.4f}"), ("privacy_max_auc", f"{result.max_auc:g}")]
    elif result.gate == "epsilon":
        props += [("privacy_epsilon_low", f"{result.epsilon_low:.4f}"), ("privacy_max_epsilon", f"{result.max_epsilon:g}")]
    else:
        props.append(("privacy_tpr_estimate", f"{result.tpr_at_fpr:.4f}"))
        bounds = certified(result)
        if bounds is not None:
            props += [("privacy_tpr_certified", bounds[0]), ("privacy_fpr_certified", bounds[1])]
        else:
            props += [
                ("privacy_tpr_interval", f"{result.tpr_low:.4f},{result.tpr_high:.4f}"),
                ("privacy_fpr_achieved", f"{result.fpr_achieved:.4f}"),
            ]
        if result.max_tpr is not None:  # a measurement has no limit
            props.append(("privacy_limit", f"TPR<={result.max_tpr:g}@FPR{result.fpr:g}"))
    return props
