"""Residual networks for small images, with BatchNorm: a CIFAR-style ResNet (He et al. 2016,
section 4.2: 6n+2 layers in three stages of n basic blocks) and a WideResNet (Zagoruyko &
Komodakis 2016: pre-activation blocks, 6n+4 layers, widening factor k; WRN-16-4 and WRN-28-2 are
the LiRA paper's). Inputs ``[C, H, W]`` or ``[H, W]`` (one channel)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["resnet", "wide_resnet"]


class _Basic(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (a 1x1 conv-BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        return (out + self.shortcut(x)).relu()


class _PreAct(nn.Module):
    """BN-ReLU-conv-(dropout)-BN-ReLU-conv plus the shortcut: the WideResNet block."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.bn1(x).relu()
        y = self.conv2(self.drop(self.bn2(self.conv1(o)).relu()))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class _Net(nn.Module):
    def __init__(self, stem: nn.Module, blocks: nn.Sequential, head_bn: nn.Module, c_out: int, n_classes: int,
                 channels: int | None) -> None:
        super().__init__()
        self.channels = channels  # None: [C, H, W] inputs; 1: [H, W] inputs get a channel axis
        self.stem, self.blocks, self.head_bn = stem, blocks, head_bn
        self.fc = nn.Linear(c_out, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is not None:
            x = x.unsqueeze(1)
        h = self.head_bn(self.blocks(self.stem(x))).relu()
        return self.fc(h.mean(dim=(2, 3)))


def _channels(shape: tuple[int, ...], name: str) -> tuple[int, int | None]:
    if len(shape) == 3:
        return shape[0], None
    if len(shape) == 2:
        return 1, 1
    raise ValueError(f"model={name!r} needs [C, H, W] or [H, W] examples, got {shape}.")


def resnet(shape: tuple[int, ...], n_classes: int, *, depth: int = 8, width: int = 16) -> nn.Module:
    """ResNet-``depth`` (6n+2) with ``width``, 2 ``width``, 4 ``width`` channels in its three stages."""
    c_in, channels = _channels(shape, "resnet")
    n = (depth - 2) // 6
    stem = nn.Sequential(nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    blocks, c = [], width
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for i in range(n):
            blocks.append(_Basic(c, c_out, 2 if stage and i == 0 else 1))
            c = c_out
    return _Net(stem, nn.Sequential(*blocks), nn.Identity(), c, n_classes, channels)


def wide_resnet(shape: tuple[int, ...], n_classes: int, *, depth: int = 16, k: int = 4, dropout: float = 0.0) -> nn.Module:
    """WRN-``depth``-``k`` (depth 6n+4): stages of 16k, 32k, 64k channels, pre-activation blocks."""
    c_in, channels = _channels(shape, "wrn")
    n = (depth - 4) // 6
    stem = nn.Conv2d(c_in, 16, 3, 1, 1, bias=False)
    blocks, c = [], 16
    for stage, c_out in enumerate((16 * k, 32 * k, 64 * k)):
        for i in range(n):
            blocks.append(_PreAct(c, c_out, 2 if stage and i == 0 else 1, dropout))
            c = c_out
    return _Net(stem, nn.Sequential(*blocks), nn.BatchNorm2d(c), c, n_classes, channels)
