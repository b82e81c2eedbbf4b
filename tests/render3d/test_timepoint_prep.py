"""Another time point of a 4D volume, prepared like the first (viewer.render3d.volume_prep.prepare_timepoint) and put
in the scene (Scene3D.show_timepoint): the same robust range and interactive step, the time point's own voxels, and
the transfer function, crop box and camera kept. No rendering."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from vtkmodules.util import numpy_support

from radview_base.cancel import Cancelled
from radview_base.geometry import Geometry
from viewer.io.volume import Volume
from viewer.render3d.scene import Scene3D
from viewer.render3d.volume_prep import prepare_timepoint, prepare_volume


@pytest.fixture
def volume_4d():
    g = Geometry((6, 16, 16), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    rng = np.random.default_rng(7)
    timepoints = rng.integers(0, 1000, (3, *g.shape_zyx)).astype(np.int16) + np.arange(3)[:, None, None, None] * 1000
    volume = Volume(timepoints[0], g, {"modality": "MR", "timepoints": timepoints})
    return volume, timepoints


def voxels(image) -> np.ndarray:
    nx, ny, nz = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nz, ny, nx)


def test_a_time_point_is_prepared_like_the_first(volume_4d):
    volume, timepoints = volume_4d
    first = prepare_volume(volume, max_size=8)
    assert first.timepoint == 0 and first.step == (1, 2, 2)
    later = prepare_timepoint(first, 2, timepoints[2])
    assert later.volume is volume and later.timepoint == 2 and later.step == first.step
    assert later.value_range == first.value_range  # the transfer function keeps its meaning over time
    np.testing.assert_array_equal(later.array("full")[0], timepoints[2])
    small, geometry = later.array("interactive")
    np.testing.assert_array_equal(small, timepoints[2][:, ::2, ::2])
    assert geometry.spacing_zyx == first.array("interactive")[1].spacing_zyx
    with pytest.raises(ValueError):
        prepare_timepoint(first, 1, timepoints[1][:3])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        prepare_timepoint(first, 1, timepoints[1], cancel)


def test_the_scene_draws_another_time_point_keeping_its_looks(volume_4d):
    volume, timepoints = volume_4d
    scene = Scene3D(mapper="cpu")
    scene.set_volume(prepare_volume(volume))
    scene.set_preset("mr_mip")
    scene.set_crop_box((0.0, 8.0, 0.0, 8.0, 0.0, 9.0))
    camera = scene.renderer.GetActiveCamera().GetPosition()
    assert scene.timepoint == 0
    np.testing.assert_array_equal(voxels(scene.image_data()), timepoints[0])
    scene.show_timepoint(prepare_timepoint(scene.prepared, 1, timepoints[1]))
    assert scene.timepoint == 1 and scene.volume is volume
    np.testing.assert_array_equal(voxels(scene.volume_prop.GetMapper().GetInput()), timepoints[1])
    assert scene.preset.name == "mr_mip" and scene.volume_prop.GetMapper().GetCropping()
    assert scene.renderer.GetActiveCamera().GetPosition() == camera
    other = Volume(timepoints[2], volume.geometry, {"modality": "MR"})
    with pytest.raises(ValueError):
        scene.show_timepoint(prepare_volume(other))
