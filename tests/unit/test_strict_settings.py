"""Settings refuse unknown fields with a did-you-mean: by spelling, and by the names other libraries
give the same setting (``field_synonyms``), which no spelling distance reaches."""

import difflib

import pytest

from pytest_privacy import TrainingRecipe
from pytest_privacy.config import PrivacyConfig
from pytest_privacy.engine.defenses import DPSGD, MMDMixup


@pytest.mark.parametrize("settings", [TrainingRecipe, DPSGD, MMDMixup, PrivacyConfig], ids=lambda c: c.__name__)
def test_every_synonym_names_a_real_field_shadows_none_and_is_needed(settings):
    # A renamed field must not leave a did-you-mean pointing at nothing, a synonym that is itself a
    # field would never be reported (it is accepted), and one that spelling finds is dead weight.
    fields = list(settings.model_fields)
    assert set(settings.field_synonyms.values()) <= set(fields)
    assert not set(settings.field_synonyms) & set(fields)
    for written, meant in settings.field_synonyms.items():
        assert difflib.get_close_matches(written, fields, n=1) != [meant], written


@pytest.mark.parametrize(
    "make,written,meant",
    [
        (TrainingRecipe, "learning_rate", "lr"),
        (TrainingRecipe, "num_train_epochs", "epochs"),
        (TrainingRecipe, "max_grad_norm", "grad_clip"),
        (DPSGD, "max_grad_norm", "clip"),  # opacus's names
        (DPSGD, "target_delta", "delta"),
    ],
)
def test_another_librarys_name_says_which_field_is_meant(make, written, meant):
    with pytest.raises(ValueError, match=f"unknown field '{written}'. Did you mean '{meant}'\\?"):
        make(**{written: 1.0})


def test_a_name_without_a_synonym_falls_back_to_spelling():
    with pytest.raises(ValueError, match="unknown field 'epsilonn'. Did you mean 'epsilon'\\?"):
        DPSGD(epsilonn=1.0)
