"""Every LM attack on a known answer: a fine-tune that learnt nothing about which texts it saw (its
per-token log-likelihoods do not depend on membership) while its 4 reference fine-tunes memorise
theirs. Its true TPR at any FPR equals the FPR, so the gate "TPR <= 0.11 at FPR 0.1" holds and a FAIL
is a false alarm: over 200 seeds of synthetic statistics each attack's gate must FAIL at most
``1 - confidence`` of the time (5%), within a 99.9% binomial allowance."""

import numpy as np
import pytest
from scipy import stats

from pytest_privacy.attacks.lm.scores import (
    lm_lira,
    lm_loss,
    lm_rmia_ratio,
    min_k,
    min_k_plus_plus,
)
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.results import Verdict
from pytest_privacy.stats.gates import gate

N, T, M, SEEDS = 400, 24, 4, 200
FPR, MAX_TPR, CONFIDENCE = 0.1, 0.11, 0.95  # the limit just above chance: the edge of a false FAIL


def _null_run(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, T + 1, N)
    mask = np.arange(T)[None, :] < lengths[:, None]
    difficulty = rng.normal(-3, 1, (N, 1))  # per-text, as real texts differ
    token = rng.normal(0, 1, (N, T))  # per-token: rare names and numbers
    lp = np.where(mask, np.minimum(difficulty + token + rng.normal(0, 0.5, (N, T)), 0), 0)
    lp[:, 0] = 0
    member = rng.random(N) < 0.5
    keep = balanced_keep(M, N, seed)
    refs = np.where(mask, np.minimum(difficulty + token + rng.normal(0, 0.5, (M, N, T)) + 0.8 * keep[:, :, None], 0), 0)
    refs[:, :, 0] = 0
    mu, sigma = np.where(mask, -2.5, 0), np.where(mask, 1.0, 0)  # the next-token spread, membership-free
    return {
        "member": member,
        "lm_loss": lm_loss(lp, mask), "min_k": min_k(lp, mask), "min_k_plus_plus": min_k_plus_plus(lp, mu, sigma, mask),
        "lm_lira": lm_lira(lp, refs, keep, mask), "lm_lira_offline": lm_lira(lp, refs, keep, mask, variant="offline"),
        "lm_rmia_ratio": lm_rmia_ratio(lp, refs, keep, mask),
    }


@pytest.mark.slow
def test_no_lm_attack_fails_a_fine_tune_that_learnt_nothing_beyond_the_gates_error_rate():
    attacks = ["lm_loss", "min_k", "min_k_plus_plus", "lm_lira", "lm_lira_offline", "lm_rmia_ratio"]
    fails = dict.fromkeys(attacks, 0)
    for seed in range(SEEDS):
        run = _null_run(seed)
        for attack in attacks:
            r = gate(run[attack], run["member"], fpr=FPR, max_tpr=MAX_TPR, confidence=CONFIDENCE)
            fails[attack] += r.verdict is Verdict.FAIL
    allowed = stats.binom.ppf(0.999, SEEDS, 1 - CONFIDENCE)  # 5% of 200 is 10; 99.9% of runs stay <= this
    assert all(f <= allowed for f in fails.values()), (fails, allowed)
