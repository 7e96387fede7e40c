"""The release recipe against label-only attacks and against the MMD+mixup-defended baseline
(heavier than the quick start: the baseline trains its own 17 defended models)."""

import pytest

from pytest_privacy import assert_no_more_vulnerable_than, assert_tpr_at_fpr_below

LABEL_ONLY = ["label_only_gap", "label_only_augmentation", "label_only_noise", "label_only_boundary"]


@pytest.mark.label_only
@pytest.mark.parametrize("attack", LABEL_ONLY)
def test_labels_alone_do_not_leak(target_model, membership_data, attack):
    """If the model served only labels, would membership still show?"""
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=1e-2, max_tpr=0.05, attack=attack)


@pytest.mark.mmd_baseline
def test_no_more_vulnerable_than_the_mmd_defense(target_model, mmd_baseline_model, membership_data):
    """The release leaks no more than the same recipe trained with the MMD+mixup defense."""
    assert_no_more_vulnerable_than(target_model, mmd_baseline_model, membership_data, fpr=1e-2)
