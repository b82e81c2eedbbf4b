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


def compare_in_physical_space(ours: np.ndarray, our_geom, ref: np.ndarray, ref_geom, tol_mm=0.01):
    """Map every reference voxel centre into our grid; return (max position error mm, max |value diff|, n compared).

    Raises AssertionError if reference voxels do not land on our voxel centres or fall outside our grid.
    """
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
