"""Body outline on a CT, with the scanner table, a pad on it, clothing and outside air removed (torch + SimpleITK)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ai.runners import ct_ops as ops
from ai.runners.ct_table import table_mask

TISSUE_HU = -500.0  # skin/fat/muscle/bone are above, air and table foam below
TABLE_OPEN_MM = 3.5  # in-plane opening radius: the table's thin shells vanish, the torso stays
PAD_HU = -120.0  # beyond the table's top line, foam (pads, mattresses) is below this; skin and fat above


@dataclass
class BodyResult:
    body: torch.Tensor  # bool (z, y, x), working resolution, holes (lungs, bowel) included
    tissue_core: torch.Tensor  # bool, the largest tissue component (before hole filling)
    table: torch.Tensor | None = None  # bool, working resolution: beyond the table's top line (the zone), or None

    def table_at(self, hu: torch.Tensor, f: int) -> torch.Tensor | None:
        """What is table or pad on a grid ``f`` times finer in-plane than the working one: foam in the zone."""
        if self.table is None:
            return None
        return ops.expand_in_plane(self.table, f, hu.shape[1:]) & (hu < PAD_HU)


def body_mask(low: torch.Tensor, spacing_zyx, step=lambda f, m: None) -> BodyResult:
    """``low``: (z, y, x) HU at working resolution, canonical orientation.

    1. tissue = HU above -500, less the foam of the table and of a pad on it (below -120 HU, beyond
       the table's top line seen beside the patient and carried under the body: ``ct_table``; a
       patient sinks into a pad, so skin and fat beyond the line stay); an in-plane opening removes
       thin shells (the table top, cables, clothing);
    2. the largest 3D component is the patient;
    3. holes are everything not connected to the anterior/posterior image edges or the corners:
       outside air (and the table) always reaches them, the lungs and bowel never do.  The side
       edges are ignored so that a field of view that cuts the body at the sides still works.
    """
    _, sy, sx = spacing_zyx
    tissue = low > TISSUE_HU
    table_np = table_mask(ops.to_numpy(tissue), spacing_zyx)
    table = None
    if table_np is not None:
        table = torch.from_numpy(table_np).to(low.device)
        tissue = tissue & ~(table & (ops.smooth_in_plane(low, 3) < PAD_HU))
    ry, rx = ops.radius_vox(TABLE_OPEN_MM, sy), ops.radius_vox(TABLE_OPEN_MM, sx)
    opened = ops.dilate(ops.erode(tissue, 0, ry, rx), 0, ry, rx) & tissue
    step(0.3, "body: components")
    lab, n = ops.label_components(ops.to_numpy(opened))
    if n == 0:
        empty = torch.zeros_like(tissue)
        return BodyResult(empty, empty, table)
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
    return BodyResult(torch.from_numpy(body_np).to(dev), torch.from_numpy(core_np).to(dev), table)
