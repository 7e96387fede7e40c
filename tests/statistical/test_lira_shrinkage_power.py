"""At 4 references, shrunk variances beat both the fixed and the per-example variance on data whose
points differ in variance: seeded simulations of Gaussian logit-scale confidences."""

import math

import numpy as np
import pytest

from pytest_privacy.attacks.lira import lira_scores
from pytest_privacy.engine.seeds import balanced_keep
from pytest_privacy.stats.roc import tpr_at_fpr

N, M, SEEDS = 20_000, 4, 10
VARIANCES = ("fixed", "per_example", "shrunk")


def _tpr_at_1pct(seed: int, variant: str) -> dict[str, float]:
    """Point n: phi ~ N(mu_n, sigma_n^2) when OUT, N(mu_n + 3 sigma_n, (sigma_n / 2)^2) when IN,
    with mu_n ~ N(0, 3^2) and log sigma_n ~ N(0, 0.5^2): the per-point variances spread over a
    factor ~ e^{+-1} as the confidences of easy and hard points do, and members' confidences vary
    less between models than non-members' (as on the benchmark targets)."""
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(0, 3, N), np.exp(rng.normal(0, 0.5, N))
    keep = balanced_keep(M, N, seed)
    refs = mu + 3 * sigma * keep + np.where(keep, 0.5, 1.0) * sigma * rng.normal(size=(M, N))
    member = rng.random(N) < 0.5
    target = mu + 3 * sigma * member + np.where(member, 0.5, 1.0) * sigma * rng.normal(size=N)
    as_logits = lambda phi: np.stack([np.zeros_like(phi), phi], -1)
    return {
        v: tpr_at_fpr(
            lira_scores(as_logits(target), as_logits(refs), np.ones(N, int), keep, variant=variant, variance=v),
            member, 0.01,
        )
        for v in VARIANCES
    }


@pytest.mark.parametrize("variant", ["online", "offline"])
def test_shrinkage_has_the_highest_tpr_at_1pct_fpr_with_4_references(variant):
    runs = [_tpr_at_1pct(seed, variant) for seed in range(SEEDS)]
    for other in ("fixed", "per_example"):
        # Paired differences D_s = TPR_shrunk - TPR_other over S independent seeds (the same data
        # for both in each seed, so the shared noise cancels). Their mean has standard error
        # se = sd(D) / sqrt(S); under "no improvement" (E[D] <= 0), mean(D) / se follows at most a
        # Student t with S - 1 = 9 degrees of freedom, which exceeds 3 with probability 0.0075. So
        # requiring mean(D) > 3 se is a one-sided test at < 1%: a pass is evidence of a real gain,
        # not a lucky seed. (Measured: t ~ 15 against fixed online (TPR 0.55 vs 0.40), ~ 4 offline
        # (0.26 vs 0.24), > 30 against per-example, which is near 0 with 2 values per set.)
        diffs = np.array([r["shrunk"] - r[other] for r in runs])
        se = diffs.std(ddof=1) / math.sqrt(SEEDS)
        assert diffs.mean() > 3 * se, (variant, other, diffs.mean(), se)
