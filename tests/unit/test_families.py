"""A family of attacks or FPR levels in one assertion: a leak is proven only after Holm's correction,
PASS needs every member, and a bad member is an error before any attack runs."""

import numpy as np
import pytest

from pytest_privacy import (
    MembershipData,
    PrivacyLeakError,
    References,
    assert_tpr_at_fpr_below,
    balanced_keep,
)
from pytest_privacy.report import recording

N, C, M = 400, 4, 8


def _memoriser(x, y):
    flat_train = x.reshape(len(x), -1)

    def logits(xb):
        flat = np.asarray(xb, dtype=np.float32).reshape(len(xb), -1)
        d2 = ((flat[:, None, :] - flat_train[None]) ** 2).sum(-1)
        out = np.zeros((len(flat), C))
        out[np.arange(len(flat)), y[d2.argmin(1)]] = 3.0 / (1.0 + d2.min(1))
        return out

    return logits


@pytest.fixture(scope="module")
def audit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(N, 10)).astype(np.float32), rng.integers(0, C, N)
    member = np.arange(N) % 2 == 0
    keep = balanced_keep(M, N, 0)
    refs = References(np.stack([_memoriser(x[k], y[k])(x) for k in keep]), keep)
    return _memoriser(x[member], y[member]), MembershipData(x, y, member, refs), x, y


def test_a_leaky_family_fails_naming_the_attacks_that_proved_it(audit):
    model, data, _, _ = audit
    with recording() as results, pytest.raises(PrivacyLeakError, match=r"family of 4, Holm"):
        assert_tpr_at_fpr_below(model, data, attack=["lira", "loss"], fpr=[0.05, 0.1], max_tpr=0.2)
    assert len(results) == 4 and all("family of 4, Holm" in r.variant for r in results)
    assert any(r.verdict.value == "fail" for r in results)


def test_a_safe_family_passes_only_when_every_member_passes(audit):
    _, data, _, _ = audit
    blind = lambda xb: np.asarray(xb)[:, :C]  # noqa: E731 - logits from the input alone: never trained
    results = assert_tpr_at_fpr_below(blind, data, attack=["loss"], fpr=[0.3, 0.5], max_tpr=0.9)
    assert [r.verdict.value for r in results] == ["pass", "pass"]


def test_a_bad_member_is_an_error_before_any_attack(audit):
    model, data, _, _ = audit
    calls = []

    def counting(xb):
        calls.append(len(xb))
        return model(xb)

    with pytest.raises(ValueError, match="unknown attack"):
        assert_tpr_at_fpr_below(counting, data, attack=["lira", "lirra"], fpr=[0.05], max_tpr=0.2)
    with pytest.raises(ValueError, match="max_tpr"):
        assert_tpr_at_fpr_below(counting, data, attack=["lira", "loss"], fpr=[0.05, 0.5], max_tpr=0.2)
    assert calls == []
