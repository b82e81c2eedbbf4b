"""Brush (B) and eraser (X / Shift+B) on a label map in the main window, with real mouse and key events: the voxels
changed (against a mask computed by hand from the geometry), undo / redo, memory per stroke, the legend's volumes,
the other views and the 3D surfaces following."""
from __future__ import annotations

import getpass

import numpy as np
import pytest
from input_events import drag, mouse, move
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from radview_base.geometry import Geometry
from viewer.core.layers import LabelLayer
from viewer.io.volume import LabelMap, Volume

# anisotropic voxels (slices 3 mm, rows 0.6 mm, columns 0.9 mm) and a flipped x axis
GEOM = Geometry((24, 40, 50), (3.0, 0.6, 0.9), (-20.0, -10.0, 50.0), ((-1, 0, 0), (0, 1, 0), (0, 0, 1)))
VOXEL_ML = 3.0 * 0.6 * 0.9 / 1000
LUNG, LESION = 2, 3


def _labels():
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[:, 5:20, 5:25] = LUNG
    return labels


@pytest.fixture
def window(new_window):
    w = new_window()
    rng = np.random.default_rng(3)
    image = rng.normal(-700, 30, GEOM.shape_zyx).astype(np.int16)
    w.session.load_volume(Volume(image, GEOM, meta={"modality": "CT", "study_uid": "9.8.7", "series_uid": "9.8.7.1"}),
                          preset="lung")
    layer = LabelLayer(LabelMap(_labels(), GEOM, {LUNG: "lung_left", LESION: "lesion"}), name="labels.nii.gz")
    w.session.add_layer(layer)
    w.layer = layer
    yield w
    w.close()


def pos_of(view, index_zyx) -> QPoint:
    """The viewport pixel nearest to where voxel ``index_zyx`` is drawn."""
    _k, row, col = view.plane.from_index(index_zyx)
    row_mm, col_mm = view.plane.pixel_spacing
    p = view.mapFromScene(view.vb.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm)))
    return QPoint(round(p.x()), round(p.y()))


def expected_mask(view, k, start_index, radius_mm, end_index=None):
    """By hand: every display pixel of slice ``k`` within ``radius_mm`` (mm along the plane's rows and columns)
    of the voxel ``start_index`` (or of the segment to ``end_index``), as a 3D mask of the label map."""
    plane = view.plane
    _, r0, c0 = plane.from_index(start_index)
    _, r1, c1 = plane.from_index(end_index if end_index is not None else start_index)
    row_mm, col_mm = plane.pixel_spacing
    mask = np.zeros(GEOM.shape_zyx, bool)
    n_rows, n_cols = plane.shape
    for r in range(n_rows):
        for c in range(n_cols):
            p = np.array([(r - r0) * row_mm, (c - c0) * col_mm])
            d = np.array([(r1 - r0) * row_mm, (c1 - c0) * col_mm])
            t = 0.0 if not d.any() else min(max(p @ d / (d @ d), 0.0), 1.0)
            if np.linalg.norm(p - t * d) <= radius_mm + 1e-9:
                mask[tuple(int(v) for v in np.rint(plane.to_index(k, r, c)))] = True
    return mask


def _focus(qtbot, w, widget):
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=2000)


def _choose_lesion_in_the_legend(qtbot, w):
    block = w.layer_panel.block_of(w.layer)
    item = block.items()[LESION]
    rect = block.legend.visualItemRect(item)
    qtbot.mouseClick(block.legend.viewport(), Qt.LeftButton, pos=rect.center())
    assert w.session.active_label == (w.layer, LESION)
    assert item.font(0).bold() and not block.items()[LUNG].font(0).bold()
    widgets = w.measure.paint_widgets
    assert widgets.label_box.currentText() == "3  lesion"


@pytest.mark.parametrize("view_name,target", [("axial", (12, 18, 22)), ("coronal", (10, 18, 30)),
                                              ("sagittal", (8, 12, 22))])
def test_a_click_paints_the_disc_on_the_slice_of_the_view(window, qtbot, view_name, target):
    w = window
    view = w.layout_widget.views[view_name]
    w.session.move_cursor(GEOM.index_to_world(target))  # every view through the target voxel
    _choose_lesion_in_the_legend(qtbot, w)
    _focus(qtbot, w, view)
    qtbot.keyClick(view, Qt.Key_B)
    assert w.layout_widget.tools.tool == "brush" and w.measure.tool_actions["brush"].isChecked()
    w.measure.paint_widgets.radius.setValue(4.0)  # the toolbar's Radius box
    assert w.layout_widget.tools.brush_radius_mm == 4.0
    before = w.layer.label_map.array.copy()
    width, level = w.session.width, w.session.level
    pos = pos_of(view, target)
    mouse(view.viewport(), QEvent.MouseButtonPress, pos, Qt.LeftButton, Qt.LeftButton)
    mouse(view.viewport(), QEvent.MouseButtonRelease, pos, Qt.LeftButton, Qt.NoButton)
    mask = expected_mask(view, view.k, target, 4.0)
    after = w.layer.label_map.array
    changed = after != before
    assert np.array_equal(changed, mask & (before != LESION)) and (after[mask] == LESION).all()
    # the disc lies in the view's plane only: one slice along the view's slice axis
    assert set(np.nonzero(changed)[view.plane.slice_axis].tolist()) == {target[view.plane.slice_axis]}
    assert mask.sum() >= 9
    assert (w.session.width, w.session.level) == (width, level) and len(w.session.annotations) == 0
    edit = view.label_painter.last_edit
    assert edit.voxels == int(changed.sum()) and edit.nbytes == edit.voxels * 5
    assert w.layer.meta["edited_by"] == getpass.getuser() and w.layer.meta["edited_at"]


def test_a_stroke_live_in_every_view_then_undo_redo_and_the_legend(window, qtbot):
    w = window
    axial, coronal = w.layout_widget.views["axial"], w.layout_widget.views["coronal"]
    start, end = (12, 22, 40), (12, 22, 14)  # one row (y = 22) across the lung's edge
    w.session.move_cursor(GEOM.index_to_world(start))
    _choose_lesion_in_the_legend(qtbot, w)
    _focus(qtbot, w, axial)
    qtbot.keyClick(axial, Qt.Key_B)
    for _ in range(2):
        qtbot.keyClick(axial, Qt.Key_BracketLeft)  # 5 → 4 → 3 mm ([ smaller, by about 20 %, at least 0.5 mm)
    assert w.layout_widget.tools.brush_radius_mm == 3.0 and w.measure.paint_widgets.radius.value() == 3.0
    block = w.layer_panel.block_of(w.layer)
    assert block.volume_text(LESION) == "—"
    lung_ml = w.layer.volumes_ml[LUNG]
    before = w.layer.label_map.array.copy()
    events = []
    w.session.labels_edited.connect(lambda layer, done: events.append(done))
    coronal_before = coronal._label_items[id(w.layer)].image.copy()

    # press and drag, not yet released: the label map and the coronal view show the stroke already
    a, b = pos_of(axial, start), pos_of(axial, end)
    mouse(axial.viewport(), QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for i in range(1, 7):
        move(axial.viewport(), a + (b - a) * (i / 6), Qt.LeftButton)
    assert events and not any(events)
    assert not np.array_equal(coronal._label_items[id(w.layer)].image, coronal_before)
    assert block.volume_text(LESION) == "—"  # the legend: after the stroke
    mouse(axial.viewport(), QEvent.MouseButtonRelease, b, Qt.LeftButton, Qt.NoButton)
    assert events[-1] is True and events.count(True) == 1

    mask = expected_mask(axial, 12, start, 3.0, end_index=end)
    painted = w.layer.label_map.array.copy()
    changed = painted != before
    assert np.array_equal(changed, mask) and (painted[mask] == LESION).all()
    n_lung = int(np.count_nonzero(before[mask] == LUNG))
    assert 0 < n_lung < mask.sum()
    # the undo record: the changed voxels only (a 4-byte index and a 1-byte old value each)
    edit = axial.label_painter.last_edit
    assert edit.voxels == int(mask.sum()) and edit.nbytes == 5 * edit.voxels
    assert edit.nbytes < before.nbytes / 10  # (the core test checks a 512 × 512 × 40 map: less than one slice)
    # the legend: the lesion gained the stroke's voxels, the lung lost those painted over
    assert w.layer.volumes_ml[LESION] == pytest.approx(mask.sum() * VOXEL_ML)
    assert w.layer.volumes_ml[LUNG] == pytest.approx(lung_ml - n_lung * VOXEL_ML)
    assert block.volume_text(LESION) == f"{mask.sum() * VOXEL_ML:.1f} mL"
    assert block.title() == f"labels.nii.gz (edited by {getpass.getuser()})"
    assert "painted" in w.notices.status_label.text() and "Ctrl+Z" in w.notices.status_label.text()

    # Ctrl+Z gives back the exact array (and the volumes); Ctrl+Y the painted one
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert np.array_equal(w.layer.label_map.array, before)
    assert w.layer.volumes_ml[LUNG] == pytest.approx(lung_ml) and w.layer.volumes_ml[LESION] == 0
    assert block.volume_text(LESION) == "0.0 mL" and "edited_by" not in w.layer.meta
    assert np.array_equal(coronal._label_items[id(w.layer)].image, coronal_before)
    qtbot.keyClick(axial, Qt.Key_Y, Qt.ControlModifier)
    assert np.array_equal(w.layer.label_map.array, painted)
    assert block.volume_text(LESION) == f"{mask.sum() * VOXEL_ML:.1f} mL"

    # the eraser (X) over the same path: the lesion's voxels go back to background
    qtbot.keyClick(axial, Qt.Key_X)
    assert w.layout_widget.tools.tool == "eraser"
    drag(axial.viewport(), a, b, steps=6)
    erased = w.layer.label_map.array
    assert (erased[mask] == 0).all() and np.array_equal(erased[~mask], before[~mask])
    assert np.array_equal(erased[mask & (before == 0)], before[mask & (before == 0)])  # background restored
    assert w.layer.volumes_ml[LESION] == 0 and block.volume_text(LESION) == "0.0 mL"
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert np.array_equal(w.layer.label_map.array, painted)


def test_keys_radius_cursor_and_a_hidden_layer(window, qtbot):
    w = window
    axial = w.layout_widget.views["axial"]
    tools = w.layout_widget.tools
    _focus(qtbot, w, axial)
    qtbot.keyClick(axial, Qt.Key_B, Qt.ShiftModifier)  # Shift+B: the eraser too
    assert tools.tool == "eraser"
    qtbot.keyClick(axial, Qt.Key_B)
    assert tools.tool == "brush"
    qtbot.keyClick(axial, Qt.Key_BracketRight)
    assert tools.brush_radius_mm == 6.0 and w.measure.paint_widgets.radius.value() == 6.0
    # the brush circle follows the mouse, its radius in mm
    c = axial.viewport().rect().center()
    move(axial.viewport(), c)
    cursor = axial.label_painter.cursor
    assert cursor.isVisible() and cursor.rect().width() == pytest.approx(12.0)
    qtbot.keyClick(axial, Qt.Key_Escape)
    assert tools.tool == "" and not cursor.isVisible()
    # a hidden layer is not painted blind
    qtbot.keyClick(axial, Qt.Key_B)
    w.session.set_display(overlays_visible=False)
    before = w.layer.label_map.array.copy()
    drag(axial.viewport(), c, c + QPoint(40, 0))
    assert np.array_equal(w.layer.label_map.array, before)
    assert "hidden" in w.notices.status_label.text()
    assert not w.session.annotations.undo_stack.can_undo
    # the menu shows the keys
    assert w.measure.tool_actions["brush"].text() == "Brush\tB"
    assert w.measure.tool_actions["eraser"].text() == "Eraser\tX or Shift+B"


def test_the_3d_surfaces_are_rebuilt_after_a_stroke(window, qtbot):
    w = window
    view3d = w.ensure_3d_view()
    if view3d is None:
        pytest.skip("VTK cannot draw here")
    w.set_layout("2x2")
    qtbot.waitUntil(lambda: not view3d.surfaces_pending() and w.layer in view3d._shown_layers, timeout=30000)
    assert LESION not in view3d.scene.label_actors(w.layer)
    axial = w.layout_widget.views["axial"]
    w.session.set_active_label(w.layer, LESION)
    w.session.move_cursor(GEOM.index_to_world((12, 30, 30)))
    _focus(qtbot, w, axial)
    qtbot.keyClick(axial, Qt.Key_B)
    ready = []
    view3d.surfaces_ready.connect(ready.append)
    built = []
    original = view3d.build_surfaces
    view3d.build_surfaces = lambda layer: (built.append(layer), original(layer))[1]
    p = pos_of(axial, (12, 30, 30))
    drag(axial.viewport(), p, p + QPoint(20, 0), steps=4)
    assert built == [w.layer]  # once, when the stroke ended (not on every mouse move)
    qtbot.waitUntil(lambda: ready == [w.layer] and not view3d.surfaces_pending(), timeout=30000)
    assert LESION in view3d.scene.label_actors(w.layer) and view3d._shown_layers.count(w.layer) == 1
    w.measure.undo_action.trigger()  # undo: rebuilt again, the lesion's surface goes
    qtbot.waitUntil(lambda: len(ready) == 2 and not view3d.surfaces_pending(), timeout=30000)
    assert LESION not in view3d.scene.label_actors(w.layer)
