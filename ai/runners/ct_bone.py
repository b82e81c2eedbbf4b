"""Bone on a CT: cortex and marrow, whole bones at any slice thickness and pixel size (torch + SimpleITK).

Densities are read on the series' HU denoised only as much as its noise needs
(``ct_models._Analysis.hs``), never smoothed by a fixed number of voxels, so that a rib keeps
its density on 3 mm pixels.  Distances are in millimetres; the wide neighbourhood steps run on a
coarser in-plane grid (``f`` times the pixel), the edges at full resolution.

1. Seeds are voxels denser than 300 HU (cortex, dense trabecular bone) inside the body.
2. Bone grows from the seeds through voxels denser than 200 HU, within 25 mm (in-plane) of one.
3. Blood is not bone: contrast-filled vessels and heart chambers that the growth reached (through
   a dense catheter, or where a vessel touches a vertebra) are thick and of one density.  In each
   axial slice the grown region's thick parts (an in-plane opening of 5 mm) are judged one by
   one: a part with a small standard deviation (the noise's) and no voxel 150 HU above its mean is
   blood, and goes with its rim of voxels no denser than it; bone always mixes cortex, trabeculae
   and marrow.
4. Marrow: what the closed (3 mm) outline of the bone encloses in each axial slice, where it is
   denser than 100 HU (the spinal canal stays out; fatty marrow of the elderly may be missed).
5. The edge is at half maximum: in the bone's outer 2 mm a voxel stays only where it is at least
   half-way from soft tissue (40 HU) to the densest bone within 2 mm (a thin, blurred cortex is
   as wide as its half-maximum: the rule the reference masks follow).
6. Specks under 0.1 mL are dropped.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ai.runners import ct_ops as ops

SEED_HU = 300.0
GROW_HU = 200.0
GROW_MM = 25.0
CORE_OPEN_MM = 5.0
BLOOD_MIN_MM2 = 50.0  # thick parts of a slice smaller than this are not judged
BLOOD_MAX_HU = 450.0  # blood (contrast-filled, CT angiography included) has its mean below this
BLOOD_SD_HU = 35.0  # blood: standard deviation below this (more on a noisy series)
CORTEX_ABOVE_HU = 150.0
BLOOD_MAX_DENSE = 0.015  # blood: fewer voxels than this fraction 150 HU above its mean
BLOOD_RIM_HU = 40.0  # near blood, voxels up to this much above its densest are blood
BEYOND_BLOOD_HU = 30.0  # once blood is found, bone must hold voxels this much denser than the blood
CLOSE_MM = 3.0
MARROW_HU = 100.0
EDGE_MM = 2.0
SOFT_TISSUE_HU = 40.0
MIN_ML = 0.1


def bone_mask(hu_s: torch.Tensor, body_full: torch.Tensor, spacing_zyx, noise_hu: float = 15.0,
              f: int = 1, step=lambda f_, m: None) -> torch.Tensor:
    """``hu_s``: denoised full-resolution HU (canonical); ``body_full``: the body mask on the same grid;
    ``noise_hu``: the series' noise before denoising; ``f``: the in-plane factor of the coarse grid."""
    sz, sy, sx = spacing_zyx
    shape_yx = tuple(hu_s.shape[1:])
    vox_ml = float(np.prod(spacing_zyx)) / 1000.0
    seeds = (hu_s > SEED_HU) & body_full
    # 2. within GROW_MM of a seed (on a grid of about 5 mm: a wide neighbourhood needs no detail)
    fc = max(1, int(round(5.0 / min(sy, sx))))
    seeds_c = _any_pool(seeds, fc)
    near_c = ops.dilate(seeds_c, 0, max(1, int(round(GROW_MM / (sy * fc)))), max(1, int(round(GROW_MM / (sx * fc)))))
    near = ops.expand_in_plane(near_c, fc, shape_yx) & (hu_s > GROW_HU) & body_full
    lab, n = ops.label_components(ops.to_numpy(near))
    if n:
        ids = np.zeros(n + 1, bool)
        ids[np.unique(lab[ops.to_numpy(seeds)])] = True
        ids[0] = False
        grown = ids[lab]
    else:
        grown = np.zeros(lab.shape, bool)
    g = torch.from_numpy(grown).to(hu_s.device)
    step(0.3, "bone: blood")
    # 3. blood, judged on the coarse grid (f), its rim at full resolution
    sp_low = (sz, sy * f, sx * f)
    g_low = ops.reduce_in_plane(g.float(), f) >= 0.5 if f > 1 else g
    hu_low = ops.reduce_in_plane(hu_s, f)
    blood_low, top = _blood(g_low, hu_low, sp_low, noise_hu / f)
    blood = None
    if blood_low is not None:
        ry, rx = max(1, ops.radius_vox(CORE_OPEN_MM, sp_low[1])), max(1, ops.radius_vox(CORE_OPEN_MM, sp_low[2]))
        zone = ops.expand_in_plane(ops.dilate(blood_low, 0, ry + 1, rx + 1), f, shape_yx)
        core = ops.expand_in_plane(blood_low, f, shape_yx)
        blood = (core | (zone & (hu_s < top + BLOOD_RIM_HU))) & g
        g = g & ~blood
        # what the growth reached only through blood (strands along chamber walls, noise in blood) has no
        # voxel denser than that blood: only parts with one stay
        lab, n = ops.label_components(ops.to_numpy(g))
        if n:
            ids = np.zeros(n + 1, bool)
            ids[np.unique(lab[ops.to_numpy(g & (hu_s > max(SEED_HU, top + BEYOND_BLOOD_HU)))])] = True
            ids[0] = False
            g = torch.from_numpy(ids[lab]).to(hu_s.device)
    step(0.5, "bone: marrow")
    # 4. marrow: holes of the closed outline, on the coarse grid
    gl = _any_pool(g, f) if f > 1 else g
    ry, rx = max(1, ops.radius_vox(CLOSE_MM, sp_low[1])), max(1, ops.radius_vox(CLOSE_MM, sp_low[2]))
    ring = ops.to_numpy(ops.erode(ops.dilate(gl, 0, ry, rx), 0, ry, rx))
    filled = torch.from_numpy(ops.fill_holes_per_slice(ring)).to(hu_s.device)
    if blood_low is not None:
        filled &= ~ops.dilate(blood_low, 0, 1, 1)
    marrow = ops.expand_in_plane(filled, f, shape_yx) & (hu_s > MARROW_HU) & body_full
    if blood is not None:
        marrow &= ~blood
    bone = g | marrow
    step(0.8, "bone: edge")
    # 5. the edge at half maximum
    ry, rx = max(1, ops.radius_vox(EDGE_MM, sy)), max(1, ops.radius_vox(EDGE_MM, sx))
    peak = ops.max_pool(torch.where(bone, hu_s, torch.full_like(hu_s, -1024.0)), 1, 2 * ry + 1, 2 * rx + 1)
    inner = ops.erode(bone, 0, ry, rx)
    bone &= inner | (hu_s >= 0.5 * (peak + SOFT_TISSUE_HU))
    step(0.9, "bone: components")
    bone_np = ops.to_numpy(bone)
    lab, n = ops.label_components(bone_np)
    if n:
        sizes = np.bincount(lab.ravel())
        bone_np &= (sizes >= MIN_ML / vox_ml)[lab] & (lab > 0)
    return torch.from_numpy(bone_np).to(hu_s.device)


def _any_pool(mask: torch.Tensor, f: int) -> torch.Tensor:
    """True where any voxel of an f×f in-plane block is (edge blocks padded with False)."""
    if f == 1:
        return mask
    z, y, x = mask.shape
    t = F.pad(mask.float()[:, None], (0, (-x) % f, 0, (-y) % f))
    return F.max_pool2d(t, f)[:, 0] > 0.5


def _blood(grown: torch.Tensor, hu: torch.Tensor, spacing_zyx, noise_hu: float):
    """(blood mask, its densest HU) on this grid, or (None, 0): the grown region's thick parts, judged
    slice by slice (an aorta never merges with a vertebra in 2D), that are blood: one density (a
    standard deviation below the noise's allowance, no voxel 150 HU above the mean), below 450 HU."""
    from scipy import ndimage

    sz, sy, sx = spacing_zyx
    ry, rx = max(1, ops.radius_vox(CORE_OPEN_MM, sy)), max(1, ops.radius_vox(CORE_OPEN_MM, sx))
    # noise pinholes closed on a fine grid (a blood pool is one piece); a coarse grid has none
    solid = ops.erode(ops.dilate(grown, 0, 1, 1), 0, 1, 1) if min(sy, sx) < 1.2 else grown
    cores = ops.to_numpy(ops.dilate(ops.erode(solid, 0, ry, rx), 0, ry, rx) & solid)
    flat2d = np.zeros((3, 3, 3), bool)
    flat2d[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(cores, structure=flat2d)
    if n == 0:
        return None, 0.0
    sel = lab > 0
    lv = lab[sel]
    v = ops.to_numpy(hu)[sel].astype(np.float64)
    cnt = np.bincount(lv, minlength=n + 1).astype(np.float64)
    mean = np.bincount(lv, v, minlength=n + 1) / np.maximum(cnt, 1)
    sd = np.sqrt(np.maximum(np.bincount(lv, v * v, minlength=n + 1) / np.maximum(cnt, 1) - mean ** 2, 0.0))
    dense = np.bincount(lv, v > mean[lv] + CORTEX_ABOVE_HU, minlength=n + 1) / np.maximum(cnt, 1)
    sd_max = BLOOD_SD_HU + 0.5 * max(0.0, noise_hu - 15.0)
    is_blood = (cnt * sy * sx >= BLOOD_MIN_MM2) & (mean < BLOOD_MAX_HU) & (sd < sd_max) & (dense < BLOOD_MAX_DENSE)
    is_blood[0] = False
    if not is_blood.any():
        return None, 0.0
    top = float(np.max(mean[is_blood] + 1.3 * sd[is_blood]))
    return torch.from_numpy(is_blood[lab]).to(grown.device), top
