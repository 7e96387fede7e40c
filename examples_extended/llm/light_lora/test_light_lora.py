"""A light LoRA fine-tune of the same base on the same tickets: the same three gates pass."""

import pytest

from pytest_privacy import (
    assert_canary_exposure_below,
    assert_no_extraction,
    assert_tpr_at_fpr_below,
)

# 4 reference fine-tunes, trained as one program: the default LM attack (Min-K%) needs none, the references
# are here for the attacks that do (privacy_attack, lm_lira, lm_rmia_ratio) and to keep the example quick.
pytestmark = pytest.mark.privacy(n_references=4)


def test_light_lora_does_not_leak_membership(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.2)


def test_light_lora_exposes_no_canary(lm_canary_run):
    assert_canary_exposure_below(lm_canary_run, max_exposure=10.0)


def test_light_lora_completes_no_pii(target_model, membership_data):
    assert_no_extraction(target_model, membership_data, max_extracted=0)
