"""White-box canary scores from a team's own loop: a training function that declares ``on_step`` and
calls it after each optimizer step has each canary scored by how far every step moved the weights
along the canary's own gradient direction; cached with the model, named in the result; a function
that declares the hook but does not call it is an error, not a silent black-box run."""

import numpy as np
import pytest

from pytest_privacy import PrivacyTrainer, load_example_dataset
from pytest_privacy.engine.store import ModelStore

torch = pytest.importorskip("torch")
nn = torch.nn
DATA = load_example_dataset("digits", n=500)


def _loop(x, y, *, seed, on_step, epochs=4):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(x.shape[1:])), 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for b in torch.randperm(len(xt), generator=order).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
            if on_step is not None:
                on_step(model)
    return model


def white_box(x, y, *, seed, device, on_step):
    """A plain loop (no DP) that reports every step."""
    return _loop(x, y, seed=seed, on_step=on_step)


def forgets_to_call(x, y, *, seed, device, on_step):
    return _loop(x, y, seed=seed, on_step=None)


@pytest.mark.slow
def test_a_loop_that_reports_its_steps_is_scored_white_box_and_cached(tmp_path):
    from sklearn.metrics import roc_auc_score

    trainer = PrivacyTrainer(store=ModelStore(tmp_path))
    run = trainer.canary_run(white_box, DATA, n_canaries=100, seed=0)
    assert "scored white-box" in run.description and run.scores.shape == (100,)
    # No DP: the steps that trained on a canary moved the weights along its gradient (measured AUC 0.75;
    # the final model's loss: 0.84). A score that knew nothing would sit at 0.5 +- 0.06 (one sd, 100 canaries).
    assert roc_auc_score(run.included, run.scores) > 0.65
    again = PrivacyTrainer(store=ModelStore(tmp_path)).canary_run(white_box, DATA, n_canaries=100, seed=0)
    assert not again.trained and np.array_equal(again.scores, run.scores)
    # the same function without the hook is a black-box run: another cache entry, other scores
    plain = trainer.canary_run(lambda x, y, *, seed, device: _loop(x, y, seed=seed, on_step=None), DATA, n_canaries=100, seed=0)
    assert "white-box" not in plain.description and not np.allclose(plain.scores, run.scores)
    with pytest.raises(Exception, match="called it fewer than twice"):
        PrivacyTrainer().canary_run(forgets_to_call, DATA, n_canaries=100, seed=0)

    def passes_weights(x, y, *, seed, device, on_step):
        return _loop(x, y, seed=seed, on_step=lambda model: on_step(model.state_dict()))

    with pytest.raises(Exception, match="takes the model being trained"):
        PrivacyTrainer().canary_run(passes_weights, DATA, n_canaries=100, seed=0)
