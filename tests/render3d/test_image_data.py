"""numpy + Geometry → vtkImageData: shared memory, LPS placement, downsampling, crop-box frames (no rendering)."""
from __future__ import annotations

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.render3d.image_data import downsampled, interactive_step, local_bounds, lps_matrix, to_vtk_image


def oblique_geometry(shape=(5, 6, 7), handed=1.0) -> Geometry:
    t = np.radians(25)
    d = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]]) @ np.diag([1, 1, handed])
    return Geometry(shape, (2.5, 0.8, 1.1), (10.0, -20.0, 30.0), d)


def test_image_shares_the_arrays_memory_and_keeps_it_alive():
    g = oblique_geometry()
    arr = np.arange(np.prod(g.shape_zyx), dtype=np.int16).reshape(g.shape_zyx)
    img = to_vtk_image(arr, g)
    scalars = img.image.GetPointData().GetScalars()
    arr[2, 3, 4] = 12345
    assert scalars.GetValue(img.image.ComputePointId([4, 3, 2])) == 12345  # x-fastest: (i, j, k) → arr[k, j, i]
    assert np.shares_memory(img.array, arr)
    del arr
    assert scalars.GetValue(0) == 0  # the buffer still holds the array


def test_lps_frame_places_points_like_the_geometry():
    for handed in (1.0, -1.0):
        g = oblique_geometry(handed=handed)
        img = to_vtk_image(np.zeros(g.shape_zyx, np.uint8), g, frame="lps").image
        for kji in [(0, 0, 0), (4, 5, 6), (1, 2, 3)]:
            out = [0.0, 0.0, 0.0]
            img.TransformContinuousIndexToPhysicalPoint([float(v) for v in kji[::-1]], out)
            assert np.allclose(out, g.index_to_world(kji))


def test_local_frame_and_prop_matrix_place_points_like_the_geometry():
    g = oblique_geometry(handed=-1.0)
    vi = to_vtk_image(np.zeros(g.shape_zyx, np.float64), g, frame="local")
    assert vi.array.dtype == np.float32  # float64 is converted
    assert vi.image.GetOrigin() == (0.0, 0.0, 0.0)
    m = vi.lps_matrix()
    for kji in [(0, 0, 0), (4, 5, 6)]:
        local = vi.image.GetPoint(vi.image.ComputePointId(list(kji[::-1])))
        world = m.MultiplyPoint((*local, 1.0))[:3]
        assert np.allclose(world, g.index_to_world(kji))
    assert np.allclose(lps_matrix(g).MultiplyPoint((0, 0, 0, 1))[:3], g.origin_lps)


def test_downsampling_keeps_voxel_zero_and_scales_spacing():
    g = oblique_geometry(shape=(9, 10, 11))
    arr = np.random.default_rng(0).integers(0, 100, g.shape_zyx).astype(np.int16)
    small, sg = downsampled(arr, g, (1, 2, 3))
    assert small.shape == (9, 5, 4) and small.flags["C_CONTIGUOUS"]
    assert np.allclose(sg.index_to_world((4, 2, 3)), g.index_to_world((4, 4, 9)))
    assert small[4, 2, 3] == arr[4, 4, 9]
    same, same_g = downsampled(arr, g, (1, 1, 1))
    assert same is arr and same_g is g
    vi = to_vtk_image(arr, g, step_zyx=(1, 2, 3))
    assert vi.image.GetDimensions() == (4, 5, 9)


def test_interactive_step_caps_each_axis():
    g = Geometry((160, 512, 512), (2.0, 0.75, 0.75), (0, 0, 0))
    assert interactive_step(g, 256) == (1, 2, 2)
    assert interactive_step(g.with_shape((100, 100, 100)), 256) == (1, 1, 1)


def test_local_bounds_of_an_lps_box():
    g = Geometry((10, 10, 10), (1, 1, 1), (5.0, 6.0, 7.0), np.diag([-1.0, 1.0, 1.0]))
    b = local_bounds((-10.0, 0.0, 6.0, 16.0, 7.0, 8.0), g)
    assert np.allclose(b, (5.0, 15.0, 0.0, 10.0, 0.0, 1.0))


def test_rejects_wrong_shapes():
    g = oblique_geometry()
    with pytest.raises(ValueError):
        to_vtk_image(np.zeros((1, 2, 3)), g)
    with pytest.raises(ValueError):
        to_vtk_image(np.zeros(g.shape_zyx), g, frame="ras")
