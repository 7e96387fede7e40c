"""A full fine-tune that memorises its 200 tickets: every gate a team would write fails, shown as strict
xfails (a gate that stopped failing would fail the suite)."""

import pytest

from pytest_privacy import (
    PrivacyLeakError,
    assert_canary_exposure_below,
    assert_no_extraction,
    assert_tpr_at_fpr_below,
)

leaks = pytest.mark.xfail(raises=PrivacyLeakError, strict=True, reason="a memorising fine-tune leaks")
pytestmark = pytest.mark.privacy(n_references=4)  # (as the light fine-tune's: Min-K% needs none)


@leaks
def test_memorising_finetune_leaks_membership(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.2)


@leaks
def test_memorising_finetune_exposes_canaries(lm_canary_run):
    assert_canary_exposure_below(lm_canary_run, max_exposure=10.0)


@leaks
def test_memorising_finetune_completes_pii(target_model, membership_data):
    # Greedy decoding gives back 19 of 200 members' PII against 0 of 200 non-members' (8 seeded samples at
    # temperature 0.7 as well: 37 against 2, at five times the cost).
    assert_no_extraction(target_model, membership_data, max_extracted=0)
