"""tests/reference.compare_in_physical_space: its fast path (grids that differ by axis order, flips and a whole-voxel
offset, compared on a view after checks at the corners) gives what the voxel-by-voxel path gives, differences
included; an oblique relation goes voxel by voxel."""
from __future__ import annotations

import numpy as np
import pytest
import reference as R

from radview_base.geometry import Geometry


def _voxel_by_voxel(ours, our_geom, ref, ref_geom):
    fast = R._compare_by_axes
    R._compare_by_axes = lambda *args: None
    try:
        return R.compare_in_physical_space(ours, our_geom, ref, ref_geom)
    finally:
        R._compare_by_axes = fast


def _rearranged(rng, ref, ref_geom):
    """``ref`` with its axes permuted, some flipped and a margin added, and the geometry that keeps every voxel where
    it was in space."""
    perm, flips = list(rng.permutation(3)), rng.uniform(size=3) < 0.5
    arr = np.transpose(ref, perm)
    for axis in np.flatnonzero(flips):
        arr = np.flip(arr, axis)
    pad = [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(3)]
    ours = np.pad(arr, pad, constant_values=7)

    def ref_index(ours_index):
        moved = np.asarray(ours_index, float) - [lo for lo, _ in pad]
        moved = np.where(flips, np.asarray(arr.shape) - 1 - moved, moved)
        out = np.zeros(3)
        out[perm] = moved
        return out

    origin = ref_geom.index_to_world(ref_index([0, 0, 0]))
    steps = [ref_geom.index_to_world(ref_index(np.eye(3)[k])) - origin for k in range(3)]  # of k, j, i
    spacing = [float(np.linalg.norm(s)) for s in steps]
    direction = np.stack([steps[2] / spacing[2], steps[1] / spacing[1], steps[0] / spacing[0]], axis=1)
    return ours, Geometry(ours.shape, tuple(spacing), tuple(origin), direction=direction)


@pytest.mark.parametrize("trial", range(30))
def test_the_fast_path_equals_the_voxel_by_voxel_comparison(trial):
    rng = np.random.default_rng(trial)
    shape = tuple(int(x) for x in rng.integers(2, 7, 3))
    ref = rng.integers(-100, 100, shape).astype(np.int16)
    ref_geom = Geometry(shape, tuple(float(x) for x in rng.uniform(0.5, 2, 3)), (1.0, 2.0, 3.0))
    ours, our_geom = _rearranged(rng, ref, ref_geom)
    if trial % 2:
        ours.flat[rng.integers(ours.size)] += 5  # a difference, inside the reference's extent or not
    assert R._compare_by_axes(ours, our_geom, ref, ref_geom, 0.01) is not None  # the fast path was taken
    fast, slow = R.compare_in_physical_space(ours, our_geom, ref, ref_geom), _voxel_by_voxel(ours, our_geom, ref,
                                                                                          ref_geom)
    assert fast[0] < 1e-6 and fast[1] == slow[1] and fast[2] == slow[2] == ref.size


def test_a_half_voxel_shift_is_refused_by_both_paths():
    ref = np.arange(27, dtype=np.int16).reshape(3, 3, 3)
    ref_geom = Geometry((3, 3, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    our_geom = Geometry((3, 3, 3), (1.0, 1.0, 1.0), (0.3, 0.0, 0.0))
    with pytest.raises(AssertionError, match="off our voxel centres"):
        R.compare_in_physical_space(ref, our_geom, ref, ref_geom)
    with pytest.raises(AssertionError, match="off our voxel centres"):
        _voxel_by_voxel(ref, our_geom, ref, ref_geom)


def test_an_oblique_relation_goes_voxel_by_voxel():
    ref_geom = Geometry((2, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    our_geom = Geometry((2, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), direction=np.array([[c, -s, 0], [s, c, 0],
                                                                                       [0, 0, 1.0]]))
    assert R._compare_by_axes(np.zeros((2, 2, 2)), our_geom, np.zeros((2, 2, 2)), ref_geom, 0.01) is None
