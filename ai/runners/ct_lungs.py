"""Left and right lung and the airway on a CT (torch for voxels, SimpleITK for components).

Candidates are the air-filled regions inside the body.  The trachea is found in
the most superior slices and grown at a strict threshold that adapts until it
stops leaking; what is left is told apart from bowel and stomach gas by more
than its HU: a lung is either large or reaches the superior edge of the scan
(abdominal CTs cut the lung bases), and its interior is parenchyma (vessels,
-950..-500 HU), not the homogeneous pure gas of bowel and stomach.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ai.runners import ct_ops as ops

AIR_HU = -400.0  # lung parenchyma, airway and gas are below
PURE_GAS_HU = -950.0
LUNG_MIN_ML = 2.0
LARGE_LUNG_ML = 250.0
TRACHEA_MAX_ML = 350.0


@dataclass
class LungResult:
    left: torch.Tensor  # bool, working resolution, holes (vessels, nodules) filled
    right: torch.Tensor
    airway: torch.Tensor
    rejected: list = field(default_factory=list)  # (volume mL, reason) of air regions not called lung


def _trachea_seed(low: np.ndarray, air: np.ndarray, spacing_zyx) -> np.ndarray | None:
    """A boolean seed mask: a round pure-gas region near the midline in the superior slices, or None."""
    sz, sy, sx = spacing_zyx
    nz = low.shape[0]
    top = range(nz - 1, max(-1, nz - 1 - max(3, int(30.0 / sz))), -1)  # the top 3 cm
    x_mid = None
    for k in top:
        sl = air[k] & (low[k] < PURE_GAS_HU)
        if not sl.any():
            continue
        lab, n = ops.label_components(sl[None])
        for c in range(1, n + 1):
            comp = lab[0] == c
            area = comp.sum() * sy * sx
            if not 80.0 <= area <= 800.0:  # trachea: ~1.2-3 cm across
                continue
            jj, ii = np.nonzero(comp)
            h, w = (np.ptp(jj) + 1) * sy, (np.ptp(ii) + 1) * sx
            if max(h, w) > 2.2 * min(h, w):
                continue
            body_cols = np.nonzero(air[k].any(axis=0) | (low[k] > -500).any(axis=0))[0]
            x_mid = 0.5 * (body_cols.min() + body_cols.max()) if body_cols.size else low.shape[2] / 2
            if abs(ii.mean() - x_mid) * sx > 40.0:
                continue
            seed = np.zeros_like(air)
            seed[k] = comp
            return seed
    return None


def _grow_airway(low: np.ndarray, air: np.ndarray, seed: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Region of pure gas connected to the seed; the threshold tightens until the region stops leaking."""
    for thr in (-930.0, -950.0, -970.0, -985.0):
        lab, _ = ops.label_components(air & (low < thr))
        ids = np.unique(lab[seed])
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        region = np.isin(lab, ids)
        if region.sum() * voxel_ml <= TRACHEA_MAX_ML:
            return region
    return np.zeros_like(air)


def lungs(low: torch.Tensor, body: torch.Tensor, spacing_zyx, step=lambda f, m: None) -> LungResult:
    """``low``: HU at working resolution, canonical orientation (z up, y posterior, x patient-left)."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    low_np = ops.to_numpy(low)
    air = ops.to_numpy((low < AIR_HU) & body)
    step(0.1, "lungs: airway")
    seed = _trachea_seed(low_np, air, spacing_zyx)
    airway = _grow_airway(low_np, air, seed, voxel_ml) if seed is not None else np.zeros_like(air)
    if airway.any():  # the lumen's partial-volume rim
        airway = ops.to_numpy(ops.dilate(torch.from_numpy(airway), 0, 1, 1)) & air
    step(0.3, "lungs: components")
    lab, n = ops.label_components(air & ~airway)
    nz = lab.shape[0]
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep, rejected = [], []
    top_ids = set(np.unique(lab[nz - 1])) - {0}
    interior = ops.to_numpy(ops.erode(torch.from_numpy(lab > 0), 0, 1, 1))
    for c in range(1, n + 1):
        ml = sizes[c] * voxel_ml
        if ml < LUNG_MIN_ML:
            break  # sorted by size
        comp = lab == c
        core = comp & interior
        vals = low_np[core] if core.sum() > 20 else low_np[comp]
        gas = float((vals < PURE_GAS_HU).mean())
        median = float(np.median(vals))
        large = ml >= LARGE_LUNG_ML
        superior = c in top_ids
        if not (large or superior):
            rejected.append((ml, "below the lungs and not reaching the top of the scan"))
            continue
        if not large and (gas > 0.5 or median < PURE_GAS_HU):
            rejected.append((ml, f"pure gas ({gas:.0%} below {PURE_GAS_HU:.0f} HU): bowel or stomach"))
            continue
        keep.append(c)
    step(0.6, "lungs: left and right")
    left, right = _split_sides(lab, keep, ops.to_numpy(body))
    dev = low.device
    left = ops.fill_holes_per_slice(left)
    right = ops.fill_holes_per_slice(right) & ~left

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    return LungResult(t(left), t(right), t(airway), rejected)


def _split_sides(lab: np.ndarray, keep: list[int], body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Assign lung components to the patient's left (+x) or right by their centroid against the body's midline."""
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    x_mid = 0.5 * (cols.min() + cols.max()) if cols.size else lab.shape[2] / 2
    left = np.zeros(lab.shape, bool)
    right = np.zeros(lab.shape, bool)
    for c in keep:
        comp = lab == c
        xs = np.nonzero(comp)[2]
        lo, hi = xs.min(), xs.max()
        if lo < x_mid - 5 and hi > x_mid + 5:
            # one region crossing the midline (lungs joined in front of the heart): split it
            part_left, part_right = _split_joined(comp, x_mid)
            left |= part_left
            right |= part_right
        elif xs.mean() > x_mid:
            left |= comp
        else:
            right |= comp
    return left, right


def _split_joined(comp: np.ndarray, x_mid: float) -> tuple[np.ndarray, np.ndarray]:
    """Erode until the region falls apart into a left and a right part, then grow them back inside it."""
    t = torch.from_numpy(comp)
    for r in range(1, 8):
        er = ops.to_numpy(ops.erode(t, 0, r, r))
        lab, n = ops.label_components(er)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        if sizes[1] < 0.1 * sizes[0]:
            continue
        xs = [np.nonzero(lab == c)[2].mean() for c in (1, 2)]
        seeds = torch.from_numpy(np.where(lab == 1, 1 + (xs[0] > xs[1]), np.where(lab == 2, 1 + (xs[1] > xs[0]), 0)))
        grown = seeds.float()
        for _ in range(r + 2):  # geodesic growth of both labels inside the region
            nxt = ops.max_pool(grown, 1, 3, 3)
            grown = torch.where((grown == 0) & t, nxt, grown)
        g = ops.to_numpy(grown)
        return g == 2, g == 1
    xs = np.arange(comp.shape[2])[None, None, :]
    return comp & (xs > x_mid), comp & (xs <= x_mid)
