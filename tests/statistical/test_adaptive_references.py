"""``n_references="auto"``: the error of a verdict reached after up to five looks (4, 8, 16, 32, 64
references) stays within ``1 - confidence`` (the error spent over the planned looks in shares that sum
to 1, a weighted Bonferroni split), where judging every
look at the full level would not; and a clear case stops at the first look.

The oracle: an "attack" whose scores for each look are stored in the references' logits, so that the
real ``assert_tpr_at_fpr_below`` path (looks, levels, stopping, recording) runs. Non-members score
``N(0, 1)``; members ``N(d, 1)`` with ``d`` set so that the true TPR at FPR 1% equals the limit at
every look (the worst case for a FAIL). Looks share part of their noise (correlation ``RHO``), as
audits with 4 and 8 references of the same target do.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from pytest_privacy import MembershipData, References, assert_tpr_at_fpr_below
from pytest_privacy.assertions import PrivacyInconclusiveWarning, PrivacyLeakError
from pytest_privacy.attacks.registry import ATTACKS, Attack, register_attack
from pytest_privacy.report import recording
from pytest_privacy.stats.looks import AUTO_SCHEDULE, AdaptiveReferences

N = 900  # members and non-members each: digits' audit size
FPR, MAX_TPR, RHO = 0.01, 0.05, 0.5
SHIFT = stats.norm.ppf(1 - FPR) + stats.norm.ppf(MAX_TPR)  # TPR at FPR 1% is exactly MAX_TPR
SEEDS = 400


@pytest.fixture(scope="module", autouse=True)
def oracle_attack():
    def stored(logits, labels, refs, pop=None):
        return refs.logits[0, :, 0, 1], "scores of this look"

    register_attack(Attack("look_oracle", "baseline", True, "scores stored per look (a test oracle)", stored))
    yield
    del ATTACKS["look_oracle"]


def _audit(seed: int, shift: float) -> MembershipData:
    """An auto audit whose look with m references has its own scores (shared noise RHO)."""
    rng = np.random.default_rng(seed)
    member = np.r_[np.ones(N, bool), np.zeros(N, bool)]
    x = np.arange(2 * N, dtype=np.float32)[:, None]
    y = np.ones(2 * N, int)
    shared = rng.normal(size=2 * N)
    fresh = {m: rng.normal(size=2 * N) for m in AUTO_SCHEDULE}

    def look(m: int) -> MembershipData:
        scores = shift * member + np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * fresh[m]
        logits = np.zeros((m, 2 * N, 1, 2))
        logits[0, :, 0, 1] = scores
        keep = np.zeros((m, 2 * N), bool)
        keep[: m // 2] = True
        return MembershipData(x, y, member, References(logits, keep, seed=seed))

    return AdaptiveReferences(look).at(AUTO_SCHEDULE[0])


def _verdict(data: MembershipData, confidence: float = 0.95) -> tuple[str, int]:
    """The verdict and the references it stopped at."""
    # (an inner recording block keeps thousands of simulated verdicts out of the session's report)
    with warnings.catch_warnings(), recording():
        warnings.simplefilter("ignore", PrivacyInconclusiveWarning)
        try:
            r = assert_tpr_at_fpr_below(lambda xb: np.zeros((len(xb), 2)), data, fpr=FPR, max_tpr=MAX_TPR,
                                        attack="look_oracle", confidence=confidence, on_inconclusive="warn")
        except PrivacyLeakError:
            return "fail", -1
    return r.verdict.value, r.n_references


def test_a_model_at_the_limit_is_falsely_failed_at_most_1_minus_confidence_over_all_looks():
    fails = sum(_verdict(_audit(seed, SHIFT))[0] == "fail" for seed in range(SEEDS))
    # <= the 99.9% binomial tail of 5% of 400 (28); measured: 0 (all 400 looked to 64 and stayed
    # INCONCLUSIVE, as a model exactly at the limit should).
    assert fails <= stats.binom.ppf(0.999, SEEDS, 0.05)


def test_looking_five_times_at_the_full_level_multiplies_false_fails():
    # The same looks, each judged at 95% (what "auto" without the split would do): a FAIL at any look
    # counts. Measured: 8 of 400 against 2 of 400 for one look (the gate is conservative at one look,
    # so 5 looks stay under 5% here; Bonferroni guarantees it whatever the looks), 0 with the split.
    fails = 0
    for seed in range(SEEDS):
        data = _audit(seed, SHIFT)
        fails += any(_verdict(look(), 0.95)[0] == "fail"
                     for _, look in [(m, lambda m=m: _plain(data, m)) for m in AUTO_SCHEDULE])
    single = sum(_verdict(_plain(_audit(seed, SHIFT), 4))[0] == "fail" for seed in range(SEEDS))
    assert fails > single  # more looks at the full level: more false FAILs than one look


def _plain(data: MembershipData, m: int) -> MembershipData:
    """Look ``m`` of an auto audit as a fixed audit (no further looks)."""
    d = data.adaptive.at(m)
    return MembershipData(d.x, d.y, d.is_member, d.references)


def test_a_clear_leak_and_no_signal_stop_at_the_first_look():
    verdicts = [_verdict(_audit(seed, SHIFT + 1.5)) for seed in range(20)]
    assert all(v == "fail" for v, _ in verdicts)  # proven with 4 references
    safe = [_verdict(_audit(seed, 0.0)) for seed in range(20)]
    # No signal: safety proven, nearly always at the first look (measured: 19 of 20 at 4, one at 8).
    assert all(v == "pass" for v, _ in safe) and sum(m == 4 for _, m in safe) >= 15
    with recording():
        r = assert_tpr_at_fpr_below(lambda xb: np.zeros((len(xb), 2)), _audit(0, 0.0), fpr=FPR, max_tpr=MAX_TPR,
                                    attack="look_oracle")
    assert "auto references: 4 after looks at 4 (decided)" in r.variant
