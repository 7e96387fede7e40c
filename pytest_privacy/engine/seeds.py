"""Every random choice of a model flows from its own seed: the per-model seed streams (the split,
minibatch order and views, defense draws, dropout masks, weight initialisation), and the balanced
keep matrix (which reference model trains on which point) drawn from the audit's seed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["balanced_keep", "child_seed", "init_seed", "model_seeds", "seeded_init", "torch_generators", "torch_seed"]


def balanced_keep(n_models: int, n_points: int, seed: int) -> np.ndarray:
    """Keep matrix ``bool[M, N]``: reference ``m`` trains on point ``n`` where True.

    Every column has exactly ``M // 2`` True, so every audit point is IN for half of the references
    and OUT for the other half (what online LiRA needs), and every row holds ``N // 2`` or
    ``(N + 1) // 2`` points, so references train on as many points as a target trained on a random
    half. Models come in complementary pairs: row ``2j`` is a seeded random half and row ``2j + 1``
    its complement.
    """
    if not isinstance(n_models, (int, np.integer)) or n_models < 2 or n_models % 2:
        raise ValueError(
            f"n_models must be an even integer >= 2 (half IN, half OUT per point), got {n_models!r}."
        )
    if not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}.")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x6B656570,)))
    keep = np.zeros((n_models, n_points), dtype=bool)
    for j in range(n_models // 2):
        order = rng.permutation(n_points)
        # Alternate which side gets the odd point so row sizes stay balanced overall.
        half = (n_points + (j % 2)) // 2
        keep[2 * j, order[:half]] = True
        keep[2 * j + 1] = ~keep[2 * j]
    return keep


def model_seeds(seed: int, indices: range | list[int]) -> list[np.random.SeedSequence]:
    """Per-model seeds: model ``i`` always gets ``SeedSequence(seed).spawn(...)[i]``.

    Independent of how many models are trained together, so a model trained in a chunk equals
    the same model trained alone, and adding references never changes the existing ones.
    """
    return [np.random.SeedSequence(seed, spawn_key=(int(i),)) for i in indices]


def child_seed(seed: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """Model ``seed``'s stream ``k`` (0 init, 1 minibatches and views, 2 the MMD defense's draws, 3 DP
    noise, 4 dropout masks, 5 noise views, 6 DP-SGD's white-box canaries): stateless,
    where ``spawn()`` would depend on how often it was called before."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k))


def torch_seed(seed: np.random.SeedSequence) -> int:
    """The integer a model's seed becomes for ``torch.manual_seed`` (and a training function's ``seed``)."""
    return int(seed.generate_state(1, np.uint64)[0] % (2**63))


def init_seed(seed: np.random.SeedSequence) -> int:
    """The torch seed model ``seed``'s weights are built under: stream 0 of its seed."""
    return torch_seed(child_seed(seed, 0))


@contextmanager
def seeded_init(seed: np.random.SeedSequence) -> Iterator[None]:
    """Torch's global generators seeded with :func:`init_seed` while a model's weights are built,
    the caller's states restored afterwards: how the recipe engine, :class:`StackedModels` and
    :func:`seeded_model` build model ``seed``, so each equals the others.

    The CPU generator, and CUDA's where there is a GPU (a factory may build on it). Not
    ``torch.manual_seed``: it also queues a seed for every uninitialised accelerator backend, each
    formatting a stack trace (~0.5 ms a model, ~4% of a 16-MLP run on a CPU), and it reseeded the
    caller's CUDA generator, which a CPU-only ``fork_rng`` does not restore (an uninitialised CUDA's
    state cannot be saved without initialising it, so there the seed is queued as before)."""
    import torch

    cuda = torch.cuda.is_available()
    saved = list(range(torch.cuda.device_count())) if cuda and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=saved):
        value = init_seed(seed)
        torch.default_generator.manual_seed(value)
        if cuda:
            torch.cuda.manual_seed_all(value)
        yield


def function_seed(seed: np.random.SeedSequence) -> int:
    """The integer seed handed to a ``privacy_train_fn``: below 2**31, so that every library takes
    it (``RandomForestClassifier(random_state=seed)``, ``np.random.seed``, int32 APIs)."""
    return int(seed.generate_state(1, np.uint32)[0] >> 1)


def torch_generators(seeds: Sequence[np.random.SeedSequence], stream: int) -> list[Any]:
    """One CPU ``torch.Generator`` per model on its seed's ``stream``: the per-model draws torch makes
    (DP noise, dropout masks, noise views), so a model's draws never depend on its chunk-mates."""
    import torch

    return [torch.Generator().manual_seed(torch_seed(child_seed(s, stream))) for s in seeds]
