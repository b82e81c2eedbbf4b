"""A training patch cut from a prepared case, with augmentation.

Spatial (probability ``p_spatial``): a rotation about the slice axis up to ``rotate_deg`` and small tilts up to
``tilt_deg`` about the other two, and an isotropic scaling in ``scale``, both in millimetres about the patch
centre (anisotropic voxels stay anisotropic); the image is sampled linearly, the labels by nearest neighbour,
outside the volume the image's lowest value and background. Intensity (each with ``p_intensity``, on the
normalised image): brightness, contrast, Gaussian noise. Mirroring (each allowed axis with ``p_mirror``): the
model grid is LPS, so numpy axis 2 is left-right; :func:`mirror_axes` leaves it out whenever a label is lateral,
since mirroring would turn a left lung into a right one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ai.training.prepared import PreparedCase

LEFT_RIGHT_AXIS = 2  # numpy axis of the LPS model grid that runs right -> left


def mirror_axes(lateral: bool) -> tuple[int, ...]:
    """The model-grid axes that may be mirrored: never left-right when a label is lateral."""
    return (0, 1) if lateral else (0, 1, 2)


@dataclass(frozen=True)
class Augmentation:
    p_spatial: float = 0.3
    rotate_deg: float = 15.0
    tilt_deg: float = 5.0
    scale: tuple[float, float] = (0.85, 1.15)
    p_intensity: float = 0.15
    noise_sd: float = 0.1
    mirror: tuple[int, ...] = (0, 1)
    p_mirror: float = 0.5


def _rand(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((1,), generator=gen))


def _rotation(gen: torch.Generator, aug: Augmentation) -> torch.Tensor:
    """A (z, y, x) rotation matrix: in-plane (about z) up to rotate_deg, tilts about y and x up to tilt_deg."""
    a, b, c = (math.radians(_rand(gen, -d, d)) for d in (aug.rotate_deg, aug.tilt_deg, aug.tilt_deg))
    rz = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = torch.tensor([[math.cos(b), 0, -math.sin(b)], [0, 1, 0], [math.sin(b), 0, math.cos(b)]])
    rx = torch.tensor([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return (rz @ ry @ rx).to(torch.float32)


def _sample_grid(shape: Sequence[int], centre: Sequence[int], patch: Sequence[int], spacing: Sequence[float],
                 transform: Optional[torch.Tensor]) -> torch.Tensor:
    """grid_sample's (1, pz, py, px, 3) grid (x, y, z in [-1, 1], align_corners=True) of the patch's voxels."""
    axes = [torch.arange(p, dtype=torch.float32) - p // 2 for p in patch]
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (pz, py, px, 3) voxels (z, y, x)
    if transform is not None:
        sp = torch.tensor(spacing, dtype=torch.float32)
        offsets = ((offsets * sp) @ transform.T) / sp
    pos = offsets + torch.tensor(centre, dtype=torch.float32)
    size = torch.tensor([max(n - 1, 1) for n in shape], dtype=torch.float32)
    norm = 2.0 * pos / size - 1.0
    return norm.flip(-1)[None]  # (z, y, x) -> (x, y, z)


def extract(case: PreparedCase, centre: Sequence[int], patch: Sequence[int], aug: Optional[Augmentation],
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(image ``(1, pz, py, px)`` float32, labels ``(pz, py, px)`` int64) around ``centre``."""
    transform = None
    if aug is not None and _rand(gen) < aug.p_spatial:
        transform = _rotation(gen, aug) / _rand(gen, *aug.scale)
    grid = _sample_grid(case.shape, centre, patch, case.grid.model_spacing, transform)
    image = F.grid_sample((case.image - case.pad_value)[None], grid, mode="bilinear", padding_mode="zeros",
                          align_corners=True)[0] + case.pad_value
    labels = F.grid_sample(case.labels.to(torch.float32)[None, None], grid, mode="nearest", padding_mode="zeros",
                           align_corners=True)[0, 0].round().to(torch.int64)
    if aug is None:
        return image, labels
    if _rand(gen) < aug.p_intensity:
        image = image * _rand(gen, 0.75, 1.25)
    if _rand(gen) < aug.p_intensity:
        mean = image.mean()
        image = (image - mean) * _rand(gen, 0.75, 1.25) + mean
    if _rand(gen) < aug.p_intensity:
        image = image + torch.randn(image.shape, generator=gen) * _rand(gen, 0.0, aug.noise_sd)
    flips = [a for a in aug.mirror if _rand(gen) < aug.p_mirror]
    if flips:
        image = torch.flip(image, [a + 1 for a in flips])
        labels = torch.flip(labels, flips)
    return image.contiguous(), labels.contiguous()
