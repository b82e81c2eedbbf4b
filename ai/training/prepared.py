"""A case on the model's grid: the same orientation and spacing change the runner makes at inference.

The image goes through :meth:`ai.runners.model_grid.ModelGrid.to_model` and the manifest's normalisation
(:func:`ai.runners.network.normalize`), exactly as :class:`ai.runners.network.NetworkModel` prepares an image, so
what the network learns on is what it will see. The label map takes the same permutation and flips; when the
spacing changes, each label's mask is resampled (linear) and the largest wins.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ai.network_spec import Normalization
from ai.runners.model_grid import ModelGrid
from ai.runners.network import normalize

#: voxel positions kept per label for drawing patch centres
MAX_POSITIONS = 20000


@dataclass
class PreparedCase:
    id: str
    image: torch.Tensor  # (1, z, y, x) float32, normalised, on the model grid
    labels: torch.Tensor  # (z, y, x) uint8/int16: 0 background, i = label i
    positions: list[torch.Tensor]  # per label 1..K: flat voxel indices (at most MAX_POSITIONS)
    pad_value: float  # the image's lowest value: what lies outside it
    grid: ModelGrid

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)


def labels_to_model(grid: ModelGrid, labels: np.ndarray, classes: int) -> torch.Tensor:
    """An image-grid label map ``(Z, Y, X)`` on the model grid (per-label linear resampling, largest wins)."""
    lab = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int16, copy=False))
    lab = lab.permute(*grid.transpose)
    if grid.flips:
        lab = torch.flip(lab, list(grid.flips))
    if not grid.resamples:
        return lab.contiguous()
    best = torch.full(grid.model_shape, -1.0)
    out = torch.zeros(grid.model_shape, dtype=torch.int16)
    for k in range(classes):
        mask = (lab == k).to(torch.float32)[None, None]
        score = F.interpolate(mask, size=grid.model_shape, mode="trilinear", align_corners=False)[0, 0]
        better = score > best
        out[better] = k
        best = torch.maximum(best, score)
    return out


def prepare_case(case_id: str, image: np.ndarray, labels: np.ndarray, geometry, spacing_mm, orientation: str,
                 norm: Normalization, classes: int, generator: torch.Generator) -> PreparedCase:
    grid = ModelGrid.plan(geometry.shape_zyx, geometry.spacing_zyx, geometry.direction_matrix, orientation,
                          spacing_mm)
    x = grid.to_model(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None])
    x = normalize(x, norm).contiguous()
    lab = labels_to_model(grid, labels, classes)
    dtype = torch.uint8 if classes <= 256 else torch.int16
    lab = lab.to(dtype)
    positions = []
    flat = lab.reshape(-1)
    for k in range(1, classes):
        where = torch.nonzero(flat == k).reshape(-1)
        if where.numel() > MAX_POSITIONS:
            where = where[torch.randperm(where.numel(), generator=generator)[:MAX_POSITIONS]]
        positions.append(where)
    return PreparedCase(case_id, x, lab, positions, float(x.min()), grid)
