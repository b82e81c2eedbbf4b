"""Bone on a CT: dense cortex and trabecular bone, with the marrow it encloses (torch + SimpleITK).

Seeds are voxels above 320 HU after a light in-plane smoothing (contrast-filled vessels
in a portal-venous CT stay below that); voxels above 180 HU within 12 mm (in-plane) of a seed
and connected to one join them (trabecular bone under a thin cortex); the cortical ring is closed
by 3 mm in-plane and the marrow it encloses in
each axial slice is filled when it is denser than 100 HU (so the spinal canal stays
out); specks under 0.1 mL are dropped.
"""
from __future__ import annotations

import numpy as np
import torch

from ai.runners import ct_ops as ops

SEED_HU = 320.0
GROW_HU = 180.0
CLOSE_MM = 3.0
GROW_MM = 12.0
MARROW_HU = 100.0
MIN_ML = 0.1


def bone_mask(hu_s: torch.Tensor, body_full: torch.Tensor, spacing_zyx, step=lambda f, m: None) -> torch.Tensor:
    """``hu_s``: lightly smoothed full-resolution HU (canonical); ``body_full``: the body mask on the same grid."""
    seeds = (hu_s > SEED_HU) & body_full
    _, sy, sx = spacing_zyx
    # trabecular bone under a thin cortex: denser than 180 HU, within 12 mm of a seed and connected to one
    ry, rx = ops.radius_vox(GROW_MM, sy), ops.radius_vox(GROW_MM, sx)
    near_np = ops.to_numpy(ops.dilate(seeds, 0, ry, rx) & (hu_s > GROW_HU) & body_full)
    lab, n = ops.label_components(near_np)
    if n:
        ids = np.unique(lab[ops.to_numpy(seeds)])
        near_np = np.isin(lab, ids[ids > 0])
    step(0.3, "bone: marrow")
    # close gaps in the cortical ring (vessel foramina) before filling what it encloses
    ry, rx = ops.radius_vox(CLOSE_MM, sy), ops.radius_vox(CLOSE_MM, sx)
    ring = ops.to_numpy(ops.erode(ops.dilate(torch.from_numpy(near_np), 0, ry, rx), 0, ry, rx))
    filled = ops.fill_holes_per_slice(ring)
    marrow = filled & ~near_np & (ops.to_numpy(hu_s) > MARROW_HU)
    bone = near_np | marrow
    step(0.8, "bone: components")
    lab, n = ops.label_components(bone)
    if n:
        sizes = np.bincount(lab.ravel())
        min_vox = MIN_ML * 1000.0 / float(np.prod(spacing_zyx))
        small = np.nonzero(sizes < min_vox)[0]
        small = small[small > 0]
        if small.size:
            bone &= ~np.isin(lab, small)
    return torch.from_numpy(bone).to(hu_s.device)
