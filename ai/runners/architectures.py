"""Networks radview can rebuild from weights alone (safetensors or a state_dict): a plain 3D U-Net.

Weights files hold tensors only; the architecture is code here, chosen by name in the model's
manifest (``architecture = "unet3d"`` with ``[network.args]``). The U-Net scripts with
``torch.jit.script``, so a model built here can also be shipped as TorchScript.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ai.api import ModelError


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (instance, batch or none)")


class ConvBlock(nn.Sequential):
    """Two (convolution, normalisation, leaky ReLU) layers; 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel_size: int, norm: str):
        pad = kernel_size // 2
        super().__init__(
            nn.Conv3d(cin, cout, kernel_size, padding=pad), _norm(norm, cout), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, kernel_size, padding=pad), _norm(norm, cout), nn.LeakyReLU(0.01, inplace=True),
        )


class UpBlock(nn.Module):
    """Transposed convolution up one level, concatenation with the skip, conv block."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], kernel_size: int, norm: str):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, stride, stride)
        self.block = ConvBlock(2 * cout, cout, kernel_size, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class UNet3D(nn.Module):
    """A 3D U-Net (Çiçek et al. 2016; nnU-Net's plain variant): conv blocks, pooling, transposed convolutions, skips.

    ``features[i]`` channels at level ``i``; ``strides[i]`` (z, y, x) pools from level ``i`` to ``i + 1``
    (default 2 on every axis; use e.g. ``[1, 2, 2]`` for thick slices). Input sizes must be divisible by the
    product of the strides. ``len(features) == 1`` gives a network without pooling.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, features: Sequence[int] = (16, 32, 64),
                 kernel_size: int = 3, norm: str = "instance", strides: Sequence[Sequence[int]] | None = None):
        super().__init__()
        features = [int(f) for f in features]
        if not features or min(features) < 1:
            raise ValueError("features needs at least one positive level width")
        levels = len(features)
        if strides is None:
            strides = [[2, 2, 2]] * (levels - 1)
        strides = [tuple(int(s) for s in st) for st in strides]
        if len(strides) != levels - 1 or any(len(st) != 3 or min(st) < 1 for st in strides):
            raise ValueError(f"strides needs {levels - 1} positive (z, y, x) triples for {levels} levels")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd")
        self.encoders = nn.ModuleList([ConvBlock(int(in_channels), features[0], kernel_size, norm)])
        for i in range(1, levels):
            self.encoders.append(nn.Sequential(nn.MaxPool3d(strides[i - 1], strides[i - 1]),
                                               ConvBlock(features[i - 1], features[i], kernel_size, norm)))
        self.decoders = nn.ModuleList([UpBlock(features[i + 1], features[i], strides[i], kernel_size, norm)
                                       for i in range(levels - 2, -1, -1)])
        self.head = nn.Conv3d(features[0], int(out_channels), 1)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        x = skips[-1]
        for i, dec in enumerate(self.decoders):
            x = dec(x, skips[-(i + 2)])
        return self.head(x)


def _build_unet(args: Mapping[str, Any]) -> nn.Module:
    return UNet3D(**dict(args))


ARCHITECTURES = {"unet3d": _build_unet}


def build_network(name: str, args: Mapping[str, Any]) -> nn.Module:
    """An architecture by name; wrong arguments give a readable ModelError."""
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ModelError(f"unknown architecture {name!r} (radview knows {', '.join(ARCHITECTURES)})") from None
    try:
        return factory(args)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{name}: bad [network.args]: {exc}") from None
