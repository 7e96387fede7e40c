"""Residual networks for small images, with BatchNorm: a CIFAR-style ResNet (He et al. 2016,
section 4.2: 6n+2 layers in three stages of n basic blocks) and a WideResNet (Zagoruyko &
Komodakis 2016: pre-activation blocks, 6n+4 layers, widening factor k; WRN-16-4 and WRN-28-2 are
the LiRA paper's). Inputs ``[C, H, W]`` or ``[H, W]`` (one channel).

Built with ``n_models=M`` (``M >= 1``) the same architecture holds M models folded into the channel axis:
every convolution is grouped (``groups=M``), every BatchNorm normalises M times the channels (so
each model's channels keep their own statistics), and the head is a grouped 1x1 convolution. Its
parameters are exactly the M models' stacked parameters reshaped (``[M, out, in, k, k]`` ->
``[M * out, in, k, k]``), so the engine trains M models as one network of grouped convolutions,
which oneDNN runs ~5x faster than M separate convolutions on a CPU. It takes ``[M, B, ...]``
inputs and returns ``[M, B, classes]``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["folded_shapes", "folded_state", "resnet", "wide_resnet"]


def _conv(c_in: int, c_out: int, k: int, stride: int, g: int) -> nn.Conv2d:
    return nn.Conv2d(g * c_in, g * c_out, k, stride, k // 2, bias=False, groups=g)


class _Basic(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (a 1x1 conv-BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, g: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, c_out, 3, stride, g)
        self.bn1 = nn.BatchNorm2d(g * c_out)
        self.conv2 = _conv(c_out, c_out, 3, 1, g)
        self.bn2 = nn.BatchNorm2d(g * c_out)
        self.shortcut = (
            nn.Sequential(_conv(c_in, c_out, 1, stride, g), nn.BatchNorm2d(g * c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        return (out + self.shortcut(x)).relu()


class _PreAct(nn.Module):
    """BN-ReLU-conv-(dropout)-BN-ReLU-conv plus the shortcut: the WideResNet block."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, g: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(g * c_in)
        self.conv1 = _conv(c_in, c_out, 3, stride, g)
        self.bn2 = nn.BatchNorm2d(g * c_out)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = _conv(c_out, c_out, 3, 1, g)
        self.shortcut = _conv(c_in, c_out, 1, stride, g) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.bn1(x).relu()
        y = self.conv2(self.drop(self.bn2(self.conv1(o)).relu()))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class _Net(nn.Module):
    def __init__(self, stem: nn.Module, blocks: nn.Sequential, head_bn: nn.Module, c_out: int, n_classes: int,
                 channels: int | None, g: int | None) -> None:
        super().__init__()
        self.channels = channels  # None: [C, H, W] inputs; 1: [H, W] inputs get a channel axis
        self.folded = g is not None  # [M, B, ...] in, [M, B, classes] out
        g = g or 1
        self.g, self.n_classes = g, n_classes
        self.stem, self.blocks, self.head_bn = stem, blocks, head_bn
        # One model: a Linear head. M folded models: a grouped 1x1 convolution, whose weight
        # [M * classes, c, 1, 1] is the M Linear weights [M, classes, c] reshaped.
        self.fc = nn.Conv2d(g * c_out, g * n_classes, 1, groups=g) if self.folded else nn.Linear(c_out, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded:  # [M, B, ...] -> [B, M * C, H, W]
            m, b = x.shape[:2]
            x = (x.unsqueeze(2) if self.channels is not None else x).transpose(0, 1).reshape(b, -1, *x.shape[-2:])
        elif self.channels is not None:
            x = x.unsqueeze(1)
        h = self.head_bn(self.blocks(self.stem(x))).relu().mean(dim=(2, 3))
        if not self.folded:
            return self.fc(h)
        out = self.fc(h[:, :, None, None]).view(b, m, self.n_classes)
        return out.transpose(0, 1)


def _channels(shape: tuple[int, ...], name: str) -> tuple[int, int | None]:
    if len(shape) == 3:
        return shape[0], None
    if len(shape) == 2:
        return 1, 1
    raise ValueError(f"model={name!r} needs [C, H, W] or [H, W] examples, got {shape}.")


def resnet(
    shape: tuple[int, ...], n_classes: int, *, depth: int = 8, width: int = 16, n_models: int | None = None
) -> nn.Module:
    """ResNet-``depth`` (6n+2) with ``width``, 2 ``width``, 4 ``width`` channels in its three stages."""
    c_in, channels = _channels(shape, "resnet")
    g, n = n_models or 1, (depth - 2) // 6
    stem = nn.Sequential(_conv(c_in, width, 3, 1, g), nn.BatchNorm2d(g * width), nn.ReLU())
    blocks, c = [], width
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for i in range(n):
            blocks.append(_Basic(c, c_out, 2 if stage and i == 0 else 1, g))
            c = c_out
    return _Net(stem, nn.Sequential(*blocks), nn.Identity(), c, n_classes, channels, n_models)


def wide_resnet(
    shape: tuple[int, ...], n_classes: int, *, depth: int = 16, k: int = 4, dropout: float = 0.0,
    n_models: int | None = None,
) -> nn.Module:
    """WRN-``depth``-``k`` (depth 6n+4): stages of 16k, 32k, 64k channels, pre-activation blocks."""
    c_in, channels = _channels(shape, "wrn")
    g, n = n_models or 1, (depth - 4) // 6
    stem = _conv(c_in, 16, 3, 1, g)
    blocks, c = [], 16
    for stage, c_out in enumerate((16 * k, 32 * k, 64 * k)):
        for i in range(n):
            blocks.append(_PreAct(c, c_out, 2 if stage and i == 0 else 1, dropout, g))
            c = c_out
    return _Net(stem, nn.Sequential(*blocks), nn.BatchNorm2d(g * c), c, n_classes, channels, n_models)


def folded_shapes(folded: nn.Module) -> dict[str, torch.Size]:
    """The shape of every parameter and buffer of a folded (``n_models=M``) network, by name: the
    stacked per-model tensors ``[M, ...]`` reshape to these (``num_batches_tracked`` excluded: the
    engine counts it per model itself)."""
    return {
        name: t.shape for name, t in [*folded.named_parameters(), *folded.named_buffers()]
        if not name.endswith("num_batches_tracked")
    }


def folded_state(shapes: dict[str, torch.Size], *tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stacked per-model tensors ``[M, ...]`` as the folded network's parameters and buffers
    (reshaped views: a BatchNorm update in the folded network lands in the stacked buffer)."""
    return {k: v.reshape(shapes[k]) for group in tensors for k, v in group.items() if k in shapes}
