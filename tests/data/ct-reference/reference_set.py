"""The reference set of the built-in CT models: real and phantom CTs at several resolutions, with their masks.

Cases (``cases()``), each a :class:`Case` of HU pixels, their ``Geometry`` and reference masks
(``body``, ``lungs``, ``bone``; boolean, on the case's grid):

* ``tcia``: ../shared/data/ct-pancreas-tcia (3 mm slices, 1.074 mm pixels, contrast CT) with the
  masks of ``tcia_reference.npz`` (made by ``make_reference.py``, see README.md);
* ``phantom``: the demo phantom (``viewer.demo.phantom``, 2 mm slices, 0.75 mm pixels) with its own truth.

Each at its native grid and resampled (``resample``): 1, 2, 3 and 5 mm slices (slab averages of
the native slices, or linear interpolation where the new slices are thinner), 3 mm isotropic
(in-plane area averages too), and with added low-dose noise (``add_noise``: Gaussian noise,
correlated over about a pixel, of a given standard deviation, seeded).  Masks are resampled the
same way as fractions and kept where at least half the voxel is inside.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TCIA = ROOT.parent / "shared" / "data" / "ct-pancreas-tcia"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from radview_base.geometry import Geometry  # noqa: E402

MASKS = ("body", "lungs", "bone")
#: (name, slice thickness mm or None for native, in-plane pixel mm or None for native, noise SD HU or 0)
VARIANTS = (
    ("native", None, None, 0.0),
    ("1 mm slices", 1.0, None, 0.0),
    ("2 mm slices", 2.0, None, 0.0),
    ("3 mm slices", 3.0, None, 0.0),
    ("5 mm slices", 5.0, None, 0.0),
    ("3 mm isotropic", 3.0, 3.0, 0.0),
    ("native, low dose", None, None, 40.0),
    ("3 mm isotropic, low dose", 3.0, 3.0, 25.0),
)


@dataclass
class Case:
    name: str  # e.g. "tcia native"
    source: str  # "tcia" | "phantom"
    variant: str
    hu: np.ndarray  # int16 (z, y, x)
    geometry: Geometry
    masks: dict = field(default_factory=dict)  # name -> bool (z, y, x)
    image_numbers: list | None = None  # per slice z, the file's InstanceNumber (real CT, native grid only)


def available(source: str) -> bool:
    return source != "tcia" or TCIA.exists()


def tcia_native() -> Case:
    from viewer.io.series_loader import load_path

    sys.path.insert(0, str(HERE))
    from make_reference import load_reference

    v = load_path(str(TCIA))
    ref = load_reference()
    masks = {"body": ref["body"], "lungs": ref["lung_left"] | ref["lung_right"], "bone": ref["bone"]}
    return Case("tcia native", "tcia", "native", v.array, v.geometry, masks, v.meta.get("instance_numbers"))


def phantom_native(seed: int | None = None) -> Case:
    from viewer.demo.phantom import BONE, DEFAULT_SEED, LUNG_LEFT, LUNG_RIGHT, NODULE, make_phantom

    p = make_phantom(DEFAULT_SEED if seed is None else seed)
    g = p.grid
    geom = Geometry(p.hu_zyx.shape, g.spacing_zyx, g.origin_lps)
    lab = p.labels_zyx
    masks = {"body": lab > 0, "lungs": np.isin(lab, (LUNG_LEFT, LUNG_RIGHT, NODULE)), "bone": lab == BONE}
    return Case("phantom native", "phantom", "native", p.hu_zyx, geom, masks)


def native(source: str) -> Case:
    """``tcia``, ``phantom`` (the demo's) or ``phantom-N`` (the phantom of seed N: ``radview-cli demo --seed N``)."""
    if source == "tcia":
        return tcia_native()
    seed = int(source.split("-", 1)[1]) if source.startswith("phantom-") else None
    case = phantom_native(seed)
    case.source, case.name = source, f"{source} native"
    return case


# ------------------------------------------------------------------ resampling
def _z_weights(n_in: int, sp_in: float, n_out: int, sp_out: float, z0_in: float, z0_out: float) -> np.ndarray:
    """(n_out, n_in) weights: slab averages (overlap of the output slab with each input slice) when the
    output slices are thicker, linear interpolation when they are thinner."""
    zi = z0_in + sp_in * np.arange(n_in)
    zo = z0_out + sp_out * np.arange(n_out)
    w = np.zeros((n_out, n_in))
    if sp_out >= sp_in:
        lo_o, hi_o = zo - sp_out / 2, zo + sp_out / 2
        lo_i, hi_i = zi - sp_in / 2, zi + sp_in / 2
        w = np.clip(np.minimum(hi_o[:, None], hi_i[None]) - np.maximum(lo_o[:, None], lo_i[None]), 0, None)
    else:
        pos = np.clip((zo - z0_in) / sp_in, 0, n_in - 1)
        a = np.floor(pos).astype(int)
        b = np.minimum(a + 1, n_in - 1)
        f = pos - a
        w[np.arange(n_out), a] += 1 - f
        w[np.arange(n_out), b] += f
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-9)


def resample(case: Case, slice_mm: float | None, pixel_mm: float | None, variant: str) -> Case:
    """``case`` on a grid of ``slice_mm`` slices and ``pixel_mm`` pixels (None keeps the native one),
    covering the same extent; HU and masks averaged (masks: kept where the fraction is >= 0.5)."""
    import torch
    import torch.nn.functional as F

    g = case.geometry
    nz, ny, nx = g.shape_zyx
    sz, sy, sx = g.spacing_zyx
    new_sz = slice_mm or sz
    new_sy, new_sx = (pixel_mm, pixel_mm) if pixel_mm else (sy, sx)
    mz = max(1, int(round(nz * sz / new_sz)))
    my, mx = max(1, int(round(ny * sy / new_sy))), max(1, int(round(nx * sx / new_sx)))
    new_sz, new_sy, new_sx = nz * sz / mz, ny * sy / my, nx * sx / mx  # the same extent exactly
    w = torch.from_numpy(_z_weights(nz, sz, mz, new_sz, -sz / 2 + sz / 2, -sz / 2 + new_sz / 2)).float()

    def one(a: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if (my, mx) != (ny, nx):
            t = F.interpolate(t[:, None], size=(my, mx), mode="area")[:, 0]
        if mz != nz or new_sz != sz:
            t = torch.einsum("oi,iyx->oyx", w, t)
        return t.numpy()

    hu = np.rint(one(case.hu)).astype(np.int16)
    masks = {k: one(m) >= 0.5 for k, m in case.masks.items()}
    # the first voxel's centre moves so that the grid covers the same extent
    offset_idx = np.array([(new_sx / sx - 1) / 2, (new_sy / sy - 1) / 2, (new_sz / sz - 1) / 2])  # x, y, z
    origin = np.asarray(g.origin_lps) + g.direction_matrix @ (offset_idx * np.array([sx, sy, sz]))
    geom = Geometry((mz, my, mx), (new_sz, new_sy, new_sx), tuple(origin), g.direction)
    return Case(f"{case.source} {variant}", case.source, variant, hu, geom, masks)


def add_noise(case: Case, sd_hu: float, seed: int = 7) -> Case:
    """Low-dose noise: white Gaussian noise smoothed over about a pixel in-plane, scaled to ``sd_hu``."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    n = rng.standard_normal(case.hu.shape, dtype=np.float32)
    n = ndi.gaussian_filter(n, (0, 0.7, 0.7))
    n *= np.float32(sd_hu / max(float(n.std()), 1e-6))
    hu = np.clip(np.rint(case.hu.astype(np.float32) + n), -1024, 3071).astype(np.int16)
    return Case(case.name, case.source, case.variant, hu, case.geometry, case.masks)


def variant(base: Case, name: str) -> Case:
    spec = {v[0]: v[1:] for v in VARIANTS}[name]
    slice_mm, pixel_mm, sd = spec
    g = base.geometry
    if slice_mm is not None and math.isclose(slice_mm, g.spacing_zyx[0], abs_tol=1e-3) and pixel_mm is None:
        slice_mm = None
    case = base if slice_mm is None and pixel_mm is None else resample(base, slice_mm, pixel_mm, name)
    if sd:
        case = add_noise(case, sd)
    case.name, case.variant = f"{base.source} {name}", name
    return case


def variant_names(source: str) -> list[str]:
    """The variants of a source, without the one equal to its native grid (TCIA: 3 mm slices; phantoms: 2 mm)."""
    native_mm = 3.0 if source == "tcia" else 2.0  # the phantoms have 2 mm slices
    return [name for name, slice_mm, pixel_mm, _sd in VARIANTS
            if not (slice_mm == native_mm and pixel_mm is None)]  # = native


def cases(sources=("tcia", "phantom"), names=None):
    """Every (source, variant) case, one at a time (they are large)."""
    for source in sources:
        if not available(source):
            continue
        base = native(source)
        for name in variant_names(source):
            if names is not None and name not in names:
                continue
            yield variant(base, name)


# ------------------------------------------------------------------ metrics
def overlap(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(Dice, recall, precision) of two boolean arrays."""
    tp = float(np.count_nonzero(pred & ref))
    p, r = float(np.count_nonzero(pred)), float(np.count_nonzero(ref))
    dice = 2 * tp / max(p + r, 1.0)
    return dice, tp / max(r, 1.0), tp / max(p, 1.0)


# ------------------------------------------------------------------ baselines
def baseline(case: Case, what: str) -> np.ndarray:
    """The plain-threshold baseline printed beside each model: bone = HU > 120; body = HU > -500, its
    largest 3D component, holes filled per slice; lungs = HU < -400 inside that body, its two largest
    3D components."""
    from scipy import ndimage as ndi

    hu = case.hu
    if what == "bone":
        return hu > 120
    lab, n = ndi.label(hu > -500)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == sizes.argmax()
    for k in range(body.shape[0]):
        body[k] = ndi.binary_fill_holes(body[k])
    if what == "body":
        return body
    lab, n = ndi.label((hu < -400) & body)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = np.argsort(sizes)[::-1][:2]
    return np.isin(lab, keep[sizes[keep] > 0])
