"""Result records: what a gate decided and what an attack measured (pydantic, JSON-serialisable)."""

from __future__ import annotations

import base64
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np


class Verdict(str, Enum):
    """Outcome of a privacy gate."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    MEASURED = "measured"  # ``measure_attack``: numbers recorded with no limit, never a verdict


class GateResult(BaseModel):
    """Decision of a gate (:func:`pytest_privacy.stats.gates.gate`, ``auc_gate``, ``epsilon_gate``) and
    the evidence behind it.

    For a TPR-at-FPR gate (``gate="tpr_at_fpr"``):

    ``tpr``, ``tpr_low``, ``tpr_high``, ``fpr_achieved``, ``fpr_high`` and ``threshold`` describe the
    threshold that proves the verdict (for FAIL the strongest proof of a leak, for PASS the tightest
    proof of safety; there the TPR fields count the members scoring strictly above it) or, when
    INCONCLUSIVE, the empirical operating point at ``fpr``.
    ``tpr_at_fpr`` is always the plain point estimate at the requested ``fpr``.
    An AUC gate decides on ``auc_low``/``auc_high`` (at ``confidence``) against ``max_auc``, an epsilon
    gate on ``epsilon_low`` against ``max_epsilon``; their TPR fields describe the ROC at ``fpr``
    (1%) for the record, and ``max_tpr`` is None.
    """

    # threshold is +inf when no finite threshold reaches the FPR (an INCONCLUSIVE gate at a tiny
    # fpr): JSON then carries Infinity, which Python's json and pydantic read back, instead of null.
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    verdict: Verdict
    reason: str
    gate: Literal["tpr_at_fpr", "auc", "epsilon", "measure"] = "tpr_at_fpr"
    fpr: float
    max_tpr: float | None  # None for AUC and epsilon gates, whose TPR fields are the ROC at ``fpr``
    max_auc: float | None = None
    max_epsilon: float | None = None
    epsilon_low: float | None = None
    confidence: float
    tpr: float
    tpr_low: float
    tpr_high: float
    fpr_achieved: float
    fpr_low: float
    fpr_high: float
    threshold: float
    tpr_at_fpr: float
    n_members: int
    n_nonmembers: int
    auc: float
    auc_low: float
    auc_high: float


class VulnerablePoint(BaseModel):
    """An audit point the attack ranks as likely member: where to look for duplicates and mislabels."""

    index: int
    label: int
    score: float
    member: bool
    key: str | None = None  # a content hash of the record (its input and label): never the data itself
    # A PNG data URI of an image record, for the HTML report only: dropped from JSON reports and stored runs.
    thumbnail: str | None = None


class PointScores(BaseModel):
    """Every audit point's score and membership, in audit order, so that a later run that audited the
    same points (same ``audit_id``) is compared with this one pointwise (a paired comparison), not by
    intervals alone. Scores and membership flags only: never the records themselves."""

    audit_id: str  # a hash of the audit points (inputs and labels, in order) and of their membership
    scores: str  # base64 of little-endian float64 (float32 would overflow some attacks' scores and create ties)
    members: str  # base64 of the membership flags, bit-packed

    @classmethod
    def of(cls, audit_id: str, scores: np.ndarray, is_member: np.ndarray) -> PointScores:
        """Pack ``scores`` and ``is_member`` (1-D, aligned) under ``audit_id``."""
        import numpy as np

        return cls(
            audit_id=audit_id,
            scores=base64.b64encode(np.asarray(scores, dtype="<f8").tobytes()).decode(),
            members=base64.b64encode(np.packbits(np.asarray(is_member, dtype=bool)).tobytes()).decode(),
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scores float64 [N], is_member bool [N])``."""
        import numpy as np

        scores = np.frombuffer(base64.b64decode(self.scores), dtype="<f8").copy()
        bits = np.frombuffer(base64.b64decode(self.members), dtype=np.uint8)
        return scores, np.unpackbits(bits, count=scores.size).astype(bool)


class GaussianFit(BaseModel):
    """LiRA's Gaussian-fit check of one audit (:func:`pytest_privacy.stats.gaussian_fit.gaussian_fit`):
    its p-value over ``n_points`` points, whether it rejected the Gaussian model, and the audit points
    that violate it most (the first ``worst_significant`` of them significant after Holm)."""

    p_value: float
    rejected: bool
    n_points: int
    worst: list[int] = []
    worst_significant: int = 0
    n_degenerate: int = 0  # points left out: references that agree exactly, no spread to check


class AttackResult(GateResult):
    """A gate's result together with the attack that produced the scores.

    ``epsilon_low`` is :func:`~pytest_privacy.stats.epsilon.epsilon_lower_bound` at delta = 0, valid only
    for the randomized membership game; ``roc_*`` is the ROC curve thinned for plotting, with
    Clopper-Pearson bounds of the TPR; ``most_vulnerable`` the top-scored audit points.
    """

    kind: Literal["attack"] = "attack"
    attack: str
    # The test named no attack: ``attack`` is the default the audit's references chose. The gate is
    # identified across runs by the request ("default"), not by the attack that happened to decide.
    default_attack: bool = False
    variant: str
    queries: int | None = None  # examples a label-only attack sent to the model
    seconds: float | None = None
    most_vulnerable: list[VulnerablePoint] = []
    point_scores: PointScores | None = None  # for paired release-to-release comparisons
    roc_fpr: list[float] = []
    roc_tpr: list[float] = []
    roc_tpr_low: list[float] = []
    roc_tpr_high: list[float] = []
    n_references: int
    seed: int | None
    test_id: str | None = None
    profile: str | None = None  # the budget profile of the test that recorded it (smoke, ci, full)
    data_id: str | None = None  # the audited data set's identity (MembershipData.data_id): runs on other data do not compare
    # "recipe": every one of ``n_models`` models was the target in turn and their trials were pooled
    # (``audit="recipe"``); the member/non-member counts are then trials, not points.
    audit: Literal["model", "recipe"] = "model"
    n_models: int = 1
    gaussian_fit: GaussianFit | None = None  # LiRA attacks: does the Gaussian model of its references fit?


class ComparisonResult(BaseModel):
    """A release model against a baseline on the same audit points (see
    :func:`pytest_privacy.stats.comparisons.paired_tpr_comparison`)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    kind: Literal["comparison"] = "comparison"
    verdict: Verdict
    reason: str
    attack: str
    default_attack: bool = False  # the test named no attack (see AttackResult.default_attack)
    variant: str
    fpr: float
    margin: float
    confidence: float
    tpr: float
    tpr_baseline: float
    tpr_diff: float
    diff_low: float
    diff_high: float
    p_value: float
    accuracy: float
    accuracy_baseline: float
    n_members: int
    n_nonmembers: int
    n_references: int
    n_references_baseline: int
    seed: int | None
    baseline: str
    test_id: str | None = None
    profile: str | None = None  # the budget profile of the test that recorded it (smoke, ci, full)
    seconds: float | None = None
    data_id: str | None = None  # see AttackResult.data_id


class DPAuditResult(BaseModel):
    """A one-run audit of a differential-privacy claim (``assert_dp_claim_holds``): canaries
    trained in with probability 1/2, the epsilon lower bound their scores prove, and the claim.

    FAIL: the lower bound exceeds the claimed epsilon (the claim is false, at ``confidence``).
    PASS: it does not (a PASS never proves the claim true: it is a lower bound); ``epsilon_detectable``
    says how much power it had: the smallest true epsilon at which this audit refutes the claim at
    least half the time with best-case canaries (:func:`pytest_privacy.stats.one_run_power.detectable_epsilon`).
    ``max_detectable`` is what perfect guesses would prove. INCONCLUSIVE: ``max_detectable`` is at most
    the claim (``epsilon_detectable`` is infinite), or the canaries left no trace, so
    no outcome of this audit could have caught a false claim.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    kind: Literal["dp_audit"] = "dp_audit"
    verdict: Verdict
    reason: str
    attack: str = "one_run_canaries"
    variant: str
    epsilon_claim: float  # for a mu claim: the epsilon mu means at ``delta``
    delta: float
    mu_claim: float | None = None  # a Gaussian-DP claim's mu (None: an (epsilon, delta) claim)
    reading: str = "Steinke-Nasr-Jagielski"  # the one-run bound that decided (older results: this one)
    confidence: float
    epsilon_low: float
    max_detectable: float
    epsilon_detectable: float | None = None  # the audit's power: see above (inf: it cannot refute the claim)
    n_canaries: int
    n_guesses: int
    n_correct: int
    accountant_epsilon: float | None = None  # a DP-SGD recipe's own accountant target
    gdp_mu_low: float | None = None  # the Gaussian-DP reading: mu proven, for a Gaussian mechanism
    gdp_epsilon_low: float | None = None  # ... and the epsilon that mu means at ``delta``
    seed: int | None = None
    seconds: float | None = None  # training and scoring: one run
    test_id: str | None = None
    profile: str | None = None
    data_id: str | None = None  # the data set the canaries were added to (see AttackResult.data_id)


class ExposureRow(BaseModel):
    """The exposure of the canaries planted ``repetitions`` times each: the largest among them (the
    gate's measure), with its bounds, and how many of them the fine-tune trained on."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    repetitions: int
    canaries: int  # canaries of this repetition count the fine-tune trained on
    exposure: float  # the largest estimate among them, in bits
    low: float  # its lower bound at the result's confidence
    high: float  # its upper bound
    space_bits: float  # log2 |R|: the most a canary can be exposed


#: the extraction gate's default decoding, as its ``variant`` says it: any other is another gate
DEFAULT_EXTRACTION = "greedy, prompted with the text before each secret"


class ExtractedSecret(BaseModel):
    """One secret a decoding gave back: the audited text it came from (``record``, its index in the
    audit), whether that text was a member, its tokens ``[start, end)``, what it was (``kind``: a marked
    PII span, a ``pattern`` match, or the text's whole ``suffix``) and a ``digest`` naming it without
    saying it (never the secret itself: stored runs and reports are shared)."""

    model_config = ConfigDict(frozen=True)

    record: int
    member: bool
    start: int
    end: int
    kind: Literal["pii", "pattern", "suffix"]
    digest: str


class LMAuditResult(BaseModel):
    """A language model's extraction or canary-exposure gate.

    ``gate="extraction"``: ``extracted`` of ``n_members`` member texts prompted had a secret (a marked
    PII span, a ``pattern`` match, or their whole suffix) reproduced by greedy decoding or one of
    ``samples`` seeded draws, against ``extracted_nonmembers`` of ``n_nonmembers`` non-member texts
    (what any model of the language completes); ``secrets`` names what came back (hashed);
    ``p_value`` is Fisher's exact one-sided test that members are completed more often.
    FAIL: more than ``max_extracted`` members extracted and the excess over non-members proven at
    ``confidence``; PASS: at most ``max_extracted`` (an exact count for greedy decoding); else
    INCONCLUSIVE. ``gate="exposure"``: the planted canaries' exposure in bits per repetition count
    (``exposures``); FAIL when a lower bound exceeds ``max_exposure``, PASS when every upper bound is at
    most it, else INCONCLUSIVE.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    kind: Literal["lm_audit"] = "lm_audit"
    verdict: Verdict
    reason: str
    gate: Literal["extraction", "exposure"]
    attack: str
    variant: str
    confidence: float
    extracted: int | None = None
    n_members: int | None = None
    extracted_nonmembers: int | None = None
    n_nonmembers: int | None = None
    max_extracted: int | None = None
    samples: int | None = None  # sampled decodings per prompt beside the greedy one
    secrets: list[ExtractedSecret] = []
    p_value: float | None = None
    exposures: list[ExposureRow] = []
    max_exposure: float | None = None
    seed: int | None = None
    seconds: float | None = None
    test_id: str | None = None
    profile: str | None = None
    data_id: str | None = None


SCHEMA_VERSION = 1


AnyResult = AttackResult | ComparisonResult | DPAuditResult | LMAuditResult  # what a gate records
Result = Annotated[AnyResult, Field(discriminator="kind")]


class GateChange(BaseModel):
    """One gate against the stored run it was compared with (``--privacy-compare``).

    ``status``: ``regressed`` (a criterion was exceeded or the verdict got worse), ``improved``,
    ``unchanged``, ``new`` (no such gate before), ``gone`` (no result now), ``ambiguous`` (several
    results of one run share the gate's identity, so which to pair is not known) or ``not comparable``
    (the two runs audited different data). ``gate`` is the gate's identity
    (:func:`~pytest_privacy.report.compare.gate_key`); ``decided_by`` names the attacks that decided
    a default gate when they differ between the runs (``rmia_ratio -> lira``). ``rise_low`` is the
    one-sided lower confidence bound of ``new - old`` when the rise was judged by significance;
    ``paired`` says it came from a paired comparison on the same audit points (``n_paired`` of them).
    """

    status: Literal["regressed", "improved", "unchanged", "new", "gone", "ambiguous", "not comparable"]
    test_id: str
    attack: str
    gate: str
    decided_by: str | None = None
    measure: Literal["tpr", "auc", "eps", "extracted", "exposure"] | None = None
    old: float | None = None
    new: float | None = None
    delta: float | None = None
    rise_low: float | None = None
    paired: bool = False
    n_paired: int | None = None
    old_verdict: Verdict | None = None
    new_verdict: Verdict | None = None
    newly_vulnerable: list[str] = []  # content hashes of records newly among the most vulnerable


class ReleaseComparison(BaseModel):
    """This session against a stored run: one :class:`GateChange` per gate, and whether the
    comparison failed the session (``--privacy-compare-fail``)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    against: str  # the stored run's name or number as asked for
    against_run: str | None = None  # ``number:name`` of the run compared with, and why it was the one
    against_why: str | None = None
    against_created: str | None = None
    against_commit: str | None = None
    criteria: str | None = None  # --privacy-compare-fail, or None when only comparing
    confidence: float
    failed: bool
    changes: list[GateChange]
    notes: list[str] = []


# What JSON reports and stored runs leave out of a result: the records' images (the HTML report shows them).
NOT_STORED: dict[str, Any] = {"results": {"__all__": {"most_vulnerable": {"__all__": {"thumbnail"}}}}}


class SessionReport(BaseModel):
    """What ``--privacy-report`` writes: every result of a run and the context to reproduce it.
    ``outcome`` is the session's (its exit status: failed tests, errors, a regression against a
    stored run): a stored run that failed is never the default baseline of a later comparison."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    schema_version: int = SCHEMA_VERSION
    created: str
    pytest_privacy: str
    torch: str | None
    python: str
    platform: str
    commit: str | None = None  # the git commit the session ran at, when in a repository
    config: dict[str, Any]
    models_trained: int = 0
    models_loaded: int = 0
    seconds_training: float = 0.0
    cache_keys: list[str] = []  # what the session's model cache keys cover, one line per source
    results: list[Result]
    note: str | None = None  # says why ``results`` is empty, when it is
    comparison: ReleaseComparison | None = None  # against a stored run, when --privacy-compare asked
    outcome: Literal["passed", "failed"] | None = None  # the session's, when known (stored runs)

