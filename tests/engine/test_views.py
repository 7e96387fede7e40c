"""Training views (augmentations) drawn per model, and the query set LiRA uses: each random view
equals the numpy reference of its kind, a model's views come from its own seed (it equals itself
trained alone), and the query set holds the views LiRA compares."""

import numpy as np
import pytest
import torch

from pytest_privacy import TrainingRecipe, balanced_keep, make_queries
from pytest_privacy.data.augmentations import reflect_shift, shift
from pytest_privacy.engine.ensemble import train_models
from pytest_privacy.engine.seeds import model_seeds
from pytest_privacy.engine.views import TrainViews


def _reference(x, offsets, flip, mode):
    out = x
    for axis, step in enumerate(offsets):
        if step:
            move = reflect_shift if mode == "crop" else shift
            out = move(out[None], axis + 1 + (x.ndim - len(offsets)), step)[0]
    return out[..., ::-1] if flip else out


@pytest.mark.parametrize("kinds, shape", [(("crop", "flip"), (3, 6, 7)), (("crop", "flip"), (2, 3, 4)), (("flip",), (3, 6, 7)), (("shift", "flip"), (6, 7)), (("crop",), (9,))])
def test_every_view_is_its_numpy_reference(kinds, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, *shape)).astype(np.float32)
    views = TrainViews(kinds, shape, seeds=model_seeds(0, range(2)), data_std=1.0)
    params = np.stack([views.draw(np.random.default_rng(m), 5) for m in range(2)])
    out = views.apply(torch.from_numpy(x), torch.from_numpy(params), [True, True]).numpy()
    k = len(params[0, 0]) - 1
    mode = "crop" if "crop" in kinds else "shift"
    for m in range(2):
        for b in range(5):
            ref = _reference(x[m, b], params[m, b, :k], bool(params[m, b, k]), mode)
            np.testing.assert_array_equal(out[m, b], ref)
    assert np.abs(params[..., :k]).max() <= (4 if mode == "crop" else 1)


def test_the_query_set_holds_the_views_lira_compares():
    x = np.zeros((4, 3, 8, 8), dtype=np.float32)
    assert make_queries(x, ("crop", "flip")).shape == (4, 10, 3, 8, 8)  # original + 4 crops, all flipped too
    assert make_queries(np.zeros((4, 9)), ("crop",)).shape == (4, 3, 9)
    assert make_queries(np.zeros((4, 9)), ("noise",)).shape == (4, 1, 9)  # noise is a training view only
    with pytest.raises(ValueError, match="'shift' .* or 'crop'"):
        make_queries(x, ("shift", "crop"))
    with pytest.raises(ValueError, match="unknown augmentations"):
        TrainingRecipe(augmentations=("rotate",))


@pytest.mark.slow
@pytest.mark.parametrize("kinds", [("crop", "flip"), ("noise",)])
def test_a_models_views_are_its_own(kinds):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 1, 8, 8)).astype(np.float32) if "crop" in kinds else rng.normal(size=(200, 12)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    recipe = TrainingRecipe(model="cnn" if "crop" in kinds else "mlp", hidden=(8,), epochs=2, batch_size=32,
                            augmentations=kinds)
    keep = balanced_keep(4, 200, 0)
    keep[1, :5] = False
    together = train_models(recipe, x, y, keep, model_seeds(0, range(4)))
    alone = train_models(recipe, x, y, keep[1:2], model_seeds(0, [1]))
    plain = train_models(recipe.model_copy(update={"augmentations": ()}), x, y, keep[1:2], model_seeds(0, [1]))
    name = next(iter(together.params))
    for k in together.params:
        torch.testing.assert_close(together.params[k][1], alone.params[k][0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(plain.params[name][0], alone.params[name][0])
    assert together.logits(x).shape[2] == make_queries(x[:1], kinds).shape[1]
