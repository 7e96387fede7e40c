"""Fine-tuned language models through an LMRecipe: a tiny GPT-2 (transformers, built from a config) pretrained
on public generated tickets once and cached by the model store (``example_base``: seeded, so the fine-tunes'
cache keys hold) and saved to a folder, which every fine-tune loads with ``from_pretrained``; the private
tickets are audited. Each subfolder fine-tunes it its own way."""

import numpy as np
import pytest

from pytest_privacy import load_example_dataset

transformers = pytest.importorskip("transformers", reason="the language-model examples need the [lm] extra")

TICKETS = load_example_dataset("tickets", n=800, seed=11)  # the first 400 are public, the rest private
WIDTH, LAYERS, PRETRAIN_EPOCHS = 32, 2, 4


@pytest.fixture(scope="session")
def privacy_dataset():
    return TICKETS.subset(np.arange(400, 800))


@pytest.fixture(scope="session")
def base_folder(tmp_path_factory, privacy_trainer):
    """The pretrained base, saved with save_pretrained: pretrained once (a few seconds, seeded), then read
    from the model cache."""
    from pytest_privacy.engine.example_base import example_base

    return example_base(TICKETS.subset(np.arange(400)), folder=tmp_path_factory.mktemp("lm-base"),
                        store=privacy_trainer.store, width=WIDTH, layers=LAYERS, epochs=PRETRAIN_EPOCHS)


@pytest.fixture(scope="session")
def privacy_base_model(base_folder):
    """What the fine-tunes start from (the ref_base attack reads it)."""
    return transformers.GPT2LMHeadModel.from_pretrained(base_folder).eval()
