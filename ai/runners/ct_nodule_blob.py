"""How much of a blob a nodule candidate is at its own scale, with and without the thin vessels through it.

The Hessian of the candidate's density, smoothed at sigma = 0.6, 0.75 and 0.95 of its radius, is taken at its
centre: the least over the largest curvature is 1 for a ball, 0 for a straight tube and in between for a
branch point (the best over the scales).  Only the 3×3×3 smoothed values around the centre are needed, so the
separable Gaussian (scipy's kernel, truncated at 3 sigma, edges repeated) is applied as three small weight
matrices instead of filtering the whole box.

A nodule that a vessel runs through (juxtavascular) is a ball with a much narrower tube in it, and the tube
makes the Hessian call it tubular.  So the density is also opened (grey-level erosion then dilation) with a
ball of half the candidate's radius: tissue narrower than the candidate's radius (its thin vessels) goes, a
ball of the candidate's radius stays whole.  A vessel's bend or branch point is about as wide as its vessels:
the opening keeps those vessels (still tubular) or removes the candidate with them (nothing left to measure).
"""
from __future__ import annotations

import numpy as np

PSF_SPACING = 0.6  # the acquisition's blur along an axis, as a fraction of its spacing (Gaussian sigma)
SCALES = (0.6, 0.75, 0.95)  # smoothing sigma, as fractions of the candidate's radius
OPEN_RADIUS = 0.5  # the opening's ball, as a fraction of the candidate's radius
KEPT_FILLED = 0.6  # the opened density must still fill this much of the candidate's ball to be measured
OPEN_STEP = 0.25  # the opening's grid: about this many radii (never finer than the image's)


def _sigmas(radius: float, f: float, sp: np.ndarray) -> np.ndarray:
    """Per-axis smoothing (voxels) that makes the total blur isotropic at f × radius: the scanner already
    blurred each axis by about PSF_SPACING of its spacing (thick slices: much more along z), so that a ball on
    thick slices stays a ball and is not taken for a tube running along z."""
    s_mm = f * radius
    return np.sqrt(np.maximum(s_mm ** 2 - (PSF_SPACING * sp) ** 2, (0.5 * s_mm) ** 2)) / sp


def _gauss_rows(sigma: float, c: int, n: int) -> np.ndarray:
    """(3, n) weights: the Gaussian smoothing along one axis of length n at c - 1, c and c + 1."""
    lw = int(3.0 * sigma + 0.5)
    x = np.arange(-lw, lw + 1)
    k = np.exp(-0.5 / (sigma * sigma) * x ** 2)
    k /= k.sum()
    rows = np.zeros((3, n))
    for r in range(3):
        np.add.at(rows[r], np.clip(c - 1 + r + x, 0, n - 1), k)
    return rows


def _ratio_at(dens: np.ndarray, c, sig: np.ndarray, sp: np.ndarray) -> float:
    """Least over largest curvature (0..1) of ``dens`` smoothed by ``sig`` (voxels) at ``c``; 0 when not a peak."""
    rz, ry, rx = (_gauss_rows(s, int(v), n) for s, v, n in zip(sig, c, dens.shape))
    g = np.einsum("az,zbc->abc", rz, np.einsum("by,zyc->zbc", ry, dens @ rx.T))
    h = np.zeros((3, 3))
    eye = np.eye(3, dtype=int)
    one = np.ones(3, dtype=int)
    for a in range(3):
        e = eye[a]
        h[a, a] = (g[tuple(one + e)] - 2 * g[1, 1, 1] + g[tuple(one - e)]) / sp[a] ** 2
        for b in range(a + 1, 3):
            f = eye[b]
            h[a, b] = h[b, a] = (g[tuple(one + e + f)] - g[tuple(one + e - f)] - g[tuple(one - e + f)]
                                 + g[tuple(one - e - f)]) / (4 * sp[a] * sp[b])
    lam = np.linalg.eigvalsh(h)  # ascending: lam[0] the most negative
    if lam[0] >= 0 or lam[2] >= 0:
        return 0.0
    return float(np.clip(lam[2] / lam[0], 0.0, 1.0))


def _ball(radius_mm: float, sp: np.ndarray) -> np.ndarray:
    half = np.floor(radius_mm / sp).astype(int)
    zz, yy, xx = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, sp)), indexing="ij")
    return zz ** 2 + yy ** 2 + xx ** 2 <= radius_mm ** 2 + 1e-9


def _crop(sub: np.ndarray, c, radius: float, sp: np.ndarray, margin: np.ndarray):
    """The part of ``sub`` that the smoothing at the centre reaches (3 sigma, +1 voxel for the differences, +
    ``margin``), as density 0..1, the centre in it, and the smoothing (voxels) per scale."""
    sigs = [_sigmas(radius, f, sp) for f in SCALES]
    half = np.ceil(3.0 * np.max(sigs, axis=0) + 0.5).astype(int) + 1 + margin
    lo = np.maximum(c - half, 0)
    crop = sub[tuple(slice(a, b + 1) for a, b in zip(lo, c + half))]
    return np.clip((crop.astype(np.float32) + 850.0) / 300.0, 0.0, 1.0), c - lo, sigs


def _centre(sub: np.ndarray, c) -> np.ndarray | None:
    c = np.asarray([int(v) for v in c])
    return c if all(1 <= v < n - 1 for v, n in zip(c, sub.shape)) else None


def blobness(sub: np.ndarray, c, radius: float, sp: np.ndarray) -> float:
    """Blobness (0..1) of the candidate as it is.  ``sub``: HU around the candidate, ``c`` its centre (voxel in
    ``sub``), ``radius`` mm, ``sp`` the spacing (mm, z y x)."""
    c = _centre(sub, c)
    if c is None:
        return 0.0
    dens, c, sigs = _crop(sub, c, radius, sp, np.zeros(3, int))
    return max(_ratio_at(dens, c, s, sp) for s in sigs)


def opened_blobness(sub: np.ndarray, c, radius: float, sp: np.ndarray) -> float | None:
    """Blobness once tissue narrower than the candidate's radius is opened away, or None when the opening
    leaves less than KEPT_FILLED of its ball (the candidate was as thin as its vessels).  Measured on a grid
    of about OPEN_STEP radii (every f-th voxel through the centre): the opening's ball then holds a few voxels
    whatever the candidate's size, and the smoothing of at least 0.6 radii does not see the coarser grid."""
    from scipy import ndimage

    c = _centre(sub, c)
    if c is None:
        return None
    f = np.maximum(1, np.floor(OPEN_STEP * radius / sp)).astype(int)
    sp_f = sp * f
    foot = _ball(OPEN_RADIUS * radius, sp_f)
    dens, c, sigs = _crop(sub, c, radius, sp, (2 * (np.array(foot.shape) // 2) + 1) * f)
    start = c % f
    dens = dens[tuple(slice(a, None, b) for a, b in zip(start, f))]
    c = (c - start) // f
    sigs = [s / f for s in sigs]
    ball = _ball(radius, sp_f)
    bh = np.array(ball.shape) // 2
    if np.any(c - bh < 0) or np.any(c + bh >= dens.shape) or np.any(c < 1) or np.any(c >= np.array(dens.shape) - 1):
        return None
    opened = ndimage.grey_opening(dens, footprint=foot, mode="nearest")
    if float(opened[tuple(slice(v - h, v + h + 1) for v, h in zip(c, bh))][ball].mean()) < KEPT_FILLED:
        return None
    return max(_ratio_at(opened, c, s, sp_f) for s in sigs)
