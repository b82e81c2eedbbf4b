"""Reformats and time in the real widgets: interpolated coronal display, thick slabs (computed off the GUI thread
when dear: the event loop keeps running), oblique planes by Ctrl+drag on the crosshair with their combined
letters, and a 4D series stepped through its time points by keys, the toolbar's slider and cine over time."""
from __future__ import annotations

import math

import numpy as np
import pytest
from four_d_cases import value, write_4d_series
from input_events import drag, move
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication
from stall_probe import STALL_BOUND_S, StallProbe

from viewer.core.reformat import Slab, project, render, upsample_linear
from viewer.core.session import Session
from viewer.qt.views.view_layout import ViewLayout


@pytest.fixture
def layout(qtbot, demo_volume):
    session = Session()
    widget = ViewLayout(session)
    qtbot.addWidget(widget)
    widget.resize(1200, 420)
    widget.show()
    qtbot.waitExposed(widget)
    session.load_volume(demo_volume)
    yield widget  # (pytest-qt closes and deletes the widget; a render still running is simply dropped)


def settle(qtbot, layout) -> None:
    for view in layout.views.values():
        qtbot.waitUntil(lambda v=view: v.renderer.idle, timeout=20000)
    QApplication.processEvents()


def cursor_viewport(view) -> QPointF:
    return QPointF(view.mapFromScene(view.vb.mapViewToScene(view.hline.pos())))


def test_the_coronal_reformat_is_interpolated_on_near_isotropic_pixels(layout, demo_volume):
    coronal = layout.views["coronal"]
    assert coronal.plane.pixel_spacing == (2.0, 0.75)
    shown = coronal.image_item.image
    plain = coronal.plane.extract(demo_volume.array, coronal.k)
    assert shown.shape == (3 * plain.shape[0], plain.shape[1])
    np.testing.assert_allclose(shown, upsample_linear(plain, (3, 1)))
    np.testing.assert_allclose(shown[1::3], plain)  # the voxel centres keep their values
    # the displayed image covers the same millimetres as the plane: the voxel at the cursor is under the cursor
    rect = coronal.image_item.mapRectToView(coronal.image_item.boundingRect())
    rows, cols = coronal.plane.shape
    assert (rect.width(), rect.height()) == pytest.approx((cols * 0.75, rows * 2.0))
    assert layout.views["axial"].image_item.image.shape == (512, 512)  # square pixels: as stored


def test_a_slab_shows_in_every_view_with_its_thickness_in_the_corner(layout, qtbot, demo_volume):
    session = layout.session
    session.set_slab("MIP", 10.0)
    settle(qtbot, layout)
    axial = layout.views["axial"]
    assert axial.corner_texts()["top_left"][1].endswith("MIP 10.0 mm")
    assert layout.views["coronal"].corner_texts()["top_left"][1].endswith("MIP 9.8 mm")  # 13 × 0.75 mm
    k = axial.k
    expected = project(demo_volume.array[k - 2:k + 3], "MIP", 0)  # axial k runs with z: 5 slices of 2 mm
    np.testing.assert_array_equal(axial.rendered.values, expected)
    np.testing.assert_array_equal(axial.image_item.image, expected)
    move(axial.viewport(), axial.viewport().rect().center())  # the read-out is the slab's value there
    world, shown_value = axial.hover
    _k, row, col = axial.plane.from_world(world)
    assert shown_value == expected[int(round(row)), int(round(col))]
    session.set_slab("Average", 10.0)
    settle(qtbot, layout)
    np.testing.assert_allclose(axial.rendered.values, demo_volume.array[k - 2:k + 3].mean(axis=0), atol=1e-3)
    session.set_slab("MinIP", 10.0)
    settle(qtbot, layout)
    assert axial.corner_texts()["top_left"][1].endswith("MinIP 10.0 mm")
    np.testing.assert_array_equal(axial.rendered.values, demo_volume.array[k - 2:k + 3].min(axis=0))
    session.set_slab("", 10.0)
    np.testing.assert_array_equal(axial.image_item.image, demo_volume.array[k])
    assert "MinIP" not in axial.corner_texts()["top_left"][1]


def test_thick_slabs_never_block_the_gui(layout, qtbot, demo_volume):
    """A 100-slice MIP of the 512² demo CT, and a 30 mm MIP of an oblique plane, run off the GUI thread: the event
    loop keeps running (largest gap printed), and the image that comes is the slab's."""
    session = layout.session
    axial = layout.views["axial"]
    probe = StallProbe().start()
    session.set_slab("MIP", 200.0)  # 100 slices of 2 mm
    assert not axial.renderer.idle  # running on the worker
    settle(qtbot, layout)
    gap_native = probe.stop()
    first, end = Slab("MIP", 200.0).slices(axial.plane, axial.k)
    assert end - first == 100
    np.testing.assert_array_equal(axial.rendered.values, demo_volume.array[first:end].max(axis=0))
    session.set_slab("MIP", 30.0)
    settle(qtbot, layout)
    probe = StallProbe().start()
    session.rotate_planes("axial", math.radians(25))
    settle(qtbot, layout)
    gap_oblique = probe.stop()
    print(f"largest GUI gap: 100-slice MIP {gap_native * 1000:.0f} ms, oblique 30 mm MIP {gap_oblique * 1000:.0f} ms")
    assert gap_native < STALL_BOUND_S and gap_oblique < STALL_BOUND_S
    coronal = layout.views["coronal"]
    assert coronal.plane.oblique
    expected = render(demo_volume.array, coronal.plane, coronal.k, Slab("MIP", 30.0)).values
    np.testing.assert_array_equal(coronal.rendered.values, expected)


def test_ctrl_drag_turns_the_crosshair_into_oblique_planes(layout, qtbot):
    session = layout.session
    axial, coronal, sagittal = (layout.views[v] for v in ("axial", "coronal", "sagittal"))
    centre = cursor_viewport(axial)
    radius = 120
    start = centre + QPointF(radius, 0)
    end = centre + QPointF(radius * math.cos(math.radians(30)), radius * math.sin(math.radians(30)))
    drag(axial.viewport(), start.toPoint(), end.toPoint(), modifiers=Qt.ControlModifier, steps=12)
    settle(qtbot, layout)
    assert not axial.plane.oblique and coronal.plane.oblique and sagittal.plane.oblique
    assert axial.hline.angle == pytest.approx(30, abs=1.5) and axial.vline.angle == pytest.approx(120, abs=1.5)
    assert coronal.plane.edge_letters() == {"right": "LP", "left": "RA", "top": "S", "bottom": "I"}
    assert sagittal.plane.edge_letters()["right"] == "PR"
    assert coronal.corner_texts()["top_left"][0].endswith("reformat")
    # the rotated planes still pass through the cursor, which stays where it was on screen
    assert np.allclose(coronal.plane.to_world(*coronal.plane.from_world(session.cursor_lps)), session.cursor_lps)
    # the oblique view reads the volume's voxel under the mouse (nearest), as the native ones do
    move(coronal.viewport(), cursor_viewport(coronal).toPoint() + QPoint(3, 2))
    world, shown = coronal.hover
    assert shown == session.volume.value_at(world)
    # scrolling an oblique view moves along its normal
    before = session.cursor_lps.copy()
    coronal.step_slice(5)
    settle(qtbot, layout)
    moved = session.cursor_lps - before
    normal = np.cross(*coronal.plane.screen_vectors())
    assert abs(abs(moved @ normal) - 5 * coronal.plane.slice_spacing) < 1e-6
    # a brush stroke on an oblique plane is refused, with a message
    messages = []
    layout.tools.message.connect(messages.append)
    layout.tools.set_tool("brush")
    drag(coronal.viewport(), cursor_viewport(coronal).toPoint(), cursor_viewport(coronal).toPoint() + QPoint(9, 0))
    layout.tools.set_tool("")
    assert messages and "reset the plane rotation" in messages[-1]
    session.reset_rotations()
    settle(qtbot, layout)
    assert not coronal.plane.oblique and coronal.plane.edge_letters()["right"] == "L"
    assert axial.hline.angle == pytest.approx(0) and axial.vline.angle == pytest.approx(90)


@pytest.fixture
def four_d_window(new_window, qtbot, tmp_path):
    folder = write_4d_series(tmp_path / "dce", n_t=3, n_z=5)
    w = new_window(size=(1280, 800))
    w.open_path(str(folder))
    qtbot.waitUntil(lambda: w.session.volume is not None and w.session.n_timepoints == 3, timeout=30000)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    yield w
    if w.reading.reformat.time_cine_running:
        w.reading.reformat.toggle_time_cine()


def shown_values(w) -> dict:
    """Per view: the value shown at the centre of its image, and the slice it shows."""
    out = {}
    for name, view in w.layout_widget.views.items():
        image = view.image_item.image
        out[name] = float(image[image.shape[0] // 2, image.shape[1] // 2])
    return out


def test_a_4d_series_steps_through_its_time_points(four_d_window, qtbot):
    w = four_d_window
    session, controls = w.session, w.reading.reformat
    axial = w.layout_widget.views["axial"]
    axial.set_slice(3)
    z = int(round(session.volume.geometry.world_to_index(session.cursor_lps)[0]))
    assert z == 3
    label = controls.time_label
    assert controls.time_widgets[0].isVisible() and label.text().strip() == "1/3 · TPI 1"
    assert shown_values(w)["axial"] == value(0, 3)
    assert axial.corner_texts()["top_left"][:2] == ["Im 4/5", "Time 1/3 · TPI 1"]
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Right, Qt.ControlModifier)
    assert session.timepoint == 1 and shown_values(w)["axial"] == value(1, 3)
    assert axial.corner_texts()["top_left"][:2] == ["Im 9/5", "Time 2/3 · TPI 2"]  # InstanceNumber 5 + 4
    assert controls.slider.value() == 1 and label.text().strip() == "2/3 · TPI 2"
    qtbot.keyClick(axial, Qt.Key_Period)
    assert session.timepoint == 2 and shown_values(w)["axial"] == value(2, 3)
    qtbot.keyClick(axial, Qt.Key_Right, Qt.ControlModifier)  # the last: stays
    assert session.timepoint == 2
    qtbot.keyClick(axial, Qt.Key_Comma)
    assert session.timepoint == 1
    qtbot.keyClick(axial, Qt.Key_Left, Qt.ControlModifier)
    assert session.timepoint == 0 and shown_values(w)["axial"] == value(0, 3)
    # the reformats show the same time point: the coronal view's middle column runs through the 5 slices
    controls.slider.setValue(2)
    assert session.timepoint == 2
    coronal = w.layout_widget.views["coronal"]
    column = coronal.rendered.values[:, coronal.rendered.values.shape[1] // 2]
    assert sorted(int(v) for v in column) == [value(2, z) for z in range(5)]
    # Down still steps the slices, within the time point
    qtbot.keyClick(axial, Qt.Key_Down)
    assert session.timepoint == 2 and shown_values(w)["axial"] in {value(2, 2), value(2, 4)}
    # cine over time: plays through the time points and wraps
    seen = set()
    session.timepoint_changed.connect(lambda t: seen.add(t))
    qtbot.keyClick(axial, Qt.Key_C, Qt.ShiftModifier)
    assert controls.time_cine_running
    qtbot.waitUntil(lambda: {0, 1, 2} <= seen, timeout=5000)
    controls.toggle_time_cine()
    assert not controls.time_cine_running and not axial.cine_running
    # "," and "." stay the thickness box's while it has the focus (decimals), so do the arrows the slider's
    session.set_slab("MIP", 10.0)
    t = session.timepoint
    controls.thickness.setFocus()
    qtbot.waitUntil(controls.thickness.hasFocus, timeout=2000)
    controls.thickness.selectAll()
    qtbot.keyClicks(controls.thickness, "12.5")
    qtbot.keyClick(controls.thickness, Qt.Key_Return)
    assert session.slab.thickness_mm == 12.5 and session.timepoint == t
    controls.slider.setFocus()
    qtbot.waitUntil(controls.slider.hasFocus, timeout=2000)
    qtbot.keyClick(controls.slider, Qt.Key_Left)
    assert session.timepoint == (t - 1 if t else 0)


def test_time_controls_hide_for_a_3d_series(demo_series_window):
    controls = demo_series_window.reading.reformat
    assert not controls.time_widgets[0].isVisible() and not controls.slider.isVisible()
    assert not demo_series_window.action_registry.action("view.time.next").isEnabled()
    controls.step_time(1)
    assert demo_series_window.session.timepoint == 0


def test_the_toolbar_sets_the_slab(demo_series_window, qtbot):
    w = demo_series_window
    controls = w.reading.reformat
    assert not controls.thickness_widget.isVisible()  # (the toolbar's action: the widget may sit in its overflow)
    controls.slab_box.setCurrentIndex(controls.slab_box.findData("MIP"))
    controls.slab_box.activated.emit(controls.slab_box.currentIndex())
    assert w.session.slab == Slab("MIP", 10.0) and controls.thickness_widget.isVisible()
    controls.thickness.setValue(15.0)
    assert w.session.slab == Slab("MIP", 15.0)
    w.session.set_slab("MinIP", 6.0)  # the toolbar follows the session
    assert controls.slab_box.currentData() == "MinIP" and controls.thickness.value() == 6.0
    reset = w.action_registry.action("view.reset_rotation")
    assert not reset.isEnabled()
    w.session.rotate_planes("sagittal", 0.3)
    assert reset.isEnabled()
    reset.trigger()
    assert not w.session.rotations.any
    w.session.set_slab("")
    for view in w.layout_widget.views.values():
        qtbot.waitUntil(lambda v=view: v.renderer.idle, timeout=20000)
