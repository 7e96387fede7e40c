"""A BatchNorm ResNet trained with the LiRA paper's recipe shape (SGD + Nesterov momentum, a short
linear warm-up then cosine decay, weight decay on weights only, an exponential moving average of
the weights for prediction, reflect-pad-4 crops and flips), small enough for a CI runner: ResNet-8
of width 8 on 1,600 generated 32x32x3 shape images."""

import pytest

from pytest_privacy import TrainingRecipe, load_example_dataset


@pytest.fixture(scope="session")
def privacy_dataset():
    """1,600 images of 10 shape classes (``shapes32``), generated locally."""
    return load_example_dataset("shapes32", n=1600)


@pytest.fixture(scope="session")
def privacy_recipe():
    """The LiRA paper's CIFAR recipe, scaled down (its EMA decay is 0.999 over ~78k steps; 0.9 suits
    these ~190 steps: an average over more steps than the run has would keep the untrained start)."""
    return TrainingRecipe(
        model="resnet", depth=8, width=8, batch_size=64, epochs=15,
        optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, schedule="cosine", warmup_epochs=1,
        weight_decay=5e-4, weight_decay_on="weights", ema=0.9, augmentations=("crop", "flip"),
    )
