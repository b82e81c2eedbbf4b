"""Body outline on a CT, with the scanner table and outside air removed (torch + SimpleITK)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ai.runners import ct_ops as ops

TISSUE_HU = -500.0  # skin/fat/muscle/bone are above, air and table foam below
TABLE_OPEN_MM = 3.5  # in-plane opening radius: the table's thin shells vanish, the torso stays


@dataclass
class BodyResult:
    body: torch.Tensor  # bool (z, y, x), working resolution, holes (lungs, bowel) included
    tissue_core: torch.Tensor  # bool, the largest tissue component (before hole filling)


def body_mask(low: torch.Tensor, spacing_zyx, step=lambda f, m: None) -> BodyResult:
    """``low``: (z, y, x) HU at working resolution, canonical orientation.

    1. tissue = HU above -500; an in-plane opening removes thin shells (the table top, cables);
    2. the largest 3D component is the patient;
    3. holes are everything not connected to the anterior/posterior image edges or the corners:
       outside air (and the table) always reaches them, the lungs and bowel never do.  The side
       edges are ignored so that a field of view that cuts the body at the sides still works.
    """
    _, sy, sx = spacing_zyx
    tissue = low > TISSUE_HU
    ry, rx = ops.radius_vox(TABLE_OPEN_MM, sy), ops.radius_vox(TABLE_OPEN_MM, sx)
    opened = ops.dilate(ops.erode(tissue, 0, ry, rx), 0, ry, rx) & tissue
    step(0.3, "body: components")
    lab, n = ops.label_components(ops.to_numpy(opened))
    if n == 0:
        empty = torch.zeros_like(tissue)
        return BodyResult(empty, empty)
    core_np = lab == 1
    step(0.6, "body: outside air")
    bg_lab, _ = ops.label_components(~core_np)
    edge = np.zeros(bg_lab.shape[1:], dtype=bool)
    edge[0, :] = edge[-1, :] = True
    c = max(2, bg_lab.shape[2] // 16)
    edge[:c, :c] = edge[:c, -c:] = edge[-c:, :c] = edge[-c:, -c:] = True
    outside_ids = np.unique(bg_lab[:, edge])
    outside_ids = outside_ids[outside_ids > 0]
    outside = np.isin(bg_lab, outside_ids)
    body_lab, _ = ops.label_components(~outside)  # drop enclosed bits of the table at the side edges
    body_np = body_lab == 1
    dev = low.device
    return BodyResult(torch.from_numpy(body_np).to(dev), torch.from_numpy(core_np).to(dev))
