"""The 3D view follows the time point of a 4D series (run under xvfb-run): the session's time point is prepared off
the GUI thread and drawn when ready — the scene's ``vtkImageData`` then holds that time point's voxels —, the newest
time point asked for wins over older requests, and the transfer function and camera stay. On a 4D MR series written
with pydicom (tests/four_d_cases.py): 4 time points × 5 slices of 16², every voxel distinct."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from four_d_cases import value, write_4d_series
from vtkmodules.util import numpy_support

from viewer.core.session import Session
from viewer.io.dicom_index import scan
from viewer.logic import open_study
from viewer.qt.views.view3d import View3D
from viewer.render3d import volume_prep

HAVE_X = bool(os.environ.get("DISPLAY")) and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb"
WAIT_MS = 30000  # loose: llvmpipe on a loaded machine


def pixels(t: int, z: int) -> np.ndarray:
    return (value(t, z) + np.arange(256).reshape(16, 16)).astype(np.int16)


@pytest.fixture(scope="module")
def series_4d(tmp_path_factory):
    folder = write_4d_series(tmp_path_factory.mktemp("perfusion"), n_t=4, n_z=5, size=16, pixels=pixels)
    (entry,) = scan(str(folder)).series
    return entry


@pytest.fixture
def rig(qtbot, series_4d):
    if not HAVE_X:
        pytest.skip("VTK in a Qt widget needs an X display: run under xvfb-run -a -s '-screen 0 1600x1000x24'")
    session = Session()
    volume = open_study.load_series(series_4d)
    assert volume.n_timepoints == 4
    view = View3D(session)
    qtbot.addWidget(view)
    view.resize(200, 200)
    view.show()
    qtbot.waitExposed(view)
    session.load_volume(volume)
    qtbot.waitUntil(lambda: view.scene.prepared is not None, timeout=WAIT_MS)
    yield session, view, volume
    view.close()


def drawn(view) -> np.ndarray:
    """The voxels of the image the scene's volume prop draws, (z, y, x)."""
    image = view.scene.volume_prop.GetMapper().GetInput()
    nx, ny, nz = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nz, ny, nx)


def test_the_3d_view_draws_the_sessions_time_point(rig, qtbot):
    session, view, volume = rig
    timepoints = volume.meta["timepoints"]
    assert view.scene.timepoint == 0
    np.testing.assert_array_equal(drawn(view), timepoints[0])
    preset = view.scene.preset.name
    camera = view.scene.renderer.GetActiveCamera().GetPosition()
    for k in (2, 1, 3):
        session.set_timepoint(k)
        assert view.scene.timepoint != k  # prepared in a worker: the GUI thread did not wait for it
        qtbot.waitUntil(lambda k=k: view.scene.timepoint == k, timeout=WAIT_MS)
        np.testing.assert_array_equal(drawn(view), timepoints[k])
        np.testing.assert_array_equal(numpy_support.vtk_to_numpy(
            view.scene.image_data("full").GetPointData().GetScalars()).reshape(5, 16, 16), timepoints[k])
        assert int(drawn(view)[4, 0, 0]) == value(k, 4)
    assert view.scene.preset.name == preset and view.scene.renderer.GetActiveCamera().GetPosition() == camera
    qtbot.waitUntil(view.idle, timeout=WAIT_MS)
    last = view.capture()
    session.set_timepoint(0)
    first = view.capture()  # an explicit capture prepares the time point at once, and draws it
    assert view.scene.timepoint == 0 and not np.array_equal(first, last)


def test_the_newest_time_point_wins(rig, qtbot, monkeypatch):
    """Preparations held on a gate: the time points asked for while one runs replace each other; a result is drawn
    while the scene shows an older request's, never over the session's own time point."""
    session, view, volume = rig
    gate = threading.Event()
    prepared = []
    real = volume_prep.prepare_timepoint

    def held(base, t, array, cancel=None):
        prepared.append(t)
        assert gate.wait(WAIT_MS / 1000)
        return real(base, t, array, cancel)

    monkeypatch.setattr(volume_prep, "prepare_timepoint", held)
    # 0 → 1 (running, held) → 0: the scene already draws the session's time point; 1 comes back and is dropped
    session.set_timepoint(1)
    session.set_timepoint(0)
    gate.set()
    qtbot.waitUntil(view.idle, timeout=WAIT_MS)
    assert prepared == [1] and view.scene.timepoint == 0
    np.testing.assert_array_equal(drawn(view), volume.meta["timepoints"][0])
    # 0 → 1 (running, held) → 2 → 3: 2 is replaced by 3 before it starts; 1 is drawn (newer than 0), then 3
    gate.clear()
    shown = []
    real_show = view.scene.show_timepoint
    monkeypatch.setattr(view.scene, "show_timepoint", lambda p: (shown.append(p.timepoint), real_show(p)))
    prepared.clear()
    for k in (1, 2, 3):
        session.set_timepoint(k)
    gate.set()
    qtbot.waitUntil(lambda: view.scene.timepoint == 3 and view.idle(), timeout=WAIT_MS)
    assert prepared == [1, 3] and shown == [1, 3]
    np.testing.assert_array_equal(drawn(view), volume.meta["timepoints"][3])


def test_a_hidden_view_catches_up_when_shown(rig, qtbot):
    """In 1×1 and 1×3 the 3D view is hidden: cine over time prepares nothing for it; shown again, it draws the
    session's time point."""
    session, view, volume = rig
    view.hide()
    for k in (1, 2):
        session.set_timepoint(k)
    qtbot.wait(100)
    assert view.scene.timepoint == 0
    view.show()
    qtbot.waitUntil(lambda: view.scene.timepoint == 2, timeout=WAIT_MS)
    np.testing.assert_array_equal(drawn(view), volume.meta["timepoints"][2])
