"""Helpers shared by tests: where the shared data lives and geometry-aware comparison."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("RADVIEW_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found: {p} (tests read real cases from ../shared/data)")
    return p


def sitk_geometry_arrays(path):
    """Reference image read with SimpleITK: list of 3D arrays (one per volume) and its Geometry."""
    import SimpleITK as sitk

    from viewer.io.image_io import geometry_from_sitk

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    if img.GetDimension() == 4:
        size = list(img.GetSize())
        size[3] = 0
        geom = geometry_from_sitk(sitk.Extract(img, size, [0, 0, 0, 0]))
        vols = [arr[t] for t in range(arr.shape[0])]
    else:
        geom = geometry_from_sitk(img)
        vols = [arr]
    return vols, geom


def _corners(shape) -> np.ndarray:
    return np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1) for c in (0, shape[2] - 1)],
                    dtype=float)


def _axis_map(our_geom, ref_geom):
    """``(A, o)`` with our continuous index = A @ reference index + o (the two grids' affine relation), or None when
    ``rint(A)`` is not a signed permutation (an oblique or rescaled relation)."""
    o = our_geom.world_to_index(ref_geom.index_to_world(np.zeros(3)))
    a = np.stack([our_geom.world_to_index(ref_geom.index_to_world(np.eye(3)[k])) - o for k in range(3)], axis=1)
    ar = np.rint(a)
    if not (np.all(np.abs(ar).sum(axis=0) == 1) and np.all(np.abs(ar).sum(axis=1) == 1)):
        return None
    return a, o


def _compare_by_axes(ours, our_geom, ref, ref_geom, tol_mm):
    """The fast path of :func:`compare_in_physical_space` when the grids differ by axis order, flips and an integer
    offset: every check is made at the reference grid's 8 corners — the mapping is affine, so the rounding residual,
    the position error and the voxels' extent are largest at a corner — and the values are compared on a
    transposed, flipped view of ours. None when the corners do not prove it (the per-voxel path then decides)."""
    mapping = _axis_map(our_geom, ref_geom)
    if mapping is None:
        return None
    a, o = mapping
    ar, ob = np.rint(a), np.rint(o)
    shape = ref_geom.shape_zyx
    corners = _corners(shape)
    cont = corners @ a.T + o
    nearest = corners @ ar.T + ob
    if np.max(np.abs(cont - nearest)) >= 0.45:  # rint of every voxel might not be this affine map
        return None
    world = ref_geom.index_to_world(corners)
    pos_err = float(np.max(np.linalg.norm(our_geom.index_to_world(nearest) - world, axis=1)))
    assert pos_err <= tol_mm, f"reference voxels are {pos_err:.4f} mm off our voxel centres"
    lo, hi = nearest.min(axis=0), nearest.max(axis=0)
    inside = bool(np.all(lo >= 0) and np.all(hi < np.asarray(our_geom.shape_zyx)))
    assert inside, "reference voxels fall outside our volume"
    view = ours
    source_axis = []
    for ref_axis in range(3):
        q = int(np.flatnonzero(ar[:, ref_axis])[0])
        source_axis.append(q)
    for q in range(3):
        ref_axis = source_axis.index(q)
        n, start = shape[ref_axis], int(ob[q])
        index = [slice(None)] * view.ndim
        down = slice(start, start - n if start - n >= 0 else None, -1)
        index[q] = slice(start, start + n) if ar[q, ref_axis] > 0 else down
        view = view[tuple(index)]
    view = np.transpose(view, source_axis + list(range(3, view.ndim)))
    if view.ndim == 4:  # colour: compare the channels we have (references may add alpha)
        ref = ref.reshape(*shape, -1)[..., : view.shape[-1]]
    else:
        ref = ref.reshape(shape)
    max_diff = 0.0
    for k in range(shape[0]):  # slice by slice: no float64 copy of the whole volume
        d = np.abs(view[k].astype(np.float64) - ref[k].astype(np.float64))
        max_diff = max(max_diff, float(d.max()) if d.size else 0.0)
    return pos_err, max_diff, int(np.prod(shape))


def compare_in_physical_space(ours: np.ndarray, our_geom, ref: np.ndarray, ref_geom, tol_mm=0.01):
    """Map every reference voxel centre into our grid; return (max position error mm, max |value diff|, n compared).

    Raises AssertionError if reference voxels do not land on our voxel centres or fall outside our grid. Grids that
    differ by axis order, flips and a whole-voxel offset are compared on a view (checks at the corners, where an
    affine map's errors are largest); any other relation voxel by voxel.
    """
    fast = _compare_by_axes(ours, our_geom, ref, ref_geom, tol_mm)
    if fast is not None:
        return fast
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in ref_geom.shape_zyx], indexing="ij")
    idx_ref = np.stack([kk, jj, ii], axis=-1).reshape(-1, 3)
    world = ref_geom.index_to_world(idx_ref)
    cont = our_geom.world_to_index(world)
    nearest = np.rint(cont)
    back = our_geom.index_to_world(nearest)
    pos_err = float(np.max(np.linalg.norm(back - world, axis=1)))
    assert pos_err <= tol_mm, f"reference voxels are {pos_err:.4f} mm off our voxel centres"
    nearest = nearest.astype(int)
    inside = np.all((nearest >= 0) & (nearest < np.asarray(our_geom.shape_zyx)), axis=1)
    assert inside.all(), f"{(~inside).sum()} reference voxels fall outside our volume"
    a = ours[tuple(nearest.T)].astype(np.float64)
    if ours.ndim == 4:  # colour: compare the channels we have (references may add alpha)
        b = ref.reshape(len(a), -1)[:, : ours.shape[-1]].astype(np.float64)
    else:
        b = ref.reshape(-1).astype(np.float64)
    return pos_err, float(np.max(np.abs(a - b))), len(b)
