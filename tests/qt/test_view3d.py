"""The 3D view linked to the session and a 2D view, driven through real mouse events (run under xvfb-run).

A small synthetic CT (48×64×64, 1.5 mm × 1.5 mm × 2 mm) holds a body ball (40 HU), a "bone" ball at the
centre (1000 HU) and two labelled blobs: ``lung_left`` on the patient's left (+x in LPS) and
``lung_right`` on the right. Expected screen positions come from the renderer's own world→display
transform; what the pixels show is read back with ``View3D.capture()`` (vtkWindowToImageFilter).
Renders are small and few: llvmpipe is slow and other tests run alongside. VTK in a Qt widget needs an
X display (Qt's offscreen platform gives it no usable window): without one the widget tests are skipped.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from input_events import drag, mouse, move
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget
from scipy import ndimage

from radview_base.geometry import Geometry
from viewer.core.layers import NAMED_COLORS, LabelLayer
from viewer.core.session import Session
from viewer.io.volume import LabelMap, Volume
from viewer.qt.views.slice_view import SliceView
from viewer.qt.views.view3d import View3D, adapted_image_sample_distance, vtk_widget_supported

HAVE_X = bool(os.environ.get("DISPLAY")) and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb"
NO_X = "VTK in a Qt widget needs an X display: run under xvfb-run -a -s '-screen 0 1600x1000x24'"

LEFT_C = np.array([20.0, 0.0, 8.0])  # lung_left: the patient's left (+x), a little superior
RIGHT_C = np.array([-20.0, 0.0, -8.0])  # lung_right
BLOB_R = 10.0


def _world(g: Geometry) -> np.ndarray:
    k, j, i = np.indices(g.shape_zyx)
    return g.index_to_world(np.stack([k, j, i], axis=-1).astype(float))


@pytest.fixture(scope="module")
def synthetic():
    g = Geometry((48, 64, 64), (2.0, 1.5, 1.5), (-47.25, -47.25, -47.0), np.eye(3))
    w = _world(g)
    arr = np.full(g.shape_zyx, -1000, np.int16)
    arr[np.linalg.norm(w, axis=-1) < 42] = 40
    arr[np.linalg.norm(w, axis=-1) < 7] = 1000
    labels = np.zeros(g.shape_zyx, np.uint8)
    labels[np.linalg.norm(w - LEFT_C, axis=-1) < BLOB_R] = 1
    labels[np.linalg.norm(w - RIGHT_C, axis=-1) < BLOB_R] = 2
    volume = Volume(arr, g, {"modality": "CT"})
    return volume, LabelMap(labels, g, {1: "lung_left", 2: "lung_right"})


class Linked:
    def __init__(self, qtbot, volume=None, size=(470, 250)):
        if not HAVE_X:
            pytest.skip(NO_X)
        self.session = Session()
        self.window = QWidget()
        row = QHBoxLayout(self.window)
        row.setContentsMargins(0, 0, 0, 0)
        self.view3d = View3D(self.session)
        self.axial = SliceView(self.session, "axial")
        row.addWidget(self.view3d, 1)
        row.addWidget(self.axial, 1)
        qtbot.addWidget(self.window)
        self.window.resize(*size)
        self.window.show()
        qtbot.waitExposed(self.window)
        if volume is not None:
            self.session.load_volume(volume)

    def add_labels(self, qtbot, label_map) -> LabelLayer:
        layer = LabelLayer(label_map, name="truth")
        with qtbot.waitSignal(self.view3d.surfaces_ready, timeout=15000):
            self.session.add_layer(layer)
        return layer

    def qt_pos(self, point_lps) -> QPointF:
        """Where an LPS point is drawn, in the VTK widget's Qt coordinates."""
        x, y = self.view3d.scene.world_to_display(point_lps)
        return QPointF(x, self.view3d.vtk_widget.height() - 1 - y)

    def close(self):
        self.view3d.close()
        self.window.close()


@pytest.fixture
def linked(qtbot, synthetic):
    made = []

    def make(with_volume=True, **kw):
        rig = Linked(qtbot, synthetic[0] if with_volume else None, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def colour_mask(rgb: np.ndarray, name: str, tol: float = 0.12, corner: bool = True) -> np.ndarray:
    """Pixels whose chromaticity is that of ``NAMED_COLORS[name]`` (shading changes brightness, not hue).

    Unless ``corner`` is False, thin lines (the cursor's plane outlines: the coronal one is green
    too) are opened away and the orientation cube's corner is left out.
    """
    target = np.asarray(NAMED_COLORS[name], float)
    target = target / target.sum()
    px = rgb.astype(float)
    total = px.sum(axis=-1)
    chroma = px / np.maximum(total, 1)[..., None]
    mask = (np.abs(chroma - target).max(axis=-1) < tol * 0.5) & (total > 120)
    if corner:
        mask = ndimage.binary_opening(mask, np.ones((3, 3), bool))
        h, w = mask.shape
        mask[int(h * 0.78):, : int(w * 0.22)] = False  # the orientation cube's corner
    return mask


def centroid_x(mask: np.ndarray) -> float:
    assert mask.sum() > 20, "colour not found in the image"
    return float(np.nonzero(mask)[1].mean())


def patch(rgb: np.ndarray, qt_pos: QPointF, r: int = 2) -> np.ndarray:
    x, y = int(round(qt_pos.x())), int(round(qt_pos.y()))
    return rgb[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3)


# --- (a) the 2D Shift+move moves the 3D cursor ----------------------------------------------------
def test_shift_move_in_2d_moves_the_3d_cursor(linked):
    rig = linked()
    cursor = rig.view3d.scene.cursor
    assert np.allclose(cursor.point_lps, rig.session.cursor_lps)
    before = rig.session.cursor_lps.copy()
    vp = rig.axial.viewport()
    move(vp, vp.rect().center() + QPoint(-40, 30), modifiers=Qt.ShiftModifier)
    after = rig.session.cursor_lps
    assert not np.allclose(after[:2], before[:2], atol=1.0)
    assert np.allclose(cursor.point_lps, after)
    assert np.allclose(cursor._sphere.GetCenter(), after)
    assert cursor.sphere.GetVisibility()
    # each plane outline lies in its plane through the cursor: axial at the cursor's z, sagittal at its x
    axial_bounds = cursor.outlines["axial"].GetMapper().GetInput().GetBounds()
    sagittal_bounds = cursor.outlines["sagittal"].GetMapper().GetInput().GetBounds()
    assert axial_bounds[4] == pytest.approx(after[2]) and axial_bounds[5] == pytest.approx(after[2])
    assert sagittal_bounds[0] == pytest.approx(after[0]) and sagittal_bounds[1] == pytest.approx(after[0])


# --- (b) a click on a surface moves the session cursor and the 2D slice; a drag does not ---------
def test_click_on_a_surface_moves_the_cursor_and_the_axial_slice(linked, synthetic, qtbot):
    rig = linked()
    rig.add_labels(qtbot, synthetic[1])
    rig.view3d.set_camera("anterior")
    rig.view3d.capture()
    k0 = rig.axial.k
    before = rig.session.cursor_lps.copy()
    target = rig.qt_pos(LEFT_C)
    # a drag from the same place rotates the camera and leaves the cursor alone
    camera = rig.view3d.scene.renderer.GetActiveCamera()
    position = np.array(camera.GetPosition())
    drag(rig.view3d.vtk_widget, target, target + QPointF(30, 0))
    assert not np.allclose(camera.GetPosition(), position)
    assert np.allclose(rig.session.cursor_lps, before)
    rig.view3d.set_camera("anterior")
    rig.view3d.capture()
    # a click (press + release, no drag) picks the blob's front surface
    with qtbot.waitSignal(rig.view3d.picked, timeout=2000):
        mouse(rig.view3d.vtk_widget, QEvent.MouseButtonPress, target, Qt.LeftButton, Qt.LeftButton)
        mouse(rig.view3d.vtk_widget, QEvent.MouseButtonRelease, target, Qt.LeftButton, Qt.NoButton)
    p = rig.session.cursor_lps
    assert p[0] == pytest.approx(LEFT_C[0], abs=1.0) and p[2] == pytest.approx(LEFT_C[2], abs=1.0)
    assert p[1] == pytest.approx(LEFT_C[1] - BLOB_R, abs=1.5)  # anterior view: the front (−y) surface
    assert np.allclose(rig.view3d.scene.cursor.point_lps, p)
    assert rig.axial.k == rig.axial.plane.slice_of(p) != k0
    assert abs(rig.axial.k - round(rig.session.volume.geometry.world_to_index(LEFT_C)[0])) <= 1
    # Shift+click picks too; a click on the background moves nothing
    target = rig.qt_pos(RIGHT_C)
    mouse(rig.view3d.vtk_widget, QEvent.MouseButtonPress, target, Qt.LeftButton, Qt.LeftButton, Qt.ShiftModifier)
    mouse(rig.view3d.vtk_widget, QEvent.MouseButtonRelease, target, Qt.LeftButton, Qt.NoButton, Qt.ShiftModifier)
    assert rig.session.cursor_lps[0] == pytest.approx(RIGHT_C[0], abs=1.0)
    here = rig.session.cursor_lps.copy()
    corner = QPointF(rig.view3d.vtk_widget.width() - 3, 3)
    mouse(rig.view3d.vtk_widget, QEvent.MouseButtonPress, corner, Qt.LeftButton, Qt.LeftButton)
    mouse(rig.view3d.vtk_widget, QEvent.MouseButtonRelease, corner, Qt.LeftButton, Qt.NoButton)
    assert np.allclose(rig.session.cursor_lps, here)


# --- (c) surfaces appear after layer_added, in the labels' colours -------------------------------
def test_surfaces_appear_in_the_label_colours(linked, synthetic, qtbot):
    rig = linked()
    rig.session.move_cursor((-44.0, -44.0, -44.0))  # cursor outlines out of the way (box edges)
    before = rig.view3d.capture()
    assert not colour_mask(before, "lung_left").any()
    layer = rig.add_labels(qtbot, synthetic[1])
    assert set(rig.view3d.scene.label_actors(layer)) == {1, 2}
    img = rig.view3d.capture()
    left, right = colour_mask(img, "lung_left"), colour_mask(img, "lung_right")
    assert left.sum() > 200 and right.sum() > 200
    for name, centre in (("lung_left", LEFT_C), ("lung_right", RIGHT_C)):
        hits = colour_mask(patch(img, rig.qt_pos(centre))[None], name, corner=False)
        assert hits.mean() > 0.8, name
    # hiding a label (as the layer panel does) hides its surface
    rig.session.update_layer(layer, hidden_labels={1})
    assert colour_mask(rig.view3d.capture(), "lung_left").sum() < 5
    # removing the layer removes the surfaces
    rig.session.remove_layer(layer)
    assert rig.view3d.scene.label_actors(layer) == {}


# --- (d) camera buttons: anterior vs posterior swaps the sides ---------------------------------
def test_camera_buttons_change_the_view(linked, synthetic, qtbot):
    rig = linked()
    rig.session.move_cursor((-44.0, -44.0, -44.0))
    rig.add_labels(qtbot, synthetic[1])
    qtbot.mouseClick(rig.view3d.camera_buttons["anterior"], Qt.LeftButton)
    front = rig.view3d.capture()
    qtbot.mouseClick(rig.view3d.camera_buttons["posterior"], Qt.LeftButton)
    back = rig.view3d.capture()
    assert np.abs(front.astype(int) - back.astype(int)).mean() > 1.0
    mid = front.shape[1] / 2
    # anterior: the patient's left on the screen's right; posterior: on the left
    assert centroid_x(colour_mask(front, "lung_left")) > mid + 10
    assert centroid_x(colour_mask(front, "lung_right")) < mid - 10
    assert centroid_x(colour_mask(back, "lung_left")) < mid - 10
    assert centroid_x(colour_mask(back, "lung_right")) > mid + 10
    camera = rig.view3d.scene.renderer.GetActiveCamera()
    qtbot.mouseClick(rig.view3d.camera_buttons["superior"], Qt.LeftButton)
    assert np.allclose(camera.GetDirectionOfProjection(), (0, 0, -1), atol=1e-6)
    qtbot.mouseClick(rig.view3d.camera_buttons["left"], Qt.LeftButton)
    assert np.allclose(camera.GetDirectionOfProjection(), (-1, 0, 0), atol=1e-6)


# --- responsiveness: interactive quality while dragging when full-quality frames are slow ----------
def test_drag_renders_at_interactive_quality_then_settles_to_full(linked, synthetic, qtbot):
    rig = linked()
    view = rig.view3d
    view.lod_min_cells = 0  # every surface gets a coarse copy here
    layer = rig.add_labels(qtbot, synthetic[1])
    mapper = view.scene.label_actors(layer)[1].GetMapper()
    view.capture()  # a full-quality frame: the full meshes
    full_poly = mapper.GetInput()
    assert view.frame_ms["full"] > 0
    view.slow_frame_ms = 0.0  # every full frame counts as slow here
    view.settle_ms = 1000  # frames come back asynchronously: the interactive ones arrive before it settles
    qualities, inputs = [], []
    view.rendered.connect(lambda quality, _ms: (qualities.append(quality), inputs.append(mapper.GetInput())))
    centre = QPointF(view.vtk_widget.width() / 2, view.vtk_widget.height() / 2)
    drag(view.vtk_widget, centre, centre + QPointF(40, 10), steps=4)
    assert view.scene.quality == "interactive"
    qtbot.waitUntil(lambda: "interactive" in qualities, timeout=5000)
    coarse = [poly for q, poly in zip(qualities, inputs) if q == "interactive"]
    assert all(poly is not full_poly for poly in coarse)
    assert 0 < coarse[0].GetNumberOfCells() < full_poly.GetNumberOfCells()
    qtbot.waitUntil(lambda: view.scene.quality == "full" and qualities[-1] == "full", timeout=5000)
    assert mapper.GetInput() is full_poly
    view.slow_frame_ms = 1e9  # fast enough: drags stay at full quality
    qualities.clear()
    drag(view.vtk_widget, centre, centre + QPointF(-40, 0), steps=3)
    qtbot.waitUntil(lambda: bool(qualities), timeout=5000)
    assert set(qualities) == {"full"}


def test_vtk_widgets_are_known_not_to_work_under_the_offscreen_platform(qapp):
    platform = qapp.platformName()
    if platform == "offscreen":  # plain pytest: the main window must keep its 3D placeholder
        assert not vtk_widget_supported()
    elif platform == "xcb":  # under xvfb-run
        assert vtk_widget_supported()


def test_interactive_ray_spacing_adapts_to_the_frame_time():
    assert adapted_image_sample_distance(2.0, 80.0, 80.0) == pytest.approx(2.0)
    assert adapted_image_sample_distance(2.0, 160.0, 80.0) == pytest.approx(2.0 * 2 ** 0.5)  # rays ∝ 1/d²
    assert adapted_image_sample_distance(2.0, 10_000.0, 80.0) == pytest.approx(3.0)  # at most ×1.5 a frame
    assert adapted_image_sample_distance(3.9, 10_000.0, 80.0) == pytest.approx(4.0)  # capped
    assert adapted_image_sample_distance(3.0, 5.0, 80.0) == pytest.approx(2.0)  # never finer than the scene's


# --- (e) no volume, and closing ---------------------------------------------------------------
def test_empty_session_and_closing_leave_nothing_running(linked, synthetic, qtbot):
    rig = linked(with_volume=False)
    view = rig.view3d
    img = view.capture()
    assert img.shape[2] == 3 and img[: img.shape[0] // 2].max() == 0
    for button in view.camera_buttons.values():
        qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.mouseClick(view.reset_button, Qt.LeftButton)
    centre = QPointF(view.vtk_widget.width() / 2, view.vtk_widget.height() / 2)
    mouse(view.vtk_widget, QEvent.MouseButtonPress, centre, Qt.LeftButton, Qt.LeftButton)
    mouse(view.vtk_widget, QEvent.MouseButtonRelease, centre, Qt.LeftButton, Qt.NoButton)
    drag(view.vtk_widget, centre, centre + QPointF(20, 0), steps=2)
    assert not view.preset_combo.isEnabled() and not view.crop_button.isEnabled()
    # load, start a surface build, clear, load again: a build superseded on the way is dropped
    rig.session.load_volume(synthetic[0])
    assert view.preset_combo.currentData() == "ct_bone" and view.scene.volume is synthetic[0]
    rig.session.add_layer(LabelLayer(synthetic[1]))
    assert view.surfaces_pending()
    rig.session.clear()
    assert not view.surfaces_pending() and view.scene.volume is None
    view.capture()
    rig.session.load_volume(synthetic[0])
    rig.session.add_layer(LabelLayer(synthetic[1]))
    view.set_crop_enabled(True)
    view.close()  # while the build may still run: cancelled and joined
    assert not view.tasks._running
    rig.session.move_cursor((0.0, 0.0, 0.0))  # the closed view is no longer subscribed
    rig.session.remove_layer(rig.session.layers[0])
    with pytest.raises(RuntimeError):
        view.capture()


def test_a_view_made_after_loading_shows_the_volume_layers_and_cursor(qtbot, synthetic):
    if not HAVE_X:
        pytest.skip(NO_X)
    session = Session()
    session.load_volume(synthetic[0])
    layer = LabelLayer(synthetic[1])
    session.add_layer(layer)
    session.move_cursor((-44.0, -44.0, -44.0))
    view = View3D(session)
    qtbot.addWidget(view)
    try:
        view.resize(240, 240)
        view.show()
        qtbot.waitExposed(view)
        assert view.scene.volume is synthetic[0] and np.allclose(view.scene.cursor.point_lps, session.cursor_lps)
        qtbot.waitUntil(lambda: set(view.scene.label_actors(layer)) == {1, 2}, timeout=15000)
        assert colour_mask(view.capture(), "lung_left").sum() > 100
        # G (overlays off in the session) hides the surfaces too
        session.set_display(overlays_visible=False)
        assert not any(a.GetVisibility() for a in view.scene.label_actors(layer).values())
    finally:
        view.close()


# --- controls: preset, shading, crop box ------------------------------------------------------
def test_preset_shading_crop_and_transfer_editor(linked, qtbot):
    rig = linked()
    view = rig.view3d
    names = [view.preset_combo.itemData(i) for i in range(view.preset_combo.count())]
    assert "ct_bone" in names and "mr_default" not in names
    view.preset_combo.setCurrentIndex(names.index("ct_mip"))
    assert view.scene.preset.name == "ct_mip" and view.scene.preset.blend == "mip"
    assert not view.shading_button.isChecked()
    mip = view.capture()
    view.shading_button.setChecked(True)
    assert view.scene.volume_property.GetShade() == 1
    view.crop_button.click()
    assert view.crop_enabled and view.scene.crop_box_lps is not None
    b = list(view.scene.volume_bounds_lps())
    b[0] = 5.0  # keep only the patient's left half
    view.crop_box.place(b)  # as a drag of the box's face does
    assert view.scene.crop_box_lps[0] == pytest.approx(5.0)
    cropped = view.capture()
    assert np.abs(cropped.astype(int) - mip.astype(int)).mean() > 1.0
    view.crop_button.click()
    assert not view.crop_enabled and view.scene.crop_box_lps is None
    # the transfer-function editor edits the scene's preset live; Reset goes back
    view.preset_combo.setCurrentIndex(names.index("ct_bone"))
    editor = view.open_transfer_editor()
    assert editor.isVisible() and editor.preset.opacity_points == view.scene.preset.opacity_points
    # drag the (450 HU, 0.45) opacity point down with the mouse (hover first, as a hand does)
    box = editor.plot.getViewBox()
    start = QPointF(editor.plot.mapFromScene(box.mapViewToScene(QPointF(450, 0.45))))
    qtbot.wait(30)  # pyqtgraph drops mouse moves closer than 10 ms
    move(editor.plot.viewport(), start)
    qtbot.wait(30)
    drag(editor.plot.viewport(), start, start + QPointF(0, 40), steps=3)
    dragged = dict(view.scene.preset.opacity_points)[450.0]
    assert 0.05 < dragged < 0.4
    editor.add_point(100.0, 0.9)
    assert (100.0, 0.9) in view.scene.preset.opacity_points
    assert view.preset_combo.currentData() == "__custom__"
    editor.add_point(100.0, -0.1)  # a colour point, coloured as the band is there
    assert 100.0 in [v for v, *_ in view.scene.preset.color_points]
    editor.set_color(0, (1.0, 0.0, 0.0))
    assert view.scene.preset.color_points[0][1:] == (1.0, 0.0, 0.0)
    editor.reset()
    assert view.scene.preset.opacity_points == editor.original.opacity_points
    view.preset_combo.setCurrentIndex(names.index("ct_lung"))
    assert editor.preset.opacity_points == view.scene.preset.opacity_points


# --- the demo study, once ------------------------------------------------------------------------
def test_demo_study_surfaces_and_pick(qtbot, demo_volume, demo_labels):
    rig = Linked(qtbot, demo_volume, size=(420, 230))
    try:
        view = rig.view3d
        view.set_volume_visible(False)  # surfaces only: a full-resolution ray cast is slow on llvmpipe
        rig.add_labels(qtbot, demo_labels)
        rig.session.update_layer(rig.session.layers[0], hidden_labels={1})  # the body hides the rest
        view.set_camera("anterior")
        img = view.capture()
        mid = img.shape[1] / 2
        assert centroid_x(colour_mask(img, "lung_left")) > mid + 10
        assert centroid_x(colour_mask(img, "lung_right")) < mid - 10
        # a click on the left lung puts the cursor in the left lung (2D axial view follows)
        left = colour_mask(img, "lung_left")
        rows, cols = np.nonzero(left)
        i = np.argsort(cols)[len(cols) // 2]
        target = QPointF(float(cols[i]), float(rows[i]))
        mouse(view.vtk_widget, QEvent.MouseButtonPress, target, Qt.LeftButton, Qt.LeftButton)
        mouse(view.vtk_widget, QEvent.MouseButtonRelease, target, Qt.LeftButton, Qt.NoButton)
        idx = np.rint(demo_volume.geometry.world_to_index(rig.session.cursor_lps)).astype(int)
        near = demo_labels.array[tuple(slice(max(0, v - 2), v + 3) for v in idx)]
        assert (near == 2).any()
        assert rig.axial.k == rig.axial.plane.slice_of(rig.session.cursor_lps)
    finally:
        rig.close()


# --- frames drawn off the GUI thread: tagged, stale ones dropped, a toggle at once on the actors --------------------
def test_frames_come_back_tagged_and_stale_ones_are_dropped(linked, synthetic, qtbot):
    from viewer.render3d.frame_spec import FrameResult

    rig = linked()
    view = rig.view3d
    if not view.presenter.threaded:
        pytest.skip("no offscreen OpenGL here: frames are drawn on the GUI thread")
    layer = rig.add_labels(qtbot, synthetic[1])
    qtbot.waitUntil(view.idle, timeout=30000)
    shown = view.vtk_widget.rgb
    assert shown is not None and view.quality == "full"
    blank = np.zeros_like(shown)
    view.presenter._on_frame(FrameResult(1, "interactive", blank, 1.0))  # older than the frame on screen
    assert view.vtk_widget.rgb is shown
    # a toggle changes the actors at once; the picture follows with the next frame, drawn elsewhere
    rig.session.update_layer(layer, visible=False)
    assert not any(a.GetVisibility() for a in view.scene.label_actors(layer).values())
    assert view.vtk_widget.rgb is shown and not view.idle()
    qtbot.waitUntil(view.idle, timeout=30000)
    assert colour_mask(view.vtk_widget.rgb, "lung_left").sum() < 5
    # a full-quality frame asked for before the latest request is dropped (it would jump back to the old camera)
    view.slow_frame_ms = 1e9  # camera changes draw at full quality at once
    view.set_camera("posterior")
    qtbot.wait(20)
    first = view.presenter._submitted[0]
    view.set_camera("left")
    qtbot.wait(20)
    assert view.presenter._submitted[0] > first
    view.presenter._on_frame(FrameResult(first, "full", blank, 1.0))
    assert view.vtk_widget.rgb is not blank
    qtbot.waitUntil(view.idle, timeout=30000)
