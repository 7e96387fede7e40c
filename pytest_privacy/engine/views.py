"""Random training views, drawn per model: each slot of an epoch gets its own translation (a
one-pixel ``shift``, or a ``crop`` of the reflect-padded input) and horizontal ``flip`` from its
model's generator; ``noise`` is drawn per step from each model's own torch generator (stream 5 of
its seed), only for models that step. The query set LiRA uses holds the same kinds of views
(:func:`pytest_privacy.augmentations.make_queries`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..augmentations import CROP_PAD, spatial_axes
from .keep import torch_generators

if TYPE_CHECKING:
    import torch

__all__ = ["TrainViews"]

NOISE_SCALE = 0.1  # of the training data's standard deviation


class TrainViews:
    """The random views of one recipe's augmentations for examples of ``example_shape``."""

    def __init__(self, augmentations: Sequence[str], example_shape: tuple[int, ...], *,
                 seeds: Sequence[np.random.SeedSequence], data_std: float) -> None:
        self.shift, self.crop = "shift" in augmentations, "crop" in augmentations
        self.flip, self.noise = "flip" in augmentations, "noise" in augmentations
        self.axes = spatial_axes(len(example_shape)) if (self.shift or self.crop or self.flip) else ()
        self.example_shape = example_shape
        self.sigma = NOISE_SCALE * data_std
        self.seeds = list(seeds)
        self._generators: list[torch.Generator] | None = None

    @classmethod
    def of(cls, augmentations: Sequence[str], example_shape: tuple[int, ...], *,
           seeds: Sequence[np.random.SeedSequence], data_std: float) -> TrainViews | None:
        """The views, or None for a recipe without augmentations."""
        return cls(augmentations, example_shape, seeds=seeds, data_std=data_std) if augmentations else None

    @property
    def width(self) -> int:
        """Random parameters per slot: a translation per spatial axis, then the flip bit."""
        return len(self.axes) + 1

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n, width]`` parameters for ``n`` slots from one model's generator."""
        out = np.zeros((n, self.width), dtype=np.int64)
        k = len(self.axes)
        if self.crop:
            out[:, :k] = rng.integers(-CROP_PAD, CROP_PAD + 1, size=(n, k))
        elif self.shift:  # the original or one neighbour along one axis
            choice = rng.integers(0, 2 * k + 1, size=n)
            moved = choice > 0
            axis, sign = (choice[moved] - 1) // 2, np.where((choice[moved] - 1) % 2 == 0, 1, -1)
            out[np.flatnonzero(moved), axis] = sign
        if self.flip:
            out[:, k] = rng.integers(0, 2, size=n)
        return out

    def apply(self, xb: torch.Tensor, params: torch.Tensor, active: Sequence[bool]) -> torch.Tensor:
        """The views of a batch ``xb [M, B, ...]`` with parameters ``[M, B, width]``."""
        import torch

        if self.shift or self.crop:
            xb = self._translate(xb, params[..., : len(self.axes)], "reflect" if self.crop else "constant")
        if self.flip:
            flipped = params[..., -1].bool().view(*params.shape[:2], *[1] * (xb.dim() - 2))
            xb = torch.where(flipped, xb.flip(-1), xb)
        if self.noise:
            xb = xb + self._noise(xb, active)
        return xb

    def _translate(self, xb: torch.Tensor, offsets: torch.Tensor, mode: str) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        m, b = xb.shape[:2]
        k = len(self.axes)
        pad = CROP_PAD if mode == "reflect" else 1
        # [M*B, C, *spatial] with a channel axis, as F.pad's reflect mode wants
        spatial = xb.shape[xb.dim() - k:]
        flat = xb.reshape(m * b, -1, *spatial)
        padded = F.pad(flat, (pad, pad) * k, mode=mode)
        shifts = offsets.reshape(m * b, k)
        index: list[torch.Tensor] = [
            torch.arange(m * b, device=xb.device).view(-1, *[1] * (k + 1)),
            torch.arange(flat.shape[1], device=xb.device).view(1, -1, *[1] * k),
        ]
        for j, size in enumerate(spatial):
            # content moves by +s: output position i reads padded position pad + i - s
            pos = pad - shifts[:, j].view(-1, 1) + torch.arange(size, device=xb.device).view(1, -1)
            shape = [m * b, 1] + [1] * k
            shape[2 + j] = size
            index.append(pos.view(shape))
        return padded[tuple(index)].reshape(xb.shape)

    def _noise(self, xb: torch.Tensor, active: Sequence[bool]) -> torch.Tensor:
        import torch

        if self._generators is None:
            self._generators = torch_generators(self.seeds, 5)
        shape = xb.shape[1:]
        draws = [
            torch.randn(shape, generator=g) if on else torch.zeros(shape) for g, on in zip(self._generators, active)
        ]
        return (self.sigma * torch.stack(draws)).to(device=xb.device, dtype=xb.dtype)
