"""Dense volume operations in torch (on the run's device) and connected components in SimpleITK.

The built-in CT models are classical image analysis.  Their per-voxel work —
smoothing, thresholds, resampling, morphology — runs here as torch tensor
operations, on the GPU when there is one.  Connected-component labelling and
per-slice hole filling are graph operations that torch lacks; they run in
SimpleITK on the CPU (which releases the GIL) on boolean masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from radview_base.geometry import Geometry


# ----------------------------------------------------------------- orientation
@dataclass(frozen=True)
class Canonical:
    """Maps an array to canonical axes (z: inferior→superior, y: anterior→posterior, x: right→left) and back."""

    perm: tuple[int, int, int]  # canonical axis a comes from array axis perm[a]
    flip: tuple[bool, bool, bool]  # flip canonical axis a after permuting
    spacing_zyx: tuple[float, float, float]  # canonical spacing

    @classmethod
    def from_grid(cls, grid: Geometry) -> "Canonical":
        d = grid.direction_matrix  # columns: LPS direction of array x, y, z
        # array axis (z, y, x) -> LPS direction vector
        axis_dirs = [d[:, 2], d[:, 1], d[:, 0]]
        # canonical z follows S (+LPS z), y follows P (+LPS y), x follows L (+LPS x)
        perm, flip = [], []
        used = set()
        for lps in (2, 1, 0):
            best = max((a for a in range(3) if a not in used), key=lambda a: abs(axis_dirs[a][lps]))
            used.add(best)
            perm.append(best)
            flip.append(bool(axis_dirs[best][lps] < 0))
        spacing = tuple(grid.spacing_zyx[a] for a in perm)
        return cls(tuple(perm), tuple(flip), spacing)

    def to_canonical(self, a: np.ndarray) -> np.ndarray:
        """(z, y, x) array -> canonical orientation (a view, no copy)."""
        t = np.transpose(a, self.perm)
        for i, f in enumerate(self.flip):
            if f:
                t = np.flip(t, axis=i)
        return t

    def from_canonical(self, a: np.ndarray) -> np.ndarray:
        for i, f in enumerate(self.flip):
            if f:
                a = np.flip(a, axis=i)
        inv = np.argsort(self.perm)
        return np.ascontiguousarray(np.transpose(a, inv))

    def index_to_original(self, idx_zyx, shape_canonical) -> np.ndarray:
        """Canonical (k, j, i) index (fractional ok) -> index in the original array order."""
        idx = np.asarray(idx_zyx, dtype=float).copy()
        for a, f in enumerate(self.flip):
            if f:
                idx[..., a] = shape_canonical[a] - 1 - idx[..., a]
        out = np.empty_like(idx)
        for a in range(3):
            out[..., self.perm[a]] = idx[..., a]
        return out


# ------------------------------------------------------------------ resampling
def in_plane_factor(spacing_yx: tuple[float, float], target_mm: float = 1.8) -> int:
    """Integer in-plane reduction so that the working pixel is about ``target_mm``."""
    return max(1, int(round(target_mm / max(min(spacing_yx), 1e-3))))


def reduce_in_plane(hu: torch.Tensor, f: int) -> torch.Tensor:
    """(z, y, x) float tensor averaged over f×f in-plane blocks (edge rows/cols replicated to fit)."""
    if f == 1:
        return hu
    z, y, x = hu.shape
    py, px = (-y) % f, (-x) % f
    t = hu[None]
    if py or px:
        t = F.pad(t, (0, px, 0, py), mode="replicate")
    return F.avg_pool2d(t[0][:, None], f)[:, 0]


def expand_in_plane(mask: torch.Tensor, f: int, shape_yx: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour inverse of :func:`reduce_in_plane` (bool or integer tensors)."""
    if f == 1:
        return mask
    t = mask.repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)
    return t[:, : shape_yx[0], : shape_yx[1]]


def smooth_in_plane(hu: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Box mean over k×k in-plane (a light denoise that keeps z resolution)."""
    if k <= 1:
        return hu
    return F.avg_pool2d(hu[:, None], k, stride=1, padding=k // 2, count_include_pad=False)[:, 0]


def gaussian_in_plane(hu: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian over y and x (``sigma_px`` in pixels; none below 0.2), edges replicated: a
    weighted sum of shifted views (faster than a convolution for these short kernels on the CPU)."""
    if sigma_px < 0.2:
        return hu
    r = max(1, int(np.ceil(3.0 * sigma_px)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma_px) ** 2)
    g /= g.sum()
    out = hu
    for axis in (1, 2):
        n = out.shape[axis]
        p = F.pad(out[None], (r, r, 0, 0) if axis == 2 else (0, 0, r, r), mode="replicate")[0]
        acc = p.narrow(axis, 0, n) * float(g[0])
        for i in range(1, 2 * r + 1):
            acc.add_(p.narrow(axis, i, n), alpha=float(g[i]))
        out = acc
    return out


def noise_sd(hu: torch.Tensor, pixel_mm: float = 1.0, lo: float = -60.0, hi: float = 120.0) -> float:
    """Noise standard deviation (HU) in soft tissue, from the standard deviations of 5×5 in-plane
    windows (3×3 on pixels of 1.5 mm and more) whose mean lies between ``lo`` and ``hi`` (fat, muscle,
    organs), on about 24 slices.  Such windows see noise that is correlated over a pixel or two, as a
    reconstruction's is."""
    sub = hu[:: max(1, hu.shape[0] // 24)]
    k = 5 if pixel_mm < 1.5 else 3
    mean = smooth_in_plane(sub, k)
    sq = smooth_in_plane(sub * sub, k)
    sd = (sq - mean * mean).clamp_min(0.0).sqrt()[:, k // 2:-(k // 2):3, k // 2:-(k // 2):3]
    m = mean[:, k // 2:-(k // 2):3, k // 2:-(k // 2):3]
    v = sd[(m > lo) & (m < hi)]
    if v.numel() < 200:
        return 0.0
    # a low quantile: windows that straddle an edge or hold texture only add to the upper part
    return float(torch.quantile(v[torch.randperm(v.numel())[:200000]] if v.numel() > 200000 else v, 0.3)) / 0.88


def denoise_sigma_px(noise_hu: float, pixel_mm: float, target_hu: float = 12.0, max_mm: float = 1.2) -> float:
    """In-plane Gaussian sigma (pixels) that brings white noise of ``noise_hu`` down to about ``target_hu``
    (a 2D Gaussian divides it by 2·sqrt(pi)·sigma), at most ``max_mm``."""
    if noise_hu <= target_hu:
        return 0.0
    return float(min(noise_hu / (target_hu * 2.0 * np.sqrt(np.pi)), max_mm / max(pixel_mm, 1e-3)))


# ------------------------------------------------------------------ morphology
def _box_max_cpu(a: np.ndarray, kz: int, ky: int, kx: int) -> np.ndarray:
    """Separable box maximum with scipy's ``maximum_filter1d`` (van Herk/Gil-Werman, O(1) per voxel whatever the
    window). ``mode="nearest"`` repeats the edge value, which for a maximum is the same as leaving the outside out
    (torch's ``max_pool3d`` padding). Measured on 160 × 256 × 256 masks, 2 shared cores: 0.11–0.13 s where
    ``max_pool3d`` on float took 0.35–0.45 s, bit for bit the same; torch stays the path on a GPU."""
    from scipy import ndimage

    for axis, k in ((2, kx), (1, ky), (0, kz)):
        if k > 1:
            a = ndimage.maximum_filter1d(a, k, axis=axis, mode="nearest")
    return a


def max_pool(m: torch.Tensor, kz: int, ky: int, kx: int) -> torch.Tensor:
    """Box maximum over a ``kz × ky × kx`` window (odd sizes), the outside left out; a boolean mask comes back as
    float 0/1."""
    if m.device.type == "cpu":
        a = m.numpy()
        out = _box_max_cpu(a.view(np.uint8) if m.dtype == torch.bool else a, kz, ky, kx)
        t = torch.from_numpy(np.ascontiguousarray(out))
        return t.float() if m.dtype == torch.bool else t
    t = m[None, None].float() if m.dtype == torch.bool else m[None, None]
    # separable box max: cheaper than one kz*ky*kx window
    if kx > 1:
        t = F.max_pool3d(t, (1, 1, kx), stride=1, padding=(0, 0, kx // 2))
    if ky > 1:
        t = F.max_pool3d(t, (1, ky, 1), stride=1, padding=(0, ky // 2, 0))
    if kz > 1:
        t = F.max_pool3d(t, (kz, 1, 1), stride=1, padding=(kz // 2, 0, 0))
    return t[0, 0]


def dilate(mask: torch.Tensor, rz: int, ry: int, rx: int) -> torch.Tensor:
    """Binary dilation by a (2r+1) box."""
    if mask.device.type == "cpu" and mask.dtype == torch.bool:
        out = _box_max_cpu(mask.numpy().view(np.uint8), 2 * rz + 1, 2 * ry + 1, 2 * rx + 1)
        return torch.from_numpy(np.ascontiguousarray(out).view(bool))
    return max_pool(mask, 2 * rz + 1, 2 * ry + 1, 2 * rx + 1) > 0.5


def erode(mask: torch.Tensor, rz: int, ry: int, rx: int) -> torch.Tensor:
    """Binary erosion by a (2r+1) box (outside the volume counts as foreground)."""
    return ~dilate(~mask, rz, ry, rx)


def radius_vox(mm: float, spacing: float) -> int:
    return max(0, int(round(mm / spacing)))


# ------------------------------------------------------- connected components
def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy()


def label_components(mask: np.ndarray, full: bool = False) -> tuple[np.ndarray, int]:
    """Connected components of a boolean (z, y, x) array: (labels uint32, count), largest first."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(mask, dtype=np.uint8))
    cc = sitk.ConnectedComponent(img, full)
    cc = sitk.RelabelComponent(cc, sortByObjectSize=True)
    lab = sitk.GetArrayFromImage(cc)
    return lab, int(lab.max())


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice (holes that do not reach the slice's border)."""
    out = np.empty_like(mask, dtype=bool)
    for k in range(mask.shape[0]):
        if not mask[k].any():
            out[k] = False
            continue
        img = sitk.GetImageFromArray(mask[k].astype(np.uint8))
        filled = sitk.BinaryFillhole(img, False, 1)
        out[k] = sitk.GetArrayFromImage(filled) > 0
    return out


def refine_to_full(coarse: torch.Tensor, f: int, full_shape_yx, inside_full: torch.Tensor,
                   band: int = 1) -> torch.Tensor:
    """Full-resolution mask from a working-resolution one: its eroded core as is, and in a band of
    ``band`` working voxels around its edge only the full-resolution voxels where ``inside_full`` holds."""
    if f == 1 and band == 0:
        return coarse & inside_full
    core = expand_in_plane(erode(coarse, 0, band, band), f, full_shape_yx)
    outer = expand_in_plane(dilate(coarse, 0, band, band), f, full_shape_yx)
    return core | (outer & inside_full)
