"""Per-label agreement of two label maps on one voxel grid: Dice, IoU, surface distances, volumes.

Definitions (``A`` = prediction, ``B`` = reference, both the voxels of one label):

* Dice ``2|A∩B| / (|A|+|B|)``, IoU ``|A∩B| / |A∪B|``; ``tp = |A∩B|``, ``fp = |A\\B|``, ``fn = |B\\A|``.
* Surface ``S(X)``: the voxels of ``X`` with at least one of their 6 face neighbours outside ``X``; the
  image border counts as outside, so a mask that touches the border has a surface there.
* Distances are exact Euclidean distances in mm between surface *voxel centres*, with the grid's
  (anisotropic) spacing. ``d(a, S(B))`` for every ``a`` in ``S(A)`` and ``d(b, S(A))`` for every ``b`` in
  ``S(B)`` form the two directed sets; a voxel on both surfaces has distance 0.
* ``hd_mm``: the Hausdorff distance, the largest value of the two sets.
* ``hd95_mm``: the 95th percentile (numpy's linear interpolation) of the *union* of the two directed sets,
  as medpy's ``hd95`` does. MONAI's ``compute_hausdorff_distance(percentile=95)`` instead takes the larger
  of the two directed 95th percentiles, which can be larger.
* ``asd_mm``: the average symmetric surface distance, the mean over the union of both sets
  ``(Σ d(a, S(B)) + Σ d(b, S(A))) / (|S(A)| + |S(B)|)`` (Heimann et al. 2009; medpy's ``assd`` averages
  the two directed means instead, which differs when the surfaces differ in size).

Edge cases: a label absent from both maps (evaluated only when it is named in ``names`` or asked for in
``labels``) counts as perfect agreement: Dice and IoU 1.0, distances 0.0, volume difference 0 mL and 0 %,
``note="absent in both"``. A label present in only one map has Dice and IoU 0.0 and NaN distances (there
is no surface to measure to; NaN rather than inf, which JSON cannot hold; ``as_dict`` writes None), with
``note`` saying which side has it. ``volume_diff_pct`` is NaN when the reference has none of the label.

Distances are computed on the bounding box of both masks (padded with one empty voxel all round, the
"outside" of the border) and only for surface voxels not shared by both surfaces, with a k-d tree over
the other surface's voxel centres in mm: the same exact Euclidean distances as
``scipy.ndimage.distance_transform_edt(~surface, sampling=spacing)`` sampled at the surface voxels, at a
cost that grows with the surface area rather than the bounding box's volume (a label such as "nodule"
whose few small parts lie far apart has a bounding box almost as large as the image).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Mapping, Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

NAN = float("nan")


@dataclass(frozen=True)
class LabelMetrics:
    """Agreement of one label between a prediction and a reference (distances in mm, volumes in mL)."""

    label: int
    name: str
    dice: float
    iou: float
    hd95_mm: float
    asd_mm: float
    hd_mm: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_diff_ml: float  # pred - ref
    volume_diff_pct: float  # 100 * (pred - ref) / ref; NaN when the reference has none of the label
    tp_voxels: int
    fp_voxels: int
    fn_voxels: int
    note: str = ""  # "absent in both", "only in the prediction", "only in the reference"

    def as_dict(self) -> dict:
        """Plain values for JSON: NaN becomes None."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isnan(value):
                value = None
            out[f.name] = value
        return out


def _check_inputs(pred: np.ndarray, ref: np.ndarray, spacing_zyx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"the label maps' shapes/grids must match: prediction {pred.shape}, reference {ref.shape}")
    if pred.ndim != 3:
        raise ValueError(f"label maps are (z, y, x) arrays, got {pred.ndim} dimension(s)")
    spacing = np.asarray(spacing_zyx, dtype=float).reshape(-1)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing_zyx must be three positive numbers (mm), got {tuple(spacing_zyx)}")
    out = []
    for what, a in (("prediction", pred), ("reference", ref)):
        if a.dtype == bool:
            a = a.view(np.uint8)
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"the {what} is not a label map: it holds {a.dtype} values, not integers")
        if np.issubdtype(a.dtype, np.signedinteger) and a.size and int(a.min()) < 0:
            raise ValueError(f"the {what} holds negative labels")
        out.append(a)
    return out[0], out[1], spacing


def _boxes(array: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """``{label: bounding-box slices}`` of every label > 0 present (one pass over the array)."""
    if array.dtype.itemsize > 4 or array.dtype == np.uint32:
        array = array.astype(np.int64)
    return {i + 1: box for i, box in enumerate(ndimage.find_objects(array)) if box is not None}


def _union_box(a: Optional[tuple[slice, ...]], b: Optional[tuple[slice, ...]]) -> tuple[slice, ...]:
    boxes = [x for x in (a, b) if x is not None]
    return tuple(slice(min(x[d].start for x in boxes), max(x[d].stop for x in boxes)) for d in range(3))


def _padded(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(tuple(n + 2 for n in mask.shape), bool)
    out[1:-1, 1:-1, 1:-1] = mask
    return out


def surface(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` with a 6-neighbour outside it (the border of the array counts as outside)."""
    p = _padded(np.asarray(mask, bool))
    core = p[1:-1, 1:-1, 1:-1]
    inner = core & p[:-2, 1:-1, 1:-1] & p[2:, 1:-1, 1:-1]
    inner &= p[1:-1, :-2, 1:-1]
    inner &= p[1:-1, 2:, 1:-1]
    inner &= p[1:-1, 1:-1, :-2]
    inner &= p[1:-1, 1:-1, 2:]
    return core & ~inner


def _directed(from_surface: np.ndarray, to_surface: np.ndarray, to_tree: cKDTree,
              spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from every voxel of ``from_surface`` to the nearest voxel of ``to_surface``."""
    n_shared = int(np.count_nonzero(from_surface & to_surface))
    own = np.argwhere(from_surface & ~to_surface) * spacing
    far = to_tree.query(own, workers=-1)[0] if len(own) else np.zeros(0)
    return np.concatenate([np.zeros(n_shared), far])


def surface_distances(pred_mask: np.ndarray, ref_mask: np.ndarray,
                      spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
    """The two directed sets of surface distances (mm): prediction → reference and reference → prediction.

    Both masks must be non-empty and of one shape. They may be crops of a larger grid: the crop's border
    counts as outside, which is exact when the crop holds the bounding box of both masks.
    """
    spacing = np.asarray(spacing_zyx, dtype=float)
    sp, sr = surface(pred_mask), surface(ref_mask)
    if not sp.any() or not sr.any():
        raise ValueError("surface distances need two non-empty masks")
    tree_p = cKDTree(np.argwhere(sp) * spacing)
    tree_r = cKDTree(np.argwhere(sr) * spacing)
    return _directed(sp, sr, tree_r, spacing), _directed(sr, sp, tree_p, spacing)


def _one_label(label: int, name: str, pred: np.ndarray, ref: np.ndarray, box_p, box_r,
               spacing: np.ndarray, voxel_ml: float) -> LabelMetrics:
    if box_p is None and box_r is None:
        return LabelMetrics(label, name, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, "absent in both")
    crop = _union_box(box_p, box_r)  # tight: every mask voxel on its faces is a surface voxel anyway
    a = pred[crop] == label
    b = ref[crop] == label
    tp = int(np.count_nonzero(a & b))
    n_a, n_b = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    fp, fn = n_a - tp, n_b - tp
    vol_p, vol_r = n_a * voxel_ml, n_b * voxel_ml
    diff_pct = 100.0 * (vol_p - vol_r) / vol_r if n_b else NAN
    dice = 2.0 * tp / (n_a + n_b)
    iou = tp / (n_a + n_b - tp)
    if not n_a or not n_b:
        note = "only in the reference" if n_b else "only in the prediction"
        return LabelMetrics(label, name, dice, iou, NAN, NAN, NAN, vol_p, vol_r, vol_p - vol_r, diff_pct,
                            tp, fp, fn, note)
    d_ab, d_ba = surface_distances(a, b, spacing)
    both = np.concatenate([d_ab, d_ba])
    return LabelMetrics(label, name, dice, iou, float(np.percentile(both, 95)), float(both.mean()),
                        float(both.max()), vol_p, vol_r, vol_p - vol_r, diff_pct, tp, fp, fn)


def segmentation_metrics(pred: np.ndarray, ref: np.ndarray, spacing_zyx,
                         names: Mapping[int, str] | None = None, *, labels: Iterable[int] | None = None,
                         progress: Optional[Callable[[int, int], None]] = None) -> list[LabelMetrics]:
    """Per-label agreement of ``pred`` with ``ref`` (integer ``(z, y, x)`` maps on one grid; 0 = background).

    Evaluated labels: those present in either map plus those named in ``names`` (sorted by id), or exactly
    ``labels`` when given. Names come from ``names`` ("label N" otherwise). See the module docstring for
    the definitions and the edge cases. Raises ValueError when the shapes differ. ``progress(done, total)``
    is called after each label (an exception it raises, e.g. to cancel, stops the computation).
    """
    pred, ref, spacing = _check_inputs(pred, ref, spacing_zyx)
    names = {int(k): str(v) for k, v in (names or {}).items()}
    boxes_p, boxes_r = _boxes(pred), _boxes(ref)
    if labels is None:
        wanted = sorted(set(boxes_p) | set(boxes_r) | {k for k in names if k > 0})
    else:
        wanted = sorted({int(v) for v in labels if int(v) > 0})
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = []
    for lab in wanted:
        out.append(_one_label(lab, names.get(lab, f"label {lab}"), pred, ref, boxes_p.get(lab), boxes_r.get(lab),
                              spacing, voxel_ml))
        if progress is not None:
            progress(len(out), len(wanted))
    return out
