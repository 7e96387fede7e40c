"""A DP claim on a fine-tuned language model, as a team with its own opacus DP-SGD loop makes it: the
honest loop (noise for epsilon = 2 by opacus's accountant) passes the claim, and the same loop with the
noise forgotten fails it. Canaries: 500 random 4-digit secrets after "my account number is", each
planted once with probability 1/2, scored by their log-likelihood (``lm_canary_run``)."""

import numpy as np
import pytest

from pytest_privacy import (
    PrivacyLeakError,
    PrivacyTrainer,
    Verdict,
    assert_dp_claim_holds,
    load_example_dataset,
)

opacus = pytest.importorskip("opacus", reason="the team's DP-SGD loop uses opacus (the [dp] extra)")
torch = pytest.importorskip("torch")
nn = torch.nn

TEXT = load_example_dataset("tickets", n=200).subset(np.arange(100))
VOCAB = len(TEXT.tokenizer)


class ConvLM(nn.Module):
    """An embedding, a causal convolution over the last 4 tokens and a head: layers opacus computes
    per-example gradients of."""

    def __init__(self, vocab: int, width: int = 64, window: int = 4) -> None:
        super().__init__()
        self.window = window
        self.embed, self.conv, self.head = nn.Embedding(vocab, width), nn.Conv1d(width, 2 * width, window), nn.Linear(2 * width, vocab)

    def forward(self, ids):
        h = nn.functional.pad(self.embed(ids).transpose(1, 2), (self.window - 1, 0))  # (left: causal)
        return self.head(torch.relu(self.conv(h)).transpose(1, 2))


def dp_finetune(*, forget_noise: bool, epochs: int = 30):
    """The team's loop: opacus DP-SGD (Poisson batches of 64 expected, clipping at 1, SGD lr 4), with
    the noise its accountant sets for epsilon = 2 at delta = 1e-5, or none at all."""

    def finetune(data, *, seed, device):
        from opacus import PrivacyEngine

        torch.manual_seed(seed)
        model = ConvLM(VOCAB)
        optimizer = torch.optim.SGD(model.parameters(), lr=4.0)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(data.ids), torch.from_numpy(data.mask)), batch_size=64
        )
        engine = PrivacyEngine(accountant="rdp")
        common = dict(module=model, optimizer=optimizer, data_loader=loader, max_grad_norm=1.0, poisson_sampling=True)
        if forget_noise:
            model, optimizer, loader = engine.make_private(noise_multiplier=0.0, **common)
        else:
            model, optimizer, loader = engine.make_private_with_epsilon(target_epsilon=2.0, target_delta=1e-5, epochs=epochs, **common)
        for _ in range(epochs):
            for ids, mask in loader:
                if len(ids) == 0:  # (a Poisson batch can be empty)
                    continue
                logits = model(ids)[:, :-1]
                loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none")
                m = mask[:, 1:].float()
                loss = ((loss.view(len(ids), -1) * m).sum(1) / m.sum(1)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        finetune.epsilon = engine.get_epsilon(1e-5)
        return model._module.eval()

    return finetune


@pytest.mark.slow
def test_an_honest_dp_fine_tune_passes_its_claim_and_the_same_loop_without_noise_fails_it():
    # Measured over seeds 0-2: the noise-free loop proves eps >= 2.70 / 2.55 / 2.93, the honest one
    # eps >= 0.09 / 0.00 / 0.00.
    trainer = PrivacyTrainer()
    honest = dp_finetune(forget_noise=False)
    run = trainer.lm_canary_run(honest, TEXT, seed=0, repetitions=(1,), per_count=500)
    assert honest.epsilon <= 2.0  # the claim is the accountant's
    r = assert_dp_claim_holds(run, epsilon=2.0, delta=1e-5)
    assert r.verdict is Verdict.PASS and r.n_canaries == 500 and "power" in r.reason
    forgot = trainer.lm_canary_run(dp_finetune(forget_noise=True), TEXT, seed=0, repetitions=(1,), per_count=500)
    with pytest.raises(PrivacyLeakError, match=r"claim violated: the canaries prove epsilon >= 2\.[6-9]\d* > 2"):
        assert_dp_claim_holds(forgot, epsilon=2.0, delta=1e-5)
