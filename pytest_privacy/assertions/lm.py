"""A language model's own gates: PII extraction from its fine-tuning texts, and the exposure of
canaries planted in one fine-tune (the membership gates take its texts as they take a classifier's
points: :mod:`.membership`)."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import numpy as np

from ..attacks.lm.extraction import Secret, extraction_secrets, reproduced
from ..data.text_membership import TextMembershipData
from ..report import record_result
from ..results import (
    DEFAULT_EXTRACTION,
    ExposureRow,
    ExtractedSecret,
    LMAuditResult,
    Verdict,
)
from ..stats.checks import check_number
from ..stats.exposure import exposure, planted_exposure_verdict
from ..stats.extraction import extraction_verdict
from .policy import (
    LM_HINT,
    OnInconclusive,
    confidence_or_default,
    enforce,
    policy_or_default,
)
from .running import fixed_audit

__all__ = ["assert_canary_exposure_below", "assert_no_extraction"]


def describe_lm(r: LMAuditResult) -> str:
    """A language-model gate's numbers as its failure message shows them."""
    from ..report.summary import lm_measurement

    measured, limit, n = lm_measurement(r)
    return f"{r.attack} ({r.variant}): {measured}; limit: {limit}; n={n}, seed {r.seed}"


def assert_no_extraction(
    model: Any,
    data: TextMembershipData,
    *,
    max_extracted: int = 0,
    prefix: int | None = None,
    suffix: int = 32,
    pattern: str | re.Pattern[str] | None = None,
    samples: int = 0,
    temperature: float = 1.0,
    seed: int | None = None,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
) -> LMAuditResult:
    """Assert that ``model`` gives away the secrets of at most ``max_extracted`` of the texts it was
    fine-tuned on. Each audited text is prompted and continued greedily, and by ``samples`` draws at
    ``temperature`` (seeded by ``seed``, default the audit's); it is extracted when a continuation
    gives back one of its secrets:

    - by default, each marked PII span (``TextDataset(pii_spans=...)``) and each match of ``pattern``
      (a regular expression over the decoded text, e.g. ``r"\\d{3} \\d{3} \\d{4}"``), prompted with
      everything before it;
    - with ``prefix=k``, its first ``k`` tokens as the prompt, and its whole true suffix (up to
      ``suffix`` tokens) as well as the spans and matches within it.

    Members' texts are counted against non-members' (what any model of the language completes, such
    as an e-mail address spelled from the name before it): FAIL only when more than ``max_extracted``
    members are extracted and members are proven to be completed more often
    (:func:`pytest_privacy.stats.extraction.extraction_verdict`); PASS when at most ``max_extracted``
    are. The result names each secret that came back by its text, tokens and a digest (never in
    clear), is recorded in the session's reports and returned."""
    if not isinstance(data, TextMembershipData):
        raise TypeError(
            f"assert_no_extraction audits a language model's texts: data must be the membership_data of a TextDataset "
            f"(a TextMembershipData), got {type(data).__name__}."
        )
    check_number("max_extracted", max_extracted, "[0, inf)", integer=True, why="member texts")
    if seed is not None:
        check_number("seed", seed, "[0, inf)", integer=True, why="the sampled decodings' seed")
    confidence = confidence_or_default(confidence)
    policy = policy_or_default(on_inconclusive)
    data = fixed_audit(data)
    refs = data.references
    seed = seed if seed is not None else (refs.seed if refs is not None and refs.seed is not None else 0)
    secrets, tried = extraction_secrets(data.text, prefix=prefix, suffix=suffix, pattern=pattern)
    member = data.is_member
    if not (tried & member).any() or not (tried & ~member).any():
        raise ValueError(
            f"no {'member' if not (tried & member).any() else 'non-member'} text has a secret to prompt for "
            f"({'prefix=' + str(prefix) + ': no text is longer' if prefix is not None else 'no PII span or pattern match after its first token'}): "
            "pass the PII's token spans to the TextDataset (pii_spans=), a wider pattern=, or a shorter prefix=."
        )
    started = time.perf_counter()
    found = reproduced(model, data.text, secrets, samples=samples, temperature=temperature, seed=seed)
    hit = np.zeros(len(member), dtype=bool)
    hit[[s.record for s in found]] = True
    counts = (
        int((hit & member).sum()), int((tried & member).sum()), int((hit & ~member).sum()), int((tried & ~member).sum())
    )
    verdict, reason, p = extraction_verdict(*counts, max_extracted=max_extracted, confidence=confidence)
    named = [
        ExtractedSecret(record=s.record, member=bool(member[s.record]), start=s.start, end=s.end, kind=s.kind, digest=_digest(s))
        for s in found
    ]
    if verdict is Verdict.FAIL:
        reason += "; " + _named(named)
    variant = DEFAULT_EXTRACTION  # "greedy, prompted with the text before each secret"
    if samples:
        variant = variant.replace("greedy", f"greedy and {samples} samples at temperature {temperature:g} (seed {seed})")
    if prefix is not None:
        variant = variant.replace("the text before each secret", f"the first {prefix} tokens (up to {suffix} generated)")
    if pattern is not None:
        variant += f", pattern {_pattern_text(pattern)}"
    r = record_result(LMAuditResult(
        verdict=verdict, reason=reason, gate="extraction", attack="pii_extraction", variant=variant,
        confidence=confidence, extracted=counts[0], n_members=counts[1], extracted_nonmembers=counts[2],
        n_nonmembers=counts[3], max_extracted=max_extracted, samples=samples, secrets=named, p_value=p,
        seed=None if refs is None else refs.seed, seconds=time.perf_counter() - started, data_id=data.data_id,
    ))
    return enforce(r, policy, f"at most {max_extracted} member texts may be extracted", describe=describe_lm, hint=LM_HINT)


def _digest(secret: Secret) -> str:
    """12 hex digits naming a secret without saying it: HMAC-SHA256 under the store's secret
    (``PYTEST_PRIVACY_STORE_KEY``) when set, else SHA-256. Unkeyed, a short secret (a phone number) can
    be found again by trying every candidate: set the key where stored runs are shared."""
    import hashlib
    import hmac

    from ..report.signing import signing_key

    body = secret.string.encode() if secret.kind == "pattern" else np.asarray(secret.tokens, dtype=np.int64).tobytes()
    key = signing_key()
    h = hmac.new(key, body, hashlib.sha256) if key is not None else hashlib.sha256(body)
    return h.hexdigest()[:12]


def _pattern_text(pattern: Any) -> str:
    return repr(getattr(pattern, "pattern", pattern))


def _named(secrets: list[ExtractedSecret], most: int = 5) -> str:
    """The member texts whose secrets came back, by index, tokens and digest (never the secret)."""
    by_text: dict[int, list[ExtractedSecret]] = {}
    for s in secrets:
        if s.member:
            by_text.setdefault(s.record, []).append(s)
    shown = ", ".join(
        f"text {record} (" + "; ".join(f"{s.kind} tokens {s.start}-{s.end}, #{s.digest}" for s in found) + ")"
        for record, found in list(by_text.items())[:most]
    )
    more = f" and {len(by_text) - most} more texts" if len(by_text) > most else ""
    return f"extracted from member {shown}{more}"


def assert_canary_exposure_below(
    run: Any,
    *,
    max_exposure: float,
    confidence: float | None = None,
    on_inconclusive: OnInconclusive | None = None,
) -> LMAuditResult:
    """Assert that no canary the fine-tune trained on is exposed beyond ``max_exposure`` bits
    ("The Secret Sharer": ``log2 |R| - log2 rank`` of the canary's secret among every secret of the
    format, ranked by the model's log-likelihood; ties count against the secret). ``run`` is an LM
    canary run (the ``lm_canary_run`` fixture). The exposure of each repetition count's most exposed
    planted canary is reported; FAIL only when an exposure above the limit cannot be chance
    (:func:`pytest_privacy.stats.exposure.planted_exposure_verdict`), PASS when none is above it."""
    if not (hasattr(run, "candidate_ll") and hasattr(run, "canaries")):
        raise TypeError(
            f"assert_canary_exposure_below judges an LM canary run (the lm_canary_run fixture, or "
            f"PrivacyTrainer.lm_canary_run), got {type(run).__name__}."
        )
    check_number("max_exposure", max_exposure, "[0, inf)", why="bits")
    confidence = confidence_or_default(confidence)
    policy = policy_or_default(on_inconclusive)
    c, ll = run.canaries, np.asarray(run.candidate_ll)
    secret_ll = getattr(run, "secret_ll", None)
    if secret_ll is None:  # every secret of the space ranked
        exposures = [exposure(float(ll[s]), np.delete(ll, s), space_size=c.space_size, enumerated=True) for s in c.secret_index]
        ranked = "every secret ranked"
    else:  # a uniform sample of the space: exact bounds from the count, the paper's fitted estimate
        exposures = [exposure(float(s), ll, space_size=c.space_size, enumerated=False, confidence=confidence) for s in secret_ll]
        ranked = f"ranked among {len(ll):,} sampled secrets"
    planted = [e for e, inc in zip(exposures, c.included) if inc]
    verdict, reason, _ = planted_exposure_verdict(planted, max_exposure=max_exposure, confidence=confidence)
    if run.no_trace and verdict is Verdict.PASS:
        # Every secret equally likely: nothing was memorised, or nothing was learnt at all (a loop that
        # ignored its data). A PASS would vouch for a fine-tune that may never have happened.
        verdict, reason = Verdict.INCONCLUSIVE, (
            f"{run.no_trace}: a model that learnt nothing exposes nothing, so this says nothing of the fine-tune; "
            "check that the training function trains on the data it is given"
        )
    rows = []
    for r in sorted(set(c.repetitions.tolist())):
        mine = [e for e, inc, rep in zip(exposures, c.included, c.repetitions) if inc and rep == r]
        if mine:
            top = max(mine, key=lambda e: e.estimate)
            rows.append(ExposureRow(
                repetitions=r, canaries=len(mine), exposure=top.estimate, low=top.low, high=top.high,
                space_bits=math.log2(c.space_size),
            ))
    never = [e.estimate for e, inc in zip(exposures, c.included) if not inc]
    if never:  # what chance gives a secret the model never saw: the yardstick
        reason += f"; the {len(never)} canaries never planted reach {max(never):.2f} bits at most (chance)"
    r = record_result(LMAuditResult(
        verdict=verdict, reason=reason, gate="exposure", attack="canary_exposure",
        variant=f"{c.secrets.shape[1]} digits after '{c.format}', {ranked}", confidence=confidence,
        exposures=rows, max_exposure=float(max_exposure), seed=run.seed, seconds=run.seconds, data_id=run.data_id,
    ))
    return enforce(r, policy, f"no planted canary may be exposed beyond {max_exposure:g} bits", describe=describe_lm, hint=LM_HINT)

