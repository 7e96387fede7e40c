"""assert_* helpers: run an attack, gate its scores, and fail with a message a person can act on."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, NamedTuple

import numpy as np

from .attacks.default import default_attack
from .attacks.registry import get_attack
from .attacks.runner import attack_scores, recipe_scores
from .data import Baseline, MembershipData, as_membership_data
from .querying import label_oracle, model_inputs
from .report import record_result
from .report.summary import dp_power, dp_proven
from .report.thumbnails import is_image, png_data_uri
from .results import (
    AttackResult,
    ComparisonResult,
    DPAuditResult,
    GateResult,
    PointScores,
    Verdict,
    VulnerablePoint,
)
from .stats.checks import (
    check_confidence,
    check_delta,
    check_gate_args,
    check_margin,
    check_max_auc,
    check_max_epsilon,
    check_rate,
)
from .stats.comparisons import paired_tpr_comparison
from .stats.epsilon import epsilon_lower_bound
from .stats.gates import auc_gate, epsilon_gate, fail_p_value, gate, holm
from .stats.intervals import clopper_pearson
from .stats.looks import look_confidence
from .stats.pooled import pooled_fail_p_value, pooled_gate
from .stats.roc import roc_counts
from .strict import unknown_name_error

__all__ = [
    "PrivacyInconclusiveError",
    "PrivacyInconclusiveWarning",
    "PrivacyLeakError",
    "assert_auc_below",
    "assert_dp_claim_holds",
    "assert_no_more_vulnerable_than",
    "assert_epsilon_below",
    "assert_tpr_at_fpr_below",
    "gate_defaults",
    "set_inconclusive_default",
]

OnInconclusive = Literal["fail", "warn", "skip", "xfail"]


class _GateDefaults(NamedTuple):
    inconclusive: OnInconclusive
    confidence: float


# What helpers use when a call leaves on_inconclusive/confidence unset: the session's settings,
# and inside a test that test's own (the plugin sets them per test, ``@pytest.mark.privacy`` included).
_defaults: ContextVar[_GateDefaults] = ContextVar("pytest_privacy_gate_defaults", default=_GateDefaults("fail", 0.95))

_HINT = (
    "what to try: regularise (weight decay, fewer epochs, early stopping, augmentation), train on "
    "more data, or train with the MMD+mixup defense; then look at the most vulnerable points for "
    "duplicates and mislabels."
)


class PrivacyLeakError(AssertionError):
    """A gate proved a leak (verdict FAIL). Use ``xfail(raises=PrivacyLeakError)`` for known leaks."""


class PrivacyInconclusiveError(AssertionError):
    """A gate could not decide and inconclusive results are set to ``fail`` (the default)."""


class PrivacyInconclusiveWarning(UserWarning):
    """A privacy gate could not decide; emitted when inconclusive results are set to ``warn``."""


_POLICIES = ("fail", "warn", "skip", "xfail")


def _check_policy(policy: object) -> None:
    # A typo must never fall through to a lenient branch (``"fial"`` once meant xfail).
    if policy not in _POLICIES:
        raise ValueError(f"on_inconclusive: {unknown_name_error('policy', str(policy), list(_POLICIES))}")


def set_inconclusive_default(policy: OnInconclusive) -> None:
    """What helpers do with an INCONCLUSIVE verdict when ``on_inconclusive`` is not given
    (the plugin sets it from ``--privacy-inconclusive``)."""
    _check_policy(policy)
    _defaults.set(_defaults.get()._replace(inconclusive=policy))


@contextmanager
def gate_defaults(*, inconclusive: OnInconclusive, confidence: float) -> Iterator[None]:
    """Within the block, helpers called without ``on_inconclusive``/``confidence`` use these
    (the plugin wraps each test in its own resolved settings)."""
    _check_policy(inconclusive)
    token = _defaults.set(_GateDefaults(inconclusive, check_confidence(confidence)))
    try:
        yield
    finally:
        _defaults.reset(token)


def _confidence(confidence: float | None) -> float:
    return _defaults.get().confidence if confidence is None else check_confidence(confidence)


def _policy(on_inconclusive: OnInconclusive | None) -> OnInconclusive:
    if on_inconclusive is None:
        return _defaults.get().inconclusive
    _check_policy(on_inconclusive)
    return on_inconclusive


_TOP_POINTS = 10
_ROC_POINTS = 200


def _attack_result(
    gate_result: GateResult, attack: str, variant: str, data: MembershipData, queries: int | None,
    scores: np.ndarray, started: float, *, is_member: np.ndarray | None = None,
) -> AttackResult:
    """The recorded result: the gate, the thinned ROC curve with its bands, the most exposed points,
    and the epsilon lower bound at delta 0 (unless the caller computed it). ``scores [K, N]`` with
    ``is_member [K, N]`` are a recipe audit's pooled trials (model k's score of point n): its ROC is
    the pooled one, its most exposed points distinct points, and it carries no iid epsilon bound."""
    pooled = scores.ndim == 2
    flat = scores.ravel()
    member = (is_member if pooled else data.is_member).ravel()
    point = np.arange(flat.size) % len(data)  # the audit point each trial scores
    ranked = point[np.argsort(-flat, kind="stable")]
    _, first = np.unique(ranked, return_index=True)  # a point's best-ranked trial only
    top = np.argsort(-flat, kind="stable")[np.sort(first)[:_TOP_POINTS]]
    refs = data.references
    c = roc_counts(flat, member)
    fpr_curve, tpr_curve = c.fps / c.n_nonmembers, c.tps / c.n_members
    # Thin the curve evenly in log-FPR (how the LiRA paper plots it), keeping both ends.
    keep = np.unique(np.r_[0, np.searchsorted(fpr_curve, np.geomspace(1e-5, 1, _ROC_POINTS)).clip(max=len(fpr_curve) - 1), len(fpr_curve) - 1])
    low, high = clopper_pearson(c.tps[keep], c.n_members, gate_result.confidence)
    epsilon_low = gate_result.epsilon_low
    if epsilon_low is None and not pooled:  # reported beside every verdict (an epsilon gate computed its own)
        epsilon_low = epsilon_lower_bound(scores, data.is_member, confidence=gate_result.confidence)
    return AttackResult(
        **gate_result.model_dump(exclude={"epsilon_low"}),
        attack=attack,
        variant=variant,
        queries=queries,
        epsilon_low=epsilon_low,
        seconds=time.perf_counter() - started,
        audit="recipe" if pooled else "model",
        n_models=scores.shape[0] if pooled else 1,
        most_vulnerable=[
            VulnerablePoint(
                index=int(point[i]), label=int(data.y[point[i]]), score=float(flat[i]), member=bool(member[i]),
                key=record_key(data.x[point[i]], data.y[point[i]]),
                thumbnail=png_data_uri(data.x[point[i]]) if is_image(data.x[point[i]]) else None,
            )
            for i in top
        ],
        point_scores=(
            PointScores.of(data.audit_id, scores, data.is_member)
            if not pooled and scores.size <= _PAIRED_MAX_POINTS else None
        ),
        roc_fpr=fpr_curve[keep].tolist(),
        roc_tpr=tpr_curve[keep].tolist(),
        roc_tpr_low=np.atleast_1d(low).tolist(),
        roc_tpr_high=np.atleast_1d(high).tolist(),
        n_references=0 if refs is None else refs.n_references,
        seed=None if refs is None else refs.seed,
        data_id=data.data_id,
    )


# Beyond this many audit points a report would carry megabytes of scores: such gates are compared
# across releases by their intervals only.
_PAIRED_MAX_POINTS = 200_000


def record_key(x: np.ndarray, y: Any) -> str:
    """A record's content hash (its input's bytes and its label): how stored runs name vulnerable
    records without carrying them."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(model_inputs(x)).tobytes())
    h.update(str(int(y)).encode())
    return h.hexdigest()[:16]


def _describe(r: AttackResult) -> str:
    return (
        f"{r.attack} ({r.variant}) TPR {r.tpr:.4f} [{r.confidence:.0%} CI {r.tpr_low:.4f}, "
        f"{r.tpr_high:.4f}] at FPR {r.fpr_achieved:.4f} (<= {r.fpr_high:.4f}); limit: {_limit(r)}\n"
        f"  audit: {r.n_members:,} members, {r.n_nonmembers:,} non-members, "
        f"{r.n_references} reference models, AUC {r.auc:.3f}, seed {r.seed}"
    )


def _limit(r: AttackResult) -> str:
    if r.gate == "auc":
        return f"AUC <= {r.max_auc:g} (AUC {r.auc:.4f} [{r.confidence:.0%} CI {r.auc_low:.4f}, {r.auc_high:.4f}])"
    if r.gate == "epsilon":
        return f"epsilon <= {r.max_epsilon:g} (epsilon >= {r.epsilon_low:.3f})"
    return f"TPR <= {r.max_tpr:g} at FPR {r.fpr:g}"


def _enforce(r: Any, policy: OnInconclusive, what: str, *, describe: Any = None, hint: str = _HINT) -> Any:
    described = (describe or _describe)(r)
    if r.verdict is Verdict.FAIL:
        raise PrivacyLeakError(f"privacy leak: {what}\n  {described}\n  {r.reason}\n  {hint}")
    if r.verdict is Verdict.INCONCLUSIVE:
        message = f"privacy gate inconclusive: {what}\n  {described}\n  {r.reason}"
        if policy == "fail":
            raise PrivacyInconclusiveError(message + "\n  (set --privacy-inconclusive=warn|skip|xfail to not fail)")
        if policy == "warn":
            warnings.warn(message, PrivacyInconclusiveWarning, stacklevel=3)
        else:
            import pytest  # only reached under pytest

            (pytest.skip if policy == "skip" else pytest.xfail)(message)
    return r


def assert_tpr_at_fpr_below(
    model: Any,
    data: MembershipData,
    *,
    fpr: float | Sequence[float] = 1e-3,
    max_tpr: float,
    attack: str | Sequence[str] | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> Any:
    """Assert that ``attack`` finds members with TPR at most ``max_tpr`` at FPR ``fpr``.

    ``attack=None`` runs the default for the audit's references (:func:`~pytest_privacy.attacks.
    default.default_attack`: ``lira``, or ``rmia_ratio`` with 4 references or fewer, where RMIA was
    measured stronger); the result names the attack that ran.

    Fails (``AssertionError``) only when a leak is proven at ``confidence``; passes only when safety
    is proven; otherwise the result is INCONCLUSIVE and handled by ``on_inconclusive``
    (default: the session's ``--privacy-inconclusive``, ``fail``). See :func:`metrics.gate`.
    The result is recorded in the session report and returned.

    Several attacks (``attack=["lira", "rmia"]``) or FPR levels (``fpr=[1e-3, 1e-2]``) gate a
    *family*: every pair is judged, a leak is proven only after Holm's correction over the family
    (so trying more attacks does not raise the false-FAIL rate above ``1 - confidence``), PASS needs
    every member to pass at the Bonferroni level, and the list of results is returned.
    """
    data = as_membership_data(data)
    policy = _policy(on_inconclusive)
    attacks: list[str | None] = [attack] if attack is None or isinstance(attack, str) else list(attack)
    fprs = [fpr] if not isinstance(fpr, (list, tuple)) else list(fpr)
    if not attacks or not fprs:
        raise ValueError("attack= and fpr= need at least one value each.")
    confidence = _confidence(confidence)
    fprs = [check_gate_args(f, max_tpr, confidence)[0] for f in fprs]  # every argument before any attack
    for name in attacks:
        if name is not None:
            get_attack(name)  # an unknown name is an error before the first attack runs
    max_tpr = float(max_tpr)

    def judge(d: MembershipData, level: float) -> list[AttackResult]:
        names = [_attack_for(name, d) for name in attacks]
        if len(names) * len(fprs) > 1:
            return _family(model, d, names, fprs, max_tpr, level, attack_options)
        started = time.perf_counter()
        scores, member, variant, queries = _trials(model, d, names[0], attack_options)
        g = (pooled_gate if scores.ndim == 2 else gate)(scores, member, fpr=fprs[0], max_tpr=max_tpr, confidence=level)
        return [_attack_result(g, names[0], variant, d, queries, scores, started, is_member=member)]

    results = [
        record_result(_requested(r, attack)) for r in _adaptively(judge, data, confidence, same_attack=attack is not None)
    ]
    if len(results) == 1:
        return _enforce(results[0], policy, f"TPR at FPR {fprs[0]:g} must be <= {max_tpr:g}")
    k = len(results)
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    ran = ", ".join(dict.fromkeys(r.attack for r in results))
    what = f"TPR must be <= {max_tpr:g} at FPR {', '.join(f'{f:g}' for f in fprs)} for {ran}"
    if failed:
        lines = "\n  ".join(_describe(r) for r in failed)
        raise PrivacyLeakError(
            f"privacy leak: {what} (a family of {k}, Holm-corrected)\n  {lines}\n  {failed[0].reason}\n  {_HINT}"
        )
    if any(r.verdict is Verdict.INCONCLUSIVE for r in results):
        undecided = next(r for r in results if r.verdict is Verdict.INCONCLUSIVE)
        _enforce(undecided, policy, f"{what} (a family of {k}: every member must pass)")
    return results


def _requested(r: AttackResult, attack: Any) -> AttackResult:
    """``r`` marked as the default gate when the test named no attack: stored runs identify it by
    that request, since the default differs with the references at hand."""
    return r.model_copy(update={"default_attack": True}) if attack is None else r


def _attack_for(attack: str | None, data: MembershipData) -> str:
    """``attack``, or when the test named none the default for ``data``'s references (each look of
    an ``n_references="auto"`` audit picks its own)."""
    return default_attack(data) if attack is None else attack


def _trials(
    model: Any, data: MembershipData, attack: str, attack_options: Mapping[str, Any] | None
) -> tuple[np.ndarray, np.ndarray, str, int | None]:
    """``(scores, is_member, variant, queries)`` of a TPR gate: ``[N]`` for one target, or ``[K, N]``
    pooled over every model of a recipe audit (``data.recipe``) when the attack scores logits.
    Label-only attacks query the target model itself, so a recipe audit judges them on it alone."""
    if data.recipe is not None and get_attack(attack).score is not None and not attack_options:
        scores, member, variant = recipe_scores(data, attack)
        return scores, member, f"{variant}; recipe audit of {len(scores)} models", None
    scores, variant, queries = attack_scores(model, data, attack, attack_options=attack_options)
    return scores, data.is_member, variant, queries


def _fixed(data: MembershipData) -> MembershipData:
    """The audit a helper that cannot be INCONCLUSIVE uses: ``data``, or under
    ``n_references="auto"`` the look at :data:`~pytest_privacy.stats.looks.FIXED_LOOK` references (the
    ``ci`` profile's count): nothing to look again for."""
    return data if data.adaptive is None else data.adaptive.fixed()


def _decided(results: list[Any]) -> bool:
    """Whether a look settled the gate: a leak proven, or every member of the family passed."""
    return any(r.verdict is Verdict.FAIL for r in results) or all(r.verdict is Verdict.PASS for r in results)


def _adaptively(
    judge: Callable[[MembershipData, float], list[AttackResult]], data: MembershipData, confidence: float,
    *, same_attack: bool = False,
) -> list[AttackResult]:
    """``judge(data, confidence)``, or, for an ``n_references="auto"`` audit, the first look of
    :data:`~pytest_privacy.stats.looks.AUTO_SCHEDULE` that decides (each judged at its share of the
    error, :func:`~pytest_privacy.stats.looks.look_confidence`), its results saying how many references
    were trained and why the looks stopped. Before training more references it asks whether a later
    look could decide at all (:func:`_undecidable`: the audit's counts, or a named attack's score
    grid, which references do not change); when none can, the looks stop there and say why and what
    would decide. Stopping only drops looks, so the error spent is at most the full plan's."""
    if data.adaptive is None:
        return judge(data, confidence)
    looks = data.adaptive.looks()
    stuck = None
    for i, (m, share, audit) in enumerate(looks):
        results = judge(audit(), look_confidence(confidence, share))
        if _decided(results) or i == len(looks) - 1:
            break
        later = look_confidence(confidence, max(share for _, share, _ in looks[i + 1 :]))
        stuck = _undecidable(results, later, same_attack=same_attack)
        if stuck:
            break
    why = "decided" if _decided(results) else stuck or "still inconclusive at the most planned"
    seen = ", ".join(str(n) for n, _, _ in looks[: i + 1])
    note = (
        f"; auto references: {m} after looks at {seen} ({why}), this look at confidence "
        f"{look_confidence(confidence, share):.4g} ({share:.0%} of the error, spent over {len(looks)} planned looks)"
    )
    return [r.model_copy(update={"variant": r.variant + note}) for r in results]


def _undecidable(results: list[AttackResult], later: float, *, same_attack: bool) -> str | None:
    """Why no later look can decide ``results``' undecided TPR gates, or None. ``later`` is the
    confidence of the most lenient look still planned. Two reasons, each beyond what references change:

    - the counts: with ``n`` non-members not even zero false positives certify FPR <= fpr (FAIL is out
      of reach), and with ``m`` members not even zero members above a threshold bound the TPR by
      ``max_tpr`` (PASS is out of reach);
    - the score's grid, when the later looks run the same attack: its top score is shared by several
      points that already exceed the FPR (RMIA's share of Z population points; a gap attack's two values).
    """
    undecided = [r for r in results if r.verdict is Verdict.INCONCLUSIVE]
    if not undecided or any(r.gate != "tpr_at_fpr" for r in undecided):
        return None
    reasons = [_out_of_reach(r, later, same_attack=same_attack) for r in undecided]
    if any(reason is None for reason in reasons):
        return None
    return (
        f"more references cannot decide, so none were trained beyond this look: {reasons[0]}; what would: more "
        "audit points, a finer score (for RMIA, more population points: --privacy-population), another attack, "
        "or the recipe audit"
    )


def _out_of_reach(r: AttackResult, later: float, *, same_attack: bool) -> str | None:
    from .stats.intervals import nonmembers_needed

    if r.audit == "model":
        needed = nonmembers_needed(r.fpr, later)
        _, tpr_ceiling = clopper_pearson(0, r.n_members, later)
        if r.n_nonmembers < needed and tpr_ceiling > r.max_tpr:
            return (
                f"{r.n_nonmembers:,} non-members cannot certify FPR <= {r.fpr:g} (that needs {needed:,}), and "
                f"{r.n_members:,} members cannot bound TPR <= {r.max_tpr:g} (at best {tpr_ceiling:.4f})"
            )
    if same_attack and r.point_scores is not None and not np.isfinite(r.threshold):
        scores, member = r.point_scores.arrays()
        top = scores == scores.max()
        if top.sum() > 1 and (~member & top).sum() > r.fpr * (~member).sum():
            return f"{r.attack}'s scores are too coarse to reach FPR {r.fpr:g}: {r.reason.split(' (breaking')[0]}"
    return None


def _family(
    model: Any, data: MembershipData, attacks: list[str], fprs: list[float], max_tpr: float, confidence: float,
    attack_options: Mapping[str, Any] | None,
) -> list[AttackResult]:
    """Every (attack, fpr) of a family judged together, Holm over the family (see
    :func:`assert_tpr_at_fpr_below`); not yet recorded."""
    alpha, k = 1.0 - confidence, len(attacks) * len(fprs)
    members = []
    for attack in attacks:
        started = time.perf_counter()
        scores, member, variant, queries = _trials(model, data, attack, attack_options)
        p_value = pooled_fail_p_value if scores.ndim == 2 else fail_p_value
        for f in fprs:
            p = p_value(scores, member, fpr=f, max_tpr=max_tpr)
            members.append((attack, f, scores, member, variant, queries, started, p))
    rejected = holm([m[-1] for m in members], alpha)
    order = sorted(range(k), key=lambda i: members[i][-1])
    results = []
    for i, (attack, f, scores, member, variant, queries, started, _) in enumerate(members):
        # A rejected member is shown at the Holm level that rejected it (where its gate FAILs); the
        # others at the Bonferroni level (where none can FAIL, and a PASS holds for the family).
        level = alpha / (k - order.index(i)) if rejected[i] else alpha / k
        g = (pooled_gate if scores.ndim == 2 else gate)(scores, member, fpr=f, max_tpr=max_tpr, confidence=1.0 - level)
        described = f"{variant}; family of {k}, Holm"
        results.append(_attack_result(g, attack, described, data, queries, scores, started, is_member=member))
    return results


def assert_auc_below(
    model: Any,
    data: MembershipData,
    *,
    max_auc: float,
    attack: str | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Assert that ``attack``'s ROC AUC is at most ``max_auc`` (Hanley-McNeil interval).

    AUC measures average-case leakage; prefer :func:`assert_tpr_at_fpr_below` for a release
    gate, since attacks that matter are confident on a few points (Carlini et al. 2022).
    ``attack=None`` runs the default for the audit's references, as in :func:`assert_tpr_at_fpr_below`.
    """
    data = as_membership_data(data)
    policy = _policy(on_inconclusive)
    confidence = _confidence(confidence)
    check_max_auc(max_auc)
    if attack is not None:
        get_attack(attack)

    def judge(d: MembershipData, level: float) -> list[AttackResult]:
        started = time.perf_counter()
        name = _attack_for(attack, d)
        scores, variant, queries = attack_scores(model, d, name, attack_options=attack_options)
        g = auc_gate(scores, d.is_member, max_auc=max_auc, confidence=level)
        return [_attack_result(g, name, variant, d, queries, scores, started)]

    r = record_result(_requested(_adaptively(judge, data, confidence)[0], attack))
    return _enforce(r, policy, f"AUC must be <= {max_auc:g} (got {r.auc:.4f} [{r.auc_low:.4f}, {r.auc_high:.4f}])")


def assert_epsilon_below(
    model: Any,
    data: MembershipData,
    *,
    max_epsilon: float,
    attack: str | None = None,
    delta: float = 0.0,
    confidence: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Assert that the attack's empirical lower bound on epsilon is at most ``max_epsilon``.

    The bound (:func:`pytest_privacy.stats.epsilon.epsilon_lower_bound`) holds jointly over thresholds at
    ``confidence`` and is valid only for the randomized membership game (each audit point a member
    with probability 1/2, independently, as the plugin's target split is). Exceeding ``max_epsilon``
    proves that no (``max_epsilon``, ``delta``)-DP guarantee can hold: FAIL. It can never prove a
    guarantee, so otherwise the verdict is PASS with the bound reported ("no violation found").
    ``attack=None`` runs the default for the audit's references, as in :func:`assert_tpr_at_fpr_below`.
    """
    data = _fixed(as_membership_data(data))
    requested, attack = attack, _attack_for(attack, data)
    confidence = _confidence(confidence)
    check_max_epsilon(max_epsilon)
    check_delta(delta)
    started = time.perf_counter()
    scores, variant, queries = attack_scores(model, data, attack, attack_options=attack_options)
    g = epsilon_gate(scores, data.is_member, max_epsilon=max_epsilon, delta=delta, confidence=confidence)
    r = record_result(_requested(_attack_result(g, attack, variant, data, queries, scores, started), requested))
    return _enforce(r, _policy(None), f"epsilon must be <= {max_epsilon:g}")


def _accuracy(model: Any, data: MembershipData) -> float:
    """Accuracy on the audit's non-members: points the model never trained on."""
    from .attacks.label_only import (
        QueryCounter,  # batches and validates like every label query
    )

    labels = QueryCounter(label_oracle(model))(data.x[~data.is_member])
    return float((labels == data.y[~data.is_member]).mean())


def assert_no_more_vulnerable_than(
    model: Any,
    baseline: Baseline | Any,
    data: MembershipData,
    *,
    fpr: float,
    margin: float = 0.0,
    attack: str | None = None,
    confidence: float | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> ComparisonResult:
    """Assert that ``model`` leaks no more than ``baseline``: its TPR at ``fpr`` is not above the
    baseline's by more than ``margin`` beyond statistical noise.

    ``baseline`` is a :class:`~pytest_privacy.data.Baseline` (e.g. the ``mmd_baseline_model``
    fixture: its own references, judged on its ``points``) or a plain model scored with ``data``.
    Both are compared on the same audit points and members, a paired test
    (:func:`pytest_privacy.stats.comparisons.paired_tpr_comparison`: a stratified bootstrap that re-estimates
    both thresholds, whose false-alarm rate is checked by simulation in the tests). It fails
    only when ``model`` is proven more vulnerable; the message puts both models' TPR and accuracy
    side by side, since a baseline that leaks less by being useless is no yardstick.
    ``attack=None`` runs the default for ``data``'s references on both models, as in
    :func:`assert_tpr_at_fpr_below`.
    """
    data = _fixed(as_membership_data(data))
    requested, attack = attack, _attack_for(attack, data)
    confidence = _confidence(confidence)
    check_rate("fpr", fpr)
    check_margin(margin)
    if isinstance(baseline, Baseline):
        if baseline.points.max(initial=-1) >= len(data):
            raise ValueError(
                f"the baseline covers audit points up to index {int(baseline.points.max())} but data has "
                f"{len(data)}: compare against the membership data of the same data set."
            )
        data = data.subset(baseline.points)
        base_model, base_data, description = baseline.model, baseline.membership_data, baseline.description
        if not np.array_equal(base_data.is_member, data.is_member):
            raise ValueError("the baseline was trained on a different split than data says: train it on the same members.")
    else:
        base_model, base_data, description = baseline, data, type(baseline).__name__
    started = time.perf_counter()
    ours = attack_scores(model, data, attack, attack_options=attack_options)
    theirs = attack_scores(base_model, base_data, attack, attack_options=attack_options)
    seed = 0 if data.references is None or data.references.seed is None else data.references.seed
    c = paired_tpr_comparison(
        ours.scores, theirs.scores, data.is_member, fpr=fpr, margin=margin, confidence=confidence, seed=seed
    )
    refs, base_refs = data.references, base_data.references
    verdict = Verdict.FAIL if c.worse else Verdict.PASS
    test = f"paired bootstrap, share of resamples with difference <= margin: {c.p_value:.3g}"
    r = ComparisonResult(
        verdict=verdict,
        reason=("more vulnerable than the baseline beyond noise" if c.worse else "not proven more vulnerable") + f" ({test})",
        attack=attack, variant=ours.variant, fpr=float(fpr), margin=float(margin), confidence=float(confidence),
        tpr=c.tpr, tpr_baseline=c.tpr_baseline, tpr_diff=c.diff, diff_low=c.diff_low, diff_high=c.diff_high,
        p_value=c.p_value, accuracy=_accuracy(model, data), accuracy_baseline=_accuracy(base_model, base_data),
        n_members=c.n_members, n_nonmembers=c.n_nonmembers,
        n_references=0 if refs is None else refs.n_references,
        n_references_baseline=0 if base_refs is None else base_refs.n_references,
        seed=None if refs is None else refs.seed, baseline=description, seconds=time.perf_counter() - started,
        default_attack=requested is None, data_id=data.data_id,
    )
    r = record_result(r)
    if r.verdict is Verdict.FAIL:
        raise PrivacyLeakError(
            f"more vulnerable than the baseline: {attack} ({r.variant}) at FPR {fpr:g}\n"
            f"                 TPR      accuracy\n"
            f"  this model     {r.tpr:.4f}   {r.accuracy:.3f}\n"
            f"  baseline       {r.tpr_baseline:.4f}   {r.accuracy_baseline:.3f}   ({description})\n"
            f"  difference {r.tpr_diff:+.4f} [{confidence:.0%} CI {r.diff_low:+.4f}, {r.diff_high:+.4f}] > margin "
            f"{margin:g}; {test}\n"
            f"  audit: {r.n_members:,} members, {r.n_nonmembers:,} non-members, seed {r.seed}\n  {_HINT}"
        )
    return r


_DP_HINT = (
    "what commonly breaks a DP claim: the optimizer never made private (no noise, no clipping), noise "
    "scaled to the wrong batch size or multiplier, clipping disabled or applied to the batch instead of "
    "each example, shuffled batches accounted as Poisson sampling, or an accountant run with other "
    "settings than training"
)


def assert_dp_claim_holds(
    run: Any,
    *,
    epsilon: float | None = None,
    delta: float | None = None,
    mu: float | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
) -> DPAuditResult:
    """Audit a differential-privacy claim with one training run's canaries (``run``: a
    :class:`~pytest_privacy.audit.canaries.CanaryRun`, e.g. the ``dp_canary_run`` fixture): an
    ``(epsilon, delta)`` claim, by the one-run bound of Steinke, Nasr & Jagielski (2023), or a
    Gaussian-DP claim ``mu=`` (``delta`` then only says where its epsilon is shown, 1e-5 unless given),
    by the f-DP one-run test of Mahloujifar, Melis & Chaudhuri (2025) against its Gaussian curve
    (:mod:`pytest_privacy.stats.dp_claim` says why each).

    FAIL (``PrivacyLeakError``): the canaries prove more than the claim allows, at ``confidence``.
    PASS: they do not, with the audit's power (a PASS never proves the claim: a lower bound only finds
    violations). INCONCLUSIVE: even perfect guesses on these canaries could not refute the claim, or the
    canaries left no trace. The result also carries the Gaussian reading of the same canaries
    (``gdp_mu_low`` and the epsilon it means at ``delta``), valid for Gaussian mechanisms only.
    """
    from .stats.dp_claim import DPClaim, judge_dp_claim

    claim = DPClaim.of(epsilon=epsilon, delta=delta, mu=mu)
    if not (hasattr(run, "scores") and hasattr(run, "included")):
        raise TypeError(
            f"assert_dp_claim_holds audits a canary run (the dp_canary_run fixture, or "
            f"PrivacyTrainer.canary_run), got {type(run).__name__}."
        )
    policy = _policy(on_inconclusive)
    r = record_result(judge_dp_claim(run, claim, confidence=_confidence(confidence)))
    return _enforce(r, policy, f"the claim {claim.text()} must hold", describe=_describe_dp, hint=_DP_HINT)


def _describe_dp(r: DPAuditResult) -> str:
    accountant = f", the accountant's target epsilon {r.accountant_epsilon:g}" if r.accountant_epsilon else ""
    gdp = (
        f"; read as Gaussian DP: mu >= {r.gdp_mu_low:.3f}, epsilon >= {r.gdp_epsilon_low:.3f} at delta {r.delta:g}"
        if r.gdp_mu_low and r.mu_claim is None else ""
    )
    return (
        f"one-run audit ({r.variant}, {r.reading} bound): {dp_proven(r)} at {r.confidence:.0%} "
        f"({dp_power(r)}){accountant}{gdp}, {r.n_canaries} canaries, seed {r.seed}"
    )
