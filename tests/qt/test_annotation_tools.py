"""Measuring on the 2D views with real mouse and key events (viewer/qt/overlays/annotation_tools.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from input_events import drag, mouse, move
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt

from radview_base.geometry import Geometry
from viewer.core import measurements as m
from viewer.core.session import Session
from viewer.io.volume import Volume
from viewer.qt.views.view_layout import ViewLayout

# anisotropic everywhere: slices 3.0 mm, rows 0.5 mm, columns 0.8 mm
GEOM = Geometry((30, 40, 50), (3.0, 0.5, 0.8), (-20.0, -10.0, 50.0))
K = 12  # the axial slice we draw on


def _volume() -> Volume:
    rng = np.random.default_rng(7)
    arr = rng.normal(40, 20, size=GEOM.shape_zyx).round().astype(np.int16)
    meta = {"modality": "CT", "series_uid": "1.2.3.4", "study_uid": "1.2.3", "window": (40, 400)}
    return Volume(arr, GEOM, meta=meta)


@pytest.fixture
def layout(qtbot):
    session = Session()
    widget = ViewLayout(session)
    qtbot.addWidget(widget)
    widget.resize(1200, 420)
    widget.show()
    qtbot.waitExposed(widget)
    session.load_volume(_volume())
    session.move_cursor(GEOM.index_to_world((K, 20, 25)))
    return widget


def pos_of(view, index_zyx) -> QPoint:
    """The viewport pixel (integer, as the mouse delivers it) nearest to where voxel ``index_zyx`` is drawn."""
    _k, row, col = view.plane.from_index(index_zyx)
    row_mm, col_mm = view.plane.pixel_spacing
    p = view.mapFromScene(view.vb.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm)))
    return QPoint(round(p.x()), round(p.y()))


def tolerance_mm(view) -> float:
    """Two half-pixel roundings of the mouse position, in mm."""
    return 2 * 0.5 * float(view.vb.viewPixelSize()[0]) * 1.01


def key(qtbot, view, k, mods=Qt.NoModifier):
    view.setFocus()
    qtbot.keyClick(view, k, mods)


def click(view, pos):
    mouse(view.viewport(), QEvent.MouseButtonPress, pos, Qt.LeftButton, Qt.LeftButton)
    mouse(view.viewport(), QEvent.MouseButtonRelease, pos, Qt.LeftButton, Qt.NoButton)


def test_length_by_drag_measures_millimetres_on_an_anisotropic_grid(layout, qtbot):
    axial, session = layout.views["axial"], layout.session
    assert axial.k == K
    key(qtbot, axial, Qt.Key_L)
    assert layout.tools.tool == "length"
    drag(axial.viewport(), pos_of(axial, (K, 5, 5)), pos_of(axial, (K, 35, 45)))
    (a,) = list(session.annotations)
    # 30 rows × 0.5 mm and 40 columns × 0.8 mm: sqrt(15² + 32²) mm
    assert a.kind == "length" and a.value == pytest.approx(math.hypot(15, 32), abs=tolerance_mm(axial))
    assert a.unit == "mm" and a.series_uid == "1.2.3.4"
    assert np.allclose(a.plane.normal, (0, 0, 1)) and a.plane.distance(GEOM.index_to_world((K, 0, 0))) == 0
    assert np.allclose(GEOM.world_to_index(a.points)[:, 0], K)  # both ends on the slice it was drawn on
    assert f"{a.value:.1f} mm" in texts(axial)
    # it is painted where it lies: the middle of the line is in the annotation colour (green: just drawn, selected)
    mid = pos_of(axial, (K, 20, 25))
    img = axial.viewport().grab().toImage()
    c = img.pixelColor(mid.x(), mid.y())
    assert layout.tools.selected == a.id and c.green() > 200 and c.red() < 160 and c.blue() < 180, c.name()
    # and on the coronal view across slices: 20 slices × 3 mm
    coronal = layout.views["coronal"]
    drag(coronal.viewport(), pos_of(coronal, (5, 20, 10)), pos_of(coronal, (25, 20, 10)))
    b = list(session.annotations)[1]
    assert b.value == pytest.approx(60.0, abs=tolerance_mm(coronal))
    assert np.allclose(b.plane.normal, (0, 1, 0))


def texts(view) -> list[str]:
    return [item.textItem.toPlainText() for item in view.annotation_overlay.items if hasattr(item, "textItem")]


def test_click_click_length_and_three_click_angle(layout, qtbot):
    axial, session = layout.views["axial"], layout.session
    key(qtbot, axial, Qt.Key_L)
    click(axial, pos_of(axial, (K, 10, 10)))
    move(axial.viewport(), pos_of(axial, (K, 10, 30)))  # the rubber band follows the mouse
    assert len(session.annotations) == 0 and axial.annotation_overlay.floating is not None
    click(axial, pos_of(axial, (K, 10, 40)))
    (line,) = list(session.annotations)
    assert line.value == pytest.approx(30 * 0.8, abs=tolerance_mm(axial))
    key(qtbot, axial, Qt.Key_A)
    # vertex at (20, 10); one arm 30 columns along x, the other 16 rows and 16 columns:
    # on screen (in voxels) 45°, in millimetres atan(8 / 12.8)
    for index in ((K, 20, 40), (K, 20, 10), (K, 36, 26)):
        click(axial, pos_of(axial, index))
    angle = list(session.annotations)[1]
    assert angle.kind == "angle" and angle.unit == "deg"
    assert angle.value == pytest.approx(math.degrees(math.atan2(8, 12.8)), abs=1.0)
    assert f"{angle.value:.1f}°" in texts(axial)
    key(qtbot, axial, Qt.Key_Escape)
    assert layout.tools.tool == ""


def test_ellipse_roi_statistics_come_from_the_pixels(layout, qtbot):
    axial, session = layout.views["axial"], layout.session
    key(qtbot, axial, Qt.Key_E)
    drag(axial.viewport(), pos_of(axial, (K, 8, 10)), pos_of(axial, (K, 32, 40)))
    (roi,) = list(session.annotations)
    expected = m.roi_stats(session.volume, "ellipse", roi.points, (0, 0, 1))
    assert roi.stats == pytest.approx(expected)
    # the ellipse spans 24 rows (12 mm) and 30 columns (24 mm): the area of that ellipse
    assert roi.stats["area_mm2"] == pytest.approx(math.pi * 6 * 12, rel=0.05)
    # the voxels inside, counted independently
    zz, yy, xx = np.ogrid[:30, :40, :50]
    centre = GEOM.world_to_index(roi.points[:2].mean(axis=0))
    a_mm, b_mm = m.length_mm(roi.points[:2]) / 2, m.length_mm(roi.points[2:]) / 2
    inside = (zz == K) & (((xx - centre[2]) * 0.8 / a_mm) ** 2 + ((yy - centre[1]) * 0.5 / b_mm) ** 2 <= 1 + 1e-9)
    assert roi.stats["mean"] == pytest.approx(session.volume.array[inside].mean())
    assert any(t.startswith("mean ") and " HU, SD " in t and t.endswith("cm²") for t in texts(axial))
    key(qtbot, axial, Qt.Key_R)
    drag(axial.viewport(), pos_of(axial, (K, 2, 2)), pos_of(axial, (K, 6, 8)))
    rect = list(session.annotations)[1]
    assert rect.kind == "rectangle" and rect.stats["mean"] is not None


def test_undo_redo_delete_and_move_with_real_events(layout, qtbot):
    axial, session = layout.views["axial"], layout.session
    key(qtbot, axial, Qt.Key_L)
    drag(axial.viewport(), pos_of(axial, (K, 10, 10)), pos_of(axial, (K, 10, 40)))
    key(qtbot, axial, Qt.Key_Escape)  # back to navigation
    key(qtbot, axial, Qt.Key_Escape)
    assert layout.tools.tool == ""
    (a,) = list(session.annotations)
    # undo / redo
    key(qtbot, axial, Qt.Key_Z, Qt.ControlModifier)
    assert len(session.annotations) == 0 and texts(axial) == []
    key(qtbot, axial, Qt.Key_Y, Qt.ControlModifier)
    assert list(session.annotations) == [a]
    # move: drag the line by its middle, 10 rows down (5 mm along +P); the length stays
    w, lvl = session.width, session.level
    drag(axial.viewport(), pos_of(axial, (K, 10, 25)), pos_of(axial, (K, 20, 25)))
    moved = session.annotations.get(a.id)
    assert (session.width, session.level) == (w, lvl)  # the drag was the annotation's, not window/level
    shift = moved.points - a.points
    assert np.allclose(shift[0], shift[1]) and shift[0] == pytest.approx((0, 5, 0), abs=tolerance_mm(axial))
    assert moved.value == pytest.approx(a.value)
    # reshape: drag an end point 10 columns further
    end = pos_of(axial, (K, 20, 40))
    drag(axial.viewport(), end, pos_of(axial, (K, 20, 45)))
    reshaped = session.annotations.get(a.id)
    assert reshaped.value == pytest.approx(35 * 0.8, abs=tolerance_mm(axial))
    assert np.allclose(reshaped.points[0], moved.points[0])
    # window/level still works away from the annotation
    drag(axial.viewport(), pos_of(axial, (K, 35, 5)), pos_of(axial, (K, 35, 5)) + QPoint(60, 0))
    assert session.width > w
    # select by clicking, delete with Delete; undo brings it back; Backspace deletes too
    click(axial, pos_of(axial, (K, 20, 30)))
    assert layout.tools.selected == a.id
    key(qtbot, axial, Qt.Key_Delete)
    assert len(session.annotations) == 0
    key(qtbot, axial, Qt.Key_Z, Qt.ControlModifier)
    assert session.annotations.get(a.id) == reshaped
    click(axial, pos_of(axial, (K, 20, 30)))
    key(qtbot, axial, Qt.Key_Backspace)
    assert len(session.annotations) == 0
    # undo all the way back (delete, reshape, move: the first version; then the drawing), redo forward
    for _ in range(3):
        key(qtbot, axial, Qt.Key_Z, Qt.ControlModifier)
    assert list(session.annotations) == [a]
    key(qtbot, axial, Qt.Key_Z, Qt.ControlModifier)
    assert len(session.annotations) == 0
    for _ in range(3):
        key(qtbot, axial, Qt.Key_Y, Qt.ControlModifier)
    assert list(session.annotations) == [reshaped]
    key(qtbot, axial, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # Ctrl+Shift+Z redoes too
    assert len(session.annotations) == 0


def test_annotations_show_in_the_other_views_where_they_cross(layout, qtbot):
    axial, coronal, sagittal = (layout.views[v] for v in ("axial", "coronal", "sagittal"))
    session = layout.session
    key(qtbot, axial, Qt.Key_L)
    drag(axial.viewport(), pos_of(axial, (K, 10, 25)), pos_of(axial, (K, 30, 25)))  # along y, at column 25
    key(qtbot, axial, Qt.Key_E)
    drag(axial.viewport(), pos_of(axial, (K, 10, 10)), pos_of(axial, (K, 30, 40)))
    line, roi = list(session.annotations)
    # the coronal view at row 20 crosses both: the line in a point, the ellipse in a chord along x
    session.move_cursor(GEOM.index_to_world((K, 20, 25)))
    crossing = dict((a.id, pieces) for a, pieces in coronal.annotation_overlay.crossing())
    assert set(crossing) == {line.id, roi.id}
    (point,) = crossing[line.id]
    assert np.allclose(GEOM.world_to_index(point[0]), (K, 20, 25), atol=0.6)
    (chord,) = crossing[roi.id]
    assert m.length_mm(chord) == pytest.approx(m.length_mm(roi.points[:2]), rel=0.02)  # through the centre
    assert coronal.annotation_overlay.in_plane() == []
    # the sagittal view at column 25 contains the whole line (it lies in that plane)
    sag = dict((a.id, pieces) for a, pieces in sagittal.annotation_overlay.crossing())
    assert len(sag[line.id]) == 1 and len(sag[line.id][0]) == 2
    # another axial slice: not shown there; back on its slice: shown in full
    axial.set_slice(K + 3)
    assert axial.annotation_overlay.in_plane() == [] and texts(axial) == []
    axial.set_slice(K)
    assert {a.id for a in axial.annotation_overlay.in_plane()} == {line.id, roi.id}
    # a coronal slice beyond the ellipse: nothing there
    session.move_cursor(GEOM.index_to_world((K, 38, 25)))
    assert coronal.annotation_overlay.crossing() == []


def test_text_arrow_and_navigation_when_no_tool(layout, qtbot):
    axial, session = layout.views["axial"], layout.session
    asked = []
    layout.tools.ask_text = lambda parent, done: (asked.append(parent), done("cyst"))
    key(qtbot, axial, Qt.Key_T)
    drag(axial.viewport(), pos_of(axial, (K, 20, 25)), pos_of(axial, (K, 10, 35)))
    (arrow,) = list(session.annotations)
    assert asked == [axial] and arrow.kind == "arrow" and arrow.label == "cyst"
    assert np.allclose(GEOM.world_to_index(arrow.points[0]), (K, 20, 25), atol=0.6)  # the tip is where it started
    assert "cyst" in texts(axial)
    # with a tool chosen, a left drag draws instead of changing the window
    w = session.width
    key(qtbot, axial, Qt.Key_L)
    drag(axial.viewport(), pos_of(axial, (K, 35, 5)), pos_of(axial, (K, 35, 20)))
    assert session.width == w and len(session.annotations) == 2
    # Esc twice: back to navigation, and the left drag is window/level again
    key(qtbot, axial, Qt.Key_Escape)
    key(qtbot, axial, Qt.Key_Escape)
    drag(axial.viewport(), pos_of(axial, (K, 38, 5)), pos_of(axial, (K, 38, 5)) + QPoint(50, 0))
    assert session.width > w and len(session.annotations) == 2
    # a double-click still maximises when no tool is chosen
    qtbot.mouseDClick(axial.viewport(), Qt.LeftButton, pos=pos_of(axial, (K, 38, 45)))
    assert layout.visible_panes() == [axial]
