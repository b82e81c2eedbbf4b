"""Lung nodule candidates: a multi-scale Hessian "dot" filter inside the lungs, then per-candidate segmentation.

Classical computer-aided detection (Li, Sone and Doi, Med. Phys. 2003): at each scale
the Hessian of the Gaussian-smoothed CT is computed with separable derivative
convolutions (torch, on the run's device); a voxel whose three eigenvalues are all
strongly negative is the centre of a bright blob, while vessels (one eigenvalue near
zero) and walls (two) answer weakly.  Peaks of the best scale-normalised response
inside the lungs are segmented by a local threshold and measured; compactness and
isolation from the surrounding vessels give the score.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALES_MM = (1.6, 2.4, 3.4, 4.8, 6.8)
CANDIDATE_HU = -750.0  # denser than aerated lung
MIN_DIAMETER_MM = 3.0
MAX_DIAMETER_MM = 35.0
MIN_RESPONSE = 0.03
SUBSOLID_HU = -300.0
MIN_REPORT_MM = 5.0  # candidates are reported from 5 mm (the target is nodules of 6 mm and more)
MAX_SHELL = 0.12  # density on the shell at 1.5-2 radii: vessels leaving a blob raise it
MIN_PLATEAU = 0.66  # thickness at 3/4 contrast over diameter: nodules are plateaus, blurred twigs are not
MAX_ELONGATION = 1.8


def _kernels(sigma_vox: float, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r = max(1, int(math.ceil(3.0 * sigma_vox)))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    g = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    g = g / g.sum()
    g1 = -x / sigma_vox ** 2 * g
    g2 = (x ** 2 / sigma_vox ** 4 - 1.0 / sigma_vox ** 2) * g
    return g, g1, g2


def _conv_axis(t: torch.Tensor, k: torch.Tensor, axis: int) -> torch.Tensor:
    """1D convolution of a (B, 1, Z, Y, X) tensor along axis 0 (z), 1 (y) or 2 (x), edges replicated."""
    n = k.numel()
    shape = [1, 1, 1, 1, 1]
    shape[2 + axis] = n
    pad = [0, 0, 0, 0, 0, 0]
    pad[4 - 2 * axis] = pad[5 - 2 * axis] = n // 2
    return F.conv3d(F.pad(t, tuple(pad), mode="replicate"), k.to(t.dtype).view(shape))


def hessian_blobness(image: torch.Tensor, spacing_zyx, scales_mm=SCALES_MM) -> torch.Tensor:
    """(B, 1, Z, Y, X) density batch -> (B, S, Z, Y, X) scale-normalised dot response per scale.

    Scales of more than two voxels are computed on a grid halved in-plane and interpolated back."""
    out = []
    full = image.shape[2:]
    half = F.avg_pool3d(image, (1, 2, 2), ceil_mode=True) if min(image.shape[3:]) >= 4 else None
    for s in scales_mm:
        coarse = half is not None and s / min(spacing_zyx[1:]) >= 2.0
        img = half if coarse else image
        sp = (spacing_zyx[0], spacing_zyx[1] * 2, spacing_zyx[2] * 2) if coarse else spacing_zyx
        dot = _dot_response(img, sp, s)
        if coarse:
            dot = F.interpolate(dot, size=full, mode="trilinear", align_corners=False)
        out.append(dot)
    return torch.cat(out, dim=1)


def _dot_response(image: torch.Tensor, spacing_zyx, s: float) -> torch.Tensor:
    """Gaussian smoothing at scale ``s`` mm (three separable passes), Hessian by central differences."""
    g = image
    for axis, sp in enumerate(spacing_zyx):
        g = _conv_axis(g, _kernels(s / sp, image.device)[0], axis)
    p = F.pad(g, (1, 1, 1, 1, 1, 1), mode="replicate")
    hz, hy, hx = spacing_zyx
    c = p[:, :, 1:-1, 1:-1, 1:-1]

    def sh(dz, dy, dx):
        z0, y0, x0 = 1 + dz, 1 + dy, 1 + dx
        return p[:, :, z0:z0 + c.shape[2], y0:y0 + c.shape[3], x0:x0 + c.shape[4]]

    hzz = (sh(1, 0, 0) - 2 * c + sh(-1, 0, 0)) / (hz * hz)
    hyy = (sh(0, 1, 0) - 2 * c + sh(0, -1, 0)) / (hy * hy)
    hxx = (sh(0, 0, 1) - 2 * c + sh(0, 0, -1)) / (hx * hx)
    hzy = (sh(1, 1, 0) - sh(1, -1, 0) - sh(-1, 1, 0) + sh(-1, -1, 0)) / (4 * hz * hy)
    hzx = (sh(1, 0, 1) - sh(1, 0, -1) - sh(-1, 0, 1) + sh(-1, 0, -1)) / (4 * hz * hx)
    hyx = (sh(0, 1, 1) - sh(0, 1, -1) - sh(0, -1, 1) + sh(0, -1, -1)) / (4 * hy * hx)
    lam = _eigvals_sym3(hzz, hyy, hxx, hzy, hzx, hyx)  # ascending: l1 <= l2 <= l3
    l1, l3 = lam[0], lam[2]
    dot = torch.where(l3 < 0, l3 * l3 / (-l1).clamp_min(1e-12), torch.zeros_like(l3))
    return dot * (s * s)


def _eigvals_sym3(a11, a22, a33, a12, a13, a23):
    """Eigenvalues of symmetric 3×3 matrices given elementwise (closed form, ascending)."""
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    q = (a11 + a22 + a33) / 3.0
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
    p = torch.sqrt((p2 / 6.0).clamp_min(1e-20))
    det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13))
    r = (det / (2.0 * p ** 3)).clamp(-1.0, 1.0)
    phi = torch.acos(r) / 3.0
    e1 = q + 2.0 * p * torch.cos(phi)  # largest
    e3 = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)  # smallest
    e2 = 3.0 * q - e1 - e3
    return torch.stack([e3, e2, e1])


def find_peaks(response: torch.Tensor, region: torch.Tensor, low: torch.Tensor, max_peaks: int = 1500):
    """Local maxima of the best response inside ``region``: list of (k, j, i, response, scale index)."""
    best, scale = response.max(dim=0)
    pooled = F.max_pool3d(best[None, None], 3, stride=1, padding=1)[0, 0]
    peak = (best >= pooled) & region & (low > CANDIDATE_HU) & (best > MIN_RESPONSE)
    idx = torch.nonzero(peak)
    if idx.numel() == 0:
        return []
    vals = best[peak]
    order = torch.argsort(vals, descending=True)[:max_peaks]
    idx, vals = idx[order].cpu().numpy(), vals[order].cpu().numpy()
    sc = scale[peak][order].cpu().numpy()
    return [(int(k), int(j), int(i), float(v), int(s)) for (k, j, i), v, s in zip(idx, vals, sc)]


def dense_map(low: torch.Tensor) -> torch.Tensor:
    """Density mapped to 0 (aerated lung, -850 HU) .. 1 (-550 HU and denser): ground-glass and
    solid nodules look alike to the shape filter, which then answers to shape, not contrast."""
    return ((low + 850.0) / 300.0).clamp(0.0, 1.0)


def measure(peak, low_np: np.ndarray, spacing_zyx, scales_mm=SCALES_MM):
    """Segment one peak locally and measure its radial density profile; None when it is not a blob."""
    from scipy import ndimage

    k, j, i, resp, s = peak
    sp = np.asarray(spacing_zyx, float)
    r_scale = math.sqrt(3.0) * scales_mm[s]
    reach = 2.5 * max(r_scale, 3.0)
    half = np.ceil(reach / sp).astype(int) + 1
    lo = np.maximum([k, j, i] - half, 0)
    hi = np.minimum(np.array([k, j, i]) + half + 1, low_np.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = low_np[box]
    c = np.array([k, j, i]) - lo
    cs = tuple(slice(max(0, v - 1), v + 2) for v in c)
    peak_hu = float(sub[cs].mean())
    lung_bg = sub[sub < -700]
    bg = float(np.median(lung_bg)) if lung_bg.size > 20 else -850.0
    thr = float(np.clip(0.5 * (peak_hu + bg), -760.0, -250.0))
    dense = sub > thr
    if peak_hu < SUBSOLID_HU:  # a ground-glass candidate: solid neighbours (vessels) are not part of it
        dense &= sub < SUBSOLID_HU + 100.0
    zz, yy, xx = np.meshgrid(*(np.arange(n) * d for n, d in zip(sub.shape, sp)), indexing="ij")
    dist = np.sqrt((zz - c[0] * sp[0]) ** 2 + (yy - c[1] * sp[1]) ** 2 + (xx - c[2] * sp[2]) ** 2)
    step = 0.5 * float(sp.min())
    bins = np.minimum((dist / step).astype(int), int(reach / step))
    counts = np.bincount(bins.ravel())
    prof = np.bincount(bins.ravel(), weights=dense.ravel().astype(float)) / np.maximum(counts, 1)
    radii = (np.arange(prof.size) + 0.5) * step
    filled = counts > 0  # shells too thin to hold a voxel centre say nothing
    prof, radii = prof[filled], radii[filled]
    below = np.nonzero(prof < 0.5)[0]
    if below.size == 0 or below[0] == 0:
        return None
    radius = float(radii[below[0]])
    if 2.0 * radius > MAX_DIAMETER_MM or 2.0 * radius < MIN_DIAMETER_MM or 2.0 * radius > reach:
        return None
    core = float(prof[radii <= 0.5 * radius].mean()) if (radii <= 0.5 * radius).any() else float(prof[0])
    shell_sel = (radii >= 1.5 * radius) & (radii <= 2.0 * radius)
    shell = float(prof[shell_sel].mean()) if shell_sel.any() else 1.0
    if shell > MAX_SHELL or 2.0 * radius < MIN_REPORT_MM:
        return None
    lab, _ = ndimage.label(dense & (dist <= 1.25 * radius))
    cid = lab[tuple(c)]
    if cid == 0:
        return None
    inner = lab == cid
    # the widest ball that fits inside: a nodule is as thick as it is wide, a vessel is not
    edt = ndimage.distance_transform_edt(np.pad(inner, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    thickness = 2.0 * float(edt.max())
    # ... and a nodule is a plateau: it stays as thick at three quarters of its contrast, a blurred twig does not
    hi_thr = bg + 0.75 * (peak_hu - bg)
    lab_hi, _ = ndimage.label((sub > hi_thr) & (dist <= 1.25 * radius) & (dense | (sub > hi_thr)))
    cid_hi = lab_hi[tuple(c)]
    plateau = 0.0
    if cid_hi:
        e2 = ndimage.distance_transform_edt(np.pad(lab_hi == cid_hi, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
        plateau = 2.0 * float(e2.max())
    vox_ml = float(np.prod(sp)) / 1000.0
    volume = float(inner.sum()) * vox_ml
    mean_hu = float(sub[inner].mean())
    kind = "solid" if mean_hu > SUBSOLID_HU else "subsolid"
    pts = np.stack([zz[inner], yy[inner], xx[inner]], axis=1)
    w = pts.mean(axis=0)
    centre_idx = w / sp + lo
    ev = np.linalg.eigvalsh(np.cov((pts - w).T) + np.diag(sp ** 2 / 12.0)) if len(pts) > 3 else np.ones(3)
    elongation = float(np.sqrt(ev[-1] / max(ev[0], 1e-6)))
    fill = volume * 1000.0 / (math.pi / 6.0 * (2.0 * radius) ** 3)
    return dict(center=centre_idx, diameter=2.0 * radius, volume=volume, mean_hu=mean_hu, kind=kind,
                response=resp, core=core, shell=shell, elongation=elongation, fill=fill, thickness=thickness,
                plateau=plateau, contrast=mean_hu - bg, box=box, mask=inner, r_mm=r_scale)


def score(m: dict) -> float:
    """0..1 from shape alone: how isolated, how round and how much of a plateau the candidate is."""
    ratio = m["plateau"] / max(m["diameter"], 1e-6)
    iso = max(0.0, 1.0 - m["shell"] / (MAX_SHELL * 2.0))
    plateau = min(1.0, max(0.0, (ratio - 0.5) / 0.35))
    round_ = min(1.0, max(0.0, (MAX_ELONGATION + 0.2 - m["elongation"]) / 0.8))
    return float(m["core"] * iso * plateau * round_)


def accept(m: dict) -> bool:
    return (m["diameter"] >= MIN_REPORT_MM and m["shell"] <= MAX_SHELL and m["elongation"] <= MAX_ELONGATION
            and m["plateau"] / max(m["diameter"], 1e-6) >= MIN_PLATEAU)


def detect(hu_full: np.ndarray, spacing_full, peaks_full, step=lambda f, msg: None) -> list[dict]:
    """Measure the peaks (full-resolution canonical indices) and keep the accepted ones, strongest
    first, one per nodule (a weaker candidate whose centre lies inside a kept one is dropped)."""
    found = []
    n = max(1, len(peaks_full))
    for idx, p in enumerate(peaks_full):
        if idx % 50 == 0:
            step(idx / n, f"nodules: candidate {idx + 1}/{len(peaks_full)}")
        m = measure(p, hu_full, spacing_full)
        if m is not None and accept(m):
            m["score"] = score(m)
            found.append(m)
    found.sort(key=lambda m: -m["score"])
    kept: list[dict] = []
    sp = np.asarray(spacing_full, float)
    for m in found:
        if all(np.linalg.norm((m["center"] - k["center"]) * sp) > 0.5 * max(m["diameter"], k["diameter"])
               for k in kept):
            kept.append(m)
    return kept
