"""Shape and intensity features of segmented structures: volume, centroid, diameters, sphericity, HU statistics.

``label_features`` measures every label of a label map (and, on request, each of its connected
components); ``detection_features`` measures the component under a detection's centre. Counts, volumes,
centroids and bounding boxes come from SimpleITK's ``LabelShapeStatisticsImageFilter`` and the HU statistics
from its ``LabelStatisticsImageFilter``, both on images that carry the grid's spacing, origin and direction, so
centroids are LPS millimetres. numpy + SimpleITK + scipy only (no torch, no viewer).

Definitions
-----------
* **volume**: voxel count × voxel volume (mL).
* **diameter_3d_mm** (Feret diameter): the largest distance between the *centres* of two voxels of the
  structure, the definition of ITK's ``GetFeretDiameter`` (which compares the boundary voxels' centres pair by
  pair, O(boundary²): 19 s for one lung of the demo, minutes for the body). The same number comes from the convex
  hull: the farthest pair of a point set lies on its hull, and the hull of a voxel set is spanned by each
  row's first and last voxel, so we take those (≤ 2 per row), their ``scipy.spatial.ConvexHull`` and the largest
  distance among its vertices. Voxel *centres*: a box of n voxels measures (n - 1) × spacing; measured to the
  voxel corners it would be about one voxel more (one voxel measures 0 mm here).
* **axial_diameter_mm**: the largest 2D Feret diameter (voxel centres again) within one transverse plane, over
  all slices. The array axis whose direction is closest to the patient's S axis is taken as the slice axis:
  for sagittal, coronal or flipped grids this permutes the axes (what ``sitk.DICOMOrient(image, "LPS")`` does,
  without its copy), so the diameter is measured in the true transverse plane. For an oblique grid the planes
  are the acquisition planes nearest to transverse, tilted from it by the obliquity angle; lengths within them
  are true millimetres.
* **sphericity**: π^(1/3) (6V)^(2/3) / A, the area of the sphere of the same volume over the surface area A
  (1 for a ball; 0.81 for a cube). A is the Cauchy-Crofton estimate of ITK's perimeter (intercepts of the
  13 lattice directions, each weighted by its Voronoi cell on the unit sphere), but with the weights computed
  for the grid's *physical* directions: ITK uses the isotropic weights whatever the spacing (its "TODO"), which
  gives a 15 × 15 × 40 mm spheroid on a 0.75 × 0.75 × 2 mm grid a sphericity of 1.07 (true 0.87; ours 0.92).
  The estimate is ITK's on isotropic grids and within 1 % of 4πr² for balls of 10 mm and more, but it reads
  flat faces 7 % small and small structures high (the intercepts lie between voxel centres while V counts
  whole voxels): a 40-voxel cube gives 0.88 (true 0.81), a 10 × 6 × 6 mm box of 5 × 8 × 12 voxels 0.98
  (true 0.78), a 1 × 1 × 20 voxel rod 0.67 (true 0.43). Below ~10 voxels across it ranks shapes rather than
  measures them; the value is capped at 1.
* **HU**: mean, standard deviation (sample, n - 1), minimum and maximum of the image over the structure.
* **components**: face-connected (6-neighbour) connected components, numbered from 1, largest first.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Mapping, Optional

import numpy as np
import SimpleITK as sitk

from ai.api import StructureFeatures
from radview_base.geometry import Geometry

#: point sets up to this size are compared pair by pair; larger ones go through their convex hull first
BRUTE_FORCE_POINTS = 64
_CHUNK = 512
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
#: the 13 lattice directions (dz, dy, dx) of the Crofton surface estimate, one of each ± pair
DIRECTIONS = tuple((dz, dy, dx) for dx in (0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
                   if dx == 1 or (dy, dz) in ((0, 1), (1, 0), (1, 1), (-1, 1)))


# --- grids and SimpleITK images ---------------------------------------------------------------------------
def sitk_image(array: np.ndarray, grid: Geometry) -> sitk.Image:
    """``array`` (z, y, x) as a SimpleITK image with the grid's spacing, origin (LPS) and direction."""
    if tuple(array.shape) != grid.shape_zyx:
        raise ValueError(f"array shape {array.shape} does not match grid {grid.shape_zyx}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(grid.spacing_zyx[::-1]))
    img.SetOrigin(tuple(grid.origin_lps))
    img.SetDirection(tuple(grid.direction_matrix.ravel()))
    return img


def sub_grid(grid: Geometry, start_zyx, shape_zyx) -> Geometry:
    """The grid of the box of ``shape_zyx`` voxels starting at index ``start_zyx``."""
    return Geometry(tuple(shape_zyx), grid.spacing_zyx, tuple(grid.index_to_world(np.asarray(start_zyx, float))),
                     grid.direction)


def slice_axis(grid: Geometry) -> int:
    """The array axis (0 = z, 1 = y, 2 = x) whose direction is closest to the patient's S axis."""
    s_component = np.abs(grid.direction_matrix[2])  # S component of the x, y, z axes' directions
    return 2 - int(np.argmax(s_component))


def _integer_labels(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == bool:
        return labels.view(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.dtype in (np.uint8, np.uint16, np.uint32):
        return labels
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo < 0:
        raise ValueError(f"labels must not be negative (min {lo})")
    return labels.astype(np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.uint32)


def _box(bbox_xyz) -> tuple[slice, slice, slice]:
    """SimpleITK's bounding box ``(x0, y0, z0, nx, ny, nz)`` as (z, y, x) slices."""
    x0, y0, z0, nx, ny, nz = bbox_xyz
    return slice(z0, z0 + nz), slice(y0, y0 + ny), slice(x0, x0 + nx)


def _bounding_box(mask: np.ndarray) -> Optional[tuple[slice, slice, slice]]:
    out = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if not hit.size:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


# --- diameters ------------------------------------------------------------------------------------------
def _farthest_distance(points: np.ndarray) -> float:
    """The largest distance between two of ``points`` (n, d), through their convex hull when there are many."""
    if len(points) < 2:
        return 0.0
    if len(points) > BRUTE_FORCE_POINTS:
        from scipy.spatial import ConvexHull, QhullError

        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat or collinear: joggled, the hull still keeps every extreme point
            try:
                points = points[ConvexHull(points, qhull_options="QJ").vertices]
            except QhullError:
                pass
    best = 0.0
    for i in range(0, len(points), _CHUNK):
        part = points[i:i + _CHUNK]
        d2 = (part * part).sum(1)[:, None] + (points * points).sum(1)[None, :] - 2.0 * part @ points.T
        best = max(best, float(d2.max()))
    return float(np.sqrt(max(best, 0.0)))


def _row_ends(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(k, j, first i, last i)`` of every non-empty row (along the last axis) of a 3D mask."""
    n = mask.shape[2]
    k, j = np.nonzero(mask.any(axis=2))
    first = mask.argmax(axis=2)[k, j]
    last = n - 1 - mask[:, :, ::-1].argmax(axis=2)[k, j]
    return k, j, first, last


def diameters_mm(mask: np.ndarray, spacing_zyx, s_axis: int = 0) -> tuple[float, float]:
    """``(axial, 3d)`` Feret diameters (mm, voxel centres) of a boolean (z, y, x) mask.

    ``s_axis``: the array axis that runs along the patient's S axis; axial diameters are measured in the
    planes perpendicular to it (see the module's notes).
    """
    m = np.moveaxis(mask, s_axis, 0)
    spacing = np.asarray(spacing_zyx, dtype=float)
    sp = np.array([spacing[s_axis], *np.delete(spacing, s_axis)])
    k, j, first, last = _row_ends(m)
    if not k.size:
        return 0.0, 0.0
    points = np.concatenate([np.stack([k, j, first], 1), np.stack([k, j, last], 1)]) * sp
    d3 = _farthest_distance(points)
    # slices by the diagonal of their bounding box, largest first: none smaller than the best diameter can beat it
    first_row = np.flatnonzero(np.r_[True, np.diff(k) != 0])  # ``k`` comes sorted from ``np.nonzero``
    last_row = np.r_[first_row[1:], len(k)]
    extent_j = (j[last_row - 1] - j[first_row]) * sp[1]
    extent_i = (np.maximum.reduceat(last, first_row) - np.minimum.reduceat(first, first_row)) * sp[2]
    bound = np.hypot(extent_j, extent_i)
    axial = 0.0
    for s in np.argsort(-bound, kind="stable"):
        if bound[s] <= axial:
            break
        a, b = first_row[s], last_row[s]
        plane = np.concatenate([np.stack([j[a:b], first[a:b]], 1), np.stack([j[a:b], last[a:b]], 1)]) * sp[1:]
        axial = max(axial, _farthest_distance(plane))
    return axial, d3


# --- surface and sphericity ----------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def crofton_weights(spacing_zyx: tuple[float, float, float]) -> tuple[float, ...]:
    """For each of ``DIRECTIONS``: the share of the unit sphere in the Voronoi cells of its physical ± directions."""
    from scipy.spatial import SphericalVoronoi

    vectors = np.array(DIRECTIONS, dtype=float) * np.asarray(spacing_zyx, dtype=float)
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    voronoi = SphericalVoronoi(np.vstack([units, -units]), radius=1.0)
    areas = voronoi.calculate_areas()
    n = len(DIRECTIONS)
    return tuple(float(v) for v in (areas[:n] + areas[n:]) / (4.0 * np.pi))


def _popcount(a: np.ndarray) -> int:
    if hasattr(np, "bitwise_count"):
        return int(np.bitwise_count(a).sum(dtype=np.int64))
    return int(_POPCOUNT[a].sum(dtype=np.int64))


def _pair(n: int, d: int) -> tuple[slice, slice]:
    return (slice(0, n - d), slice(d, n)) if d >= 0 else (slice(-d, n), slice(0, n + d))


def intercepts(mask: np.ndarray) -> tuple[int, ...]:
    """For each of ``DIRECTIONS``: how many voxel pairs (p, p + direction) have one voxel in and one out.

    Bit-packed along x: the 13 passes read an eighth of the mask each.
    """
    m = np.pad(mask.astype(bool, copy=False), 1)
    here = np.packbits(m, axis=2)
    shifted = np.packbits(np.concatenate([m[:, :, 1:], np.zeros_like(m[:, :, :1])], axis=2), axis=2)
    nz, ny = m.shape[:2]
    out = []
    for dz, dy, dx in DIRECTIONS:
        (az, bz), (ay, by) = _pair(nz, dz), _pair(ny, dy)
        other = shifted if dx else here
        out.append(_popcount(here[az, ay] ^ other[bz, by]))
    return tuple(out)


def surface_area_mm2(mask: np.ndarray, spacing_zyx) -> float:
    """Cauchy-Crofton estimate of a boolean (z, y, x) mask's surface area (mm²), weighted for the spacing."""
    spacing = tuple(float(s) for s in spacing_zyx)
    weights = crofton_weights(spacing)
    voxel = float(np.prod(spacing))
    counts = intercepts(mask)
    lengths = np.linalg.norm(np.array(DIRECTIONS, dtype=float) * np.asarray(spacing), axis=1)
    # ∫ over lines of direction u of the crossings = ∫ |n·u| dA, and the mean of |n·u| over the sphere is 1/2
    return float(2.0 * sum(w * c * voxel / length for w, c, length in zip(weights, counts, lengths)))


def sphericity(volume_mm3: float, area_mm2: float) -> float:
    """π^(1/3) (6V)^(2/3) / A, capped at 1 (NaN without a surface)."""
    if area_mm2 <= 0:
        return float("nan")
    return float(min(1.0, np.pi ** (1 / 3) * (6.0 * volume_mm3) ** (2 / 3) / area_mm2))


# --- measuring -----------------------------------------------------------------------------------------------------
def _measure(labels: np.ndarray, image: Optional[np.ndarray], grid: Geometry, names: Mapping[int, str],
             only: Optional[set] = None) -> list[StructureFeatures]:
    """One record per label present in ``labels`` (on ``grid``), all with ``component=0``."""
    labels = _integer_labels(labels)
    label_img = sitk_image(labels, grid)
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.SetComputePerimeter(False)  # ITK's surface ignores anisotropy: our own, below
    shape.SetComputeFeretDiameter(False)  # O(boundary²): our own, below
    shape.Execute(label_img)
    stats = None
    if image is not None:
        if tuple(image.shape) != tuple(labels.shape):
            raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
        if image.dtype == np.float16 or image.dtype == bool:  # types SimpleITK has no image for
            image = image.astype(np.float32)
        stats = sitk.LabelStatisticsImageFilter()
        stats.SetUseHistograms(False)
        stats.Execute(sitk_image(image, grid), label_img)
    s_axis = slice_axis(grid)
    nan = float("nan")
    out = []
    for lab in sorted(int(v) for v in shape.GetLabels()):
        if only is not None and lab not in only:
            continue
        box = _box(shape.GetBoundingBox(lab))
        mask = labels[box] == lab
        axial, d3 = diameters_mm(mask, grid.spacing_zyx, s_axis)
        volume = float(shape.GetPhysicalSize(lab))
        area = surface_area_mm2(mask, grid.spacing_zyx)
        if stats is not None:
            mean, sd = float(stats.GetMean(lab)), float(stats.GetSigma(lab))
            lo, hi = float(stats.GetMinimum(lab)), float(stats.GetMaximum(lab))
        else:
            mean = sd = lo = hi = nan
        out.append(StructureFeatures(lab, str(names.get(lab, f"label {lab}")), int(shape.GetNumberOfPixels(lab)),
                                     volume / 1000.0, tuple(shape.GetCentroid(lab)), axial, d3,
                                     sphericity(volume, area), mean, sd, lo, hi, 0))
    return out


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components of a boolean mask, numbered 1.. largest first; and how many there are."""
    cc = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)), False)
    relabelled = sitk.RelabelComponent(cc, 0, True)
    array = sitk.GetArrayFromImage(relabelled)
    return array, int(array.max()) if array.size else 0


def _component_records(labels: np.ndarray, image: Optional[np.ndarray], grid: Geometry, lab: int, name: str,
                       box, keep) -> list[StructureFeatures]:
    """Records of the components of label ``lab`` inside ``box`` whose number ``keep(components)`` selects."""
    start = [s.start for s in box]
    comp, count = _components(labels[box] == lab)
    wanted = keep(comp, count)
    if not wanted:
        return []
    crop_grid = sub_grid(grid, start, comp.shape)
    crop_image = None if image is None else image[box]
    if max(wanted) < count:
        comp = np.where(comp <= max(wanted), comp, 0)
    records = _measure(comp, crop_image, crop_grid, {}, only=set(wanted))
    return [replace(r, label=lab, name=name, component=r.label) for r in records]


def label_features(labels: np.ndarray, image: Optional[np.ndarray], grid: Geometry, names: Mapping[int, str],
                   components: bool = False, max_components: int = 20) -> list[StructureFeatures]:
    """One record per label present (``component=0``), in label order.

    ``components=True`` adds, after each label's record, one per connected component (``component`` 1, 2, …,
    largest first, at most ``max_components``): nodules, for example. ``image`` (HU for CT) gives the intensity
    statistics; None leaves them NaN. See the module's notes for the definitions.
    """
    labels = _integer_labels(np.asarray(labels))
    if tuple(labels.shape) != grid.shape_zyx:
        raise ValueError(f"labels {labels.shape} are not on the grid {grid.shape_zyx}")
    wholes = _measure(labels, image, grid, names)
    if not components:
        return wholes
    out = []
    for whole in wholes:
        out.append(whole)
        box = _bounding_box(labels == whole.label)
        out += _component_records(labels, image, grid, whole.label, whole.name, box,
                                  lambda _comp, count: list(range(1, min(count, max_components) + 1)))
    return out


def detection_features(labels: np.ndarray, image: Optional[np.ndarray], grid: Geometry, center_lps,
                       label_id: Optional[int] = None,
                       names: Optional[Mapping[int, str]] = None) -> Optional[StructureFeatures]:
    """The features of the connected component of the label map under ``center_lps`` (LPS mm).

    None when the centre lies outside the grid, on background, or (with ``label_id``) on another label.
    ``component`` is the component's rank within its label (1 = largest).
    """
    labels = _integer_labels(np.asarray(labels))
    if tuple(labels.shape) != grid.shape_zyx:
        raise ValueError(f"labels {labels.shape} are not on the grid {grid.shape_zyx}")
    idx = np.rint(grid.world_to_index(np.asarray(center_lps, dtype=float))).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(labels.shape)):
        return None
    lab = int(labels[tuple(idx)])
    if lab == 0 or (label_id is not None and lab != int(label_id)):
        return None
    box = _bounding_box(labels == lab)
    local = tuple(int(i - s.start) for i, s in zip(idx, box))
    name = str((names or {}).get(lab, f"label {lab}"))
    records = _component_records(labels, image, grid, lab, name, box, lambda comp, _count: [int(comp[local])])
    return records[0] if records else None
