"""A random forest of fully grown trees memorises its training tumours: LiRA proves it at 5% FPR.

Random forests take 31-bit seeds (``random_state=seed``), which every training function is handed.
"""

import pytest

from pytest_privacy import PrivacyLeakError, assert_tpr_at_fpr_below


@pytest.mark.lira
@pytest.mark.xfail(strict=True, raises=PrivacyLeakError, reason="fully grown trees memorise")
def test_random_forest_leaks(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.05, max_tpr=0.1)
