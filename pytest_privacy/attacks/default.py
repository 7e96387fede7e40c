"""Which attack a helper runs when the test names none: the strongest measured for the references
the audit has.

``benchmarks/bench_rmia.py`` measured LiRA (fixed, per-example and shrunk variances) against RMIA at 2,
4, 8 and 16 references on digits, mnist1d and shapes32 (``benchmarks/results/rmia_shrinkage.md``).
At 2 references RMIA online beat every LiRA variant on all three targets (TPR at 1% FPR 0.042 /
0.236 / 0.033 against LiRA's 0.029 / 0.106 / 0.025), and at 4 no LiRA variant matched it on all
three; from 8 references LiRA is the attack the design and the LiRA paper gate on. RMIA's score
ranks exactly as its ratio ``p(x|theta) / p(x)`` (``rmia_ratio``), which needs no population, so
the few-reference default holds no data out of the audit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data import MembershipData

__all__ = [
    "FEW_REFERENCES", "FEW_REFERENCES_ATTACK", "MANY_REFERENCES_ATTACK", "TEXT_ATTACK", "TEXT_ATTACK_WITHOUT_REFERENCES",
    "default_attack",
]

FEW_REFERENCES = 4  # up to this many references the default is FEW_REFERENCES_ATTACK
FEW_REFERENCES_ATTACK = "rmia_ratio"
MANY_REFERENCES_ATTACK = "lira"
# A language model's texts: Min-K% Prob, with or without references. benchmarks/bench_lm_attacks.py
# measured every lm attack on the example (a GRU fully fine-tuned on 200 of 400 tickets, 3 seeds,
# benchmarks/results/lm_attacks_*.json): Min-K% had the highest median TPR at FPR 1% at 2, 4, 8 and 16
# references, after 1 epoch (0.50; Min-K%++ 0.37, LiRA 0.02-0.26, offline LiRA 0.00-0.30) and after 4
# (0.99; LiRA 0.98 only at 16): the membership signal sits in a text's rarest tokens, which a mean
# log-likelihood (LiRA's statistic) dilutes.
TEXT_ATTACK = "min_k"
TEXT_ATTACK_WITHOUT_REFERENCES = "min_k"


def default_attack(data: MembershipData) -> str:
    """The attack a helper runs on ``data`` when the test names none: ``rmia_ratio`` (RMIA online's
    ratio) with at most :data:`FEW_REFERENCES` references, ``lira`` with more (or with none, whose
    error then says that LiRA needs references); on a language model's texts :data:`TEXT_ATTACK`, or
    :data:`TEXT_ATTACK_WITHOUT_REFERENCES` without references."""
    refs = data.references
    if getattr(data, "text", None) is not None:  # a language model's texts
        return TEXT_ATTACK if refs is not None else TEXT_ATTACK_WITHOUT_REFERENCES
    if refs is not None and refs.logits.shape[0] <= FEW_REFERENCES:
        return FEW_REFERENCES_ATTACK
    return MANY_REFERENCES_ATTACK
