"""Regenerate the reference masks of ../shared/data/ct-pancreas-tcia (body, lungs, bone).

    python tests/data/ct-reference/make_reference.py [--check] [--png OUTDIR]

A semi-automatic procedure with scipy only (no radview model code): thresholds,
per-slice hole filling and connected components, then the manual rules below, which
were written after looking at every slice (``--png`` renders the slices with the masks
for that).  The output, ``tcia_reference.npz``, holds the three masks as packed bits of
their bounding boxes.  ``--check`` recomputes and compares with the stored file.
The procedure and its limits are described in README.md next to this script.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
OUT = HERE / "tcia_reference.npz"

# ---------------------------------------------------------------- manual rules
# (array index k, j, i of the 134 x 512 x 512 series, k = 0 the most inferior slice)
#: dense objects that are not bone: their dense (> 450 HU) components never seed bone
NOT_BONE_POINTS = (
    (73, 292, 315),  # calcification (stone) in the left kidney
    (75, 227, 258),  # calcification / clip anterior to the aorta at the pancreas
)
#: boxes (k0, k1, j0, j1, i0, i1), half-open, where dense voxels are not bone: the
#: catheter (or undiluted contrast) with its streak artefact in the superior vena cava (slices 110-133)
NOT_BONE_BOXES = (
    (108, 134, 205, 256, 215, 262),
)
#: the trachea in the top slice, and the box of the mediastinum that holds the trachea and main bronchi
TRACHEA_POINT = (133, 266, 255)
MEDIASTINAL_AIRWAY_BOX = (112, 134, 235, 300, 205, 305)
#: the table: (k0, k1, top row): from that row down nothing is patient.  Slices 0-65 lie on the
#: thin table top (rows 387-389); from slice 66 a pad (foam of -200 to -550 HU between shells, rows
#: 376-389) lies under the back, with a gap under the spine from slice ~116 into which the back sags
#: (to row 381): columns with no shell (nothing above -400 HU in rows 380-391) are the gap, not table
TABLE_TOP_ROW = ((0, 66, 387), (66, 134, 376))
TABLE_SHELL_ROWS = (380, 392)

BODY_CORE_HU = -300.0  # skin and fat are above; sheets, pad and table foam below
BODY_EDGE_HU = -500.0  # the body's edge: half-way between fat and air
LUNG_HU = -400.0
CORTEX_HU = 450.0  # dense bone; contrast-filled blood in this series stays below 420 HU
BONE_GROW_HU = 200.0  # bone grows from the dense seeds through voxels above this (marrow of this patient: 300 HU)
MARROW_MIN_HU = 100.0  # enclosed marrow; the spinal canal (cord, CSF: 0-40 HU) stays out
EDGE_BAND_PX = 2  # the outer band of the bone whose voxels must pass the half-maximum rule
SOFT_TISSUE_HU = 40.0


def load_ct() -> tuple[np.ndarray, tuple]:
    sys.path.insert(0, str(ROOT))
    from viewer.io.series_loader import load_path

    src = ROOT.parent / "shared" / "data" / "ct-pancreas-tcia"
    v = load_path(str(src))
    return v.array, v.geometry


def _disk(r: float) -> np.ndarray:
    n = int(np.ceil(r))
    y, x = np.mgrid[-n:n + 1, -n:n + 1]
    return (x * x + y * y) <= r * r + 1e-6


def _per_slice(mask: np.ndarray, fn) -> np.ndarray:
    out = np.zeros_like(mask)
    for k in range(mask.shape[0]):
        if mask[k].any():
            out[k] = fn(mask[k])
    return out


def _largest(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def table_mask(s: np.ndarray) -> np.ndarray:
    """The table and its pad (manual rule, see TABLE_TOP_ROW)."""
    table = np.zeros(s.shape, bool)
    r0, r1 = TABLE_SHELL_ROWS
    for k0, k1, row in TABLE_TOP_ROW:
        shell = s[k0:k1, r0:r1, :].max(axis=1) > -400.0  # (k, column): a shell under this column
        table[k0:k1, row:, :] = shell[:, None, :] if row < r0 else True
    return table


def body_reference(s: np.ndarray) -> np.ndarray:
    """Patient: tissue above -300 HU opened in-plane by 2 px (sheets, cables and the pad's
    shells go), the largest 3D component, grown back by 2 px into voxels above -500 HU
    (the partial-volume edge of the skin), holes filled per slice (lungs, bowel)."""
    table = table_mask(s)
    tissue = (s > BODY_CORE_HU) & ~table
    core = _per_slice(tissue, lambda m: ndi.binary_opening(m, _disk(2.0)))
    core = _largest(core)
    edge = (s > BODY_EDGE_HU) & ~table
    body = _per_slice(core, lambda m: ndi.binary_dilation(m, _disk(2.0))) & edge | core
    return _per_slice(body, ndi.binary_fill_holes)


def lungs_reference(s: np.ndarray, body: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Air below -400 HU inside the body, components of more than 50 mL (the two lungs; bowel
    gas is smaller or does not reach the top of the scan), vessels filled per slice; the
    main bronchi medial to the lungs stay out (pure gas < -900 HU connected to the top slice's
    mediastinal air).  Left = patient left (+x, larger column index)."""
    air = (s < LUNG_HU) & body
    k0, k1, j0, j1, i0, i1 = MEDIASTINAL_AIRWAY_BOX
    gas = np.zeros_like(air)
    gas[k0:k1, j0:j1, i0:i1] = s[k0:k1, j0:j1, i0:i1] < -900.0
    glab, _ = ndi.label(gas)
    airway = glab == glab[TRACHEA_POINT]
    air &= ~ndi.binary_dilation(airway, np.ones((1, 3, 3), bool))
    lab, n = ndi.label(air)
    sizes = np.bincount(lab.ravel())
    vox_ml = float(np.prod(spacing)) / 1000.0
    top = set(np.unique(lab[-1])) - {0}
    keep = [c for c in range(1, n + 1) if sizes[c] * vox_ml > 50.0 and c in top]
    lungs = np.isin(lab, keep)
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    mid = 0.5 * (cols.min() + cols.max())
    lab2, n2 = ndi.label(lungs)
    left = np.zeros_like(lungs)
    right = np.zeros_like(lungs)
    for c in range(1, n2 + 1):
        comp = lab2 == c
        if np.nonzero(comp)[2].mean() > mid:
            left |= comp
        else:
            right |= comp
    left = _per_slice(left, ndi.binary_fill_holes)
    right = _per_slice(right, ndi.binary_fill_holes) & ~left
    return left, right


def bone_reference(s: np.ndarray, body: np.ndarray, spacing) -> np.ndarray:
    """Bone: dense components (> 450 HU, minus the listed non-bone objects) seed a region of
    voxels above 200 HU connected to them; cortical rings are closed (2 px) and what they
    enclose in each axial slice is added when above 100 HU (marrow, not the spinal canal); the
    edge is the half maximum: in the outer 2 px of the bone a voxel stays only where it is at
    least half-way from soft tissue (40 HU) to the densest bone within 2 px in its slice;
    components under 0.05 mL are dropped."""
    dense = (s > CORTEX_HU) & body
    lab, _ = ndi.label(dense)
    for p in NOT_BONE_POINTS:
        if lab[p]:
            dense[lab == lab[p]] = False
    for k0, k1, j0, j1, i0, i1 in NOT_BONE_BOXES:
        dense[k0:k1, j0:j1, i0:i1] = False
    grow = (s > BONE_GROW_HU) & body
    for k0, k1, j0, j1, i0, i1 in NOT_BONE_BOXES:
        grow[k0:k1, j0:j1, i0:i1] &= ~(s[k0:k1, j0:j1, i0:i1] > CORTEX_HU)
    glab, _ = ndi.label(grow)
    ids = np.unique(glab[dense])
    bone = np.isin(glab, ids[ids > 0])
    closed = _per_slice(bone, lambda m: ndi.binary_closing(np.pad(m, 3), _disk(2.0))[3:-3, 3:-3])
    filled = _per_slice(closed, ndi.binary_fill_holes)
    bone |= filled & (s > MARROW_MIN_HU)
    # the edge: half-way between soft tissue and the bone's local peak
    peak = ndi.maximum_filter(np.where(bone, s, -1024.0), size=(1, 2 * EDGE_BAND_PX + 1, 2 * EDGE_BAND_PX + 1))
    inner = _per_slice(bone, lambda m: ndi.binary_erosion(m, _disk(EDGE_BAND_PX)))
    bone &= inner | (s >= 0.5 * (peak + SOFT_TISSUE_HU))
    lab, n = ndi.label(bone)
    sizes = np.bincount(lab.ravel())
    vox_ml = float(np.prod(spacing)) / 1000.0
    small = np.nonzero(sizes * vox_ml < 0.05)[0]
    bone &= ~np.isin(lab, small[small > 0])
    return bone


def make(hu: np.ndarray, spacing) -> dict[str, np.ndarray]:
    s = ndi.gaussian_filter(hu.astype(np.float32), (0, 0.7, 0.7))
    body = body_reference(s)
    left, right = lungs_reference(s, body, spacing)
    bone = bone_reference(s, body, spacing)
    return {"body": body, "lung_left": left, "lung_right": right, "bone": bone}


# ------------------------------------------------------------------ storage
def pack(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, m in masks.items():
        idx = np.nonzero(m.any(axis=(1, 2)))[0], np.nonzero(m.any(axis=(0, 2)))[0], np.nonzero(m.any(axis=(0, 1)))[0]
        lo = np.array([a.min() for a in idx])
        hi = np.array([a.max() + 1 for a in idx])
        box = m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        out[f"{name}_bits"] = np.packbits(box.ravel())
        out[f"{name}_box"] = np.stack([lo, hi])
    out["shape"] = np.array(next(iter(masks.values())).shape)
    return out


def unpack(data) -> dict[str, np.ndarray]:
    shape = tuple(int(v) for v in data["shape"])
    out = {}
    for key in data.files:
        if not key.endswith("_bits"):
            continue
        name = key[:-5]
        lo, hi = data[f"{name}_box"]
        bshape = tuple(int(b - a) for a, b in zip(lo, hi))
        m = np.zeros(shape, bool)
        m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = np.unpackbits(data[key], count=int(np.prod(bshape))).reshape(
            bshape).astype(bool)
        out[name] = m
    return out


def load_reference(path: Path = OUT) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return unpack(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the stored file instead of writing it")
    ap.add_argument("--png", help="render every slice with the masks into this folder")
    args = ap.parse_args(argv)
    hu, geom = load_ct()
    masks = make(hu, geom.spacing_zyx)
    if args.check:
        stored = load_reference()
        same = all(np.array_equal(stored[k], masks[k]) for k in masks)
        print("the stored reference matches" if same else "the stored reference DIFFERS")
        return 0 if same else 1
    np.savez_compressed(OUT, **pack(masks))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")
    for k, m in masks.items():
        print(f"  {k:10s} {m.sum() * np.prod(geom.spacing_zyx) / 1000:8.1f} mL")
    if args.png:
        render(hu, masks, Path(args.png))
        print(f"slices rendered into {args.png}")
    return 0


def render(hu: np.ndarray, masks: dict[str, np.ndarray], outdir: Path, per_image: int = 6,
           box=(110, 400, 20, 492)) -> None:
    """PNG montages of every slice (bone window, cropped to the patient), mask outlines: bone red,
    body green, lungs blue."""
    from PIL import Image, ImageDraw

    outdir.mkdir(parents=True, exist_ok=True)
    colours = {"bone": (255, 40, 40), "body": (40, 255, 40), "lung_left": (60, 140, 255),
               "lung_right": (60, 220, 255)}
    nz = hu.shape[0]
    for start in range(0, nz, per_image):
        tiles = []
        for k in range(start, min(nz, start + per_image)):
            j0, j1, i0, i1 = box
            g = np.clip((hu[k, j0:j1, i0:i1].astype(np.float32) + 300.0) / 1400.0, 0, 1) * 255
            rgb = np.repeat(g[..., None], 3, axis=2)
            for name, col in colours.items():
                m = masks[name][k, j0:j1, i0:i1]
                edge = m & ~ndi.binary_erosion(m)
                rgb[edge] = col
            im = Image.fromarray(rgb.astype(np.uint8))
            ImageDraw.Draw(im).text((6, 6), f"k={k}", fill=(255, 255, 0))
            tiles.append(im)
        w, h = tiles[0].size
        sheet = Image.new("RGB", (w * 2, h * 3))
        for n, im in enumerate(tiles):
            sheet.paste(im, ((n % 2) * w, (n // 2) * h))
        sheet.save(outdir / f"slices_{start:03d}.png")


if __name__ == "__main__":
    raise SystemExit(main())
