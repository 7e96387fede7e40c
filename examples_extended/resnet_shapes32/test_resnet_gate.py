"""Gate a BatchNorm ResNet trained with crops, flips and a cosine schedule. With 4 references the
helpers' default attack is RMIA online's ratio (``rmia_ratio``, stronger than LiRA there:
``benchmarks/results/rmia_shrinkage.md``); it queries the target and its references on the same 10
views (the original and 2-pixel crops, all flipped), as LiRA does."""

import pytest

from pytest_privacy import assert_auc_below, assert_tpr_at_fpr_below


@pytest.mark.rmia
@pytest.mark.privacy(n_references=4)
def test_resnet_release_gate(target_model, membership_data):
    assert membership_data.references.augmentations == ("crop", "flip")
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.25)


@pytest.mark.rmia
@pytest.mark.privacy(n_references=4)
def test_resnet_average_case_leakage(target_model, membership_data):
    assert_auc_below(target_model, membership_data, max_auc=0.7)
