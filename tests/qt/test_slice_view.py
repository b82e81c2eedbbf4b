"""The 2D reading views, driven through real mouse and key events on the real widgets (demo study)."""
from __future__ import annotations

import numpy as np
import pytest
from input_events import drag, move, wheel
from PySide6.QtCore import QPoint, QPointF, Qt

from viewer.core.layers import LabelLayer
from viewer.core.session import Session
from viewer.core.window_presets import CT_PRESETS
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
    yield widget
    for view in widget.views.values():
        if view.cine_running:
            view.toggle_cine()


def centre(view) -> QPoint:
    return view.viewport().rect().center()


def viewport_pos_of_index(view, index_zyx) -> QPointF:
    """Viewport pixel where voxel ``index_zyx`` is drawn (on the view's current slice)."""
    _k, row, col = view.plane.from_index(index_zyx)
    row_mm, col_mm = view.plane.pixel_spacing
    scene = view.vb.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm))
    return view.mapFromScene(scene)


def test_wheel_and_keys_change_the_slice(layout, qtbot):
    """Wheel down / Down is the next image: the next InstanceNumber of the demo's axial series (InstanceNumber 1 is
    its most superior slice, so the next image lies toward the feet)."""
    axial = layout.views["axial"]
    n = axial.plane.n_slices
    k0, im0 = axial.k, axial.image_number()
    z0 = axial.plane.to_world(k0, 0, 0)[2]
    wheel(axial.viewport(), centre(axial), clicks=-1)
    assert axial.image_number() == im0 + 1 and axial.plane.to_world(axial.k, 0, 0)[2] < z0
    wheel(axial.viewport(), centre(axial), clicks=+2)
    assert axial.image_number() == im0 - 1
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Down)
    assert (axial.k, axial.image_number()) == (k0, im0)
    qtbot.keyClick(axial, Qt.Key_Down, Qt.ShiftModifier)
    assert axial.image_number() == im0 + 10
    qtbot.keyClick(axial, Qt.Key_Up)
    assert axial.image_number() == im0 + 9
    qtbot.keyClick(axial, Qt.Key_Home)
    assert axial.image_number() == 1 and axial.k == n - 1  # the first image, at the top
    qtbot.keyClick(axial, Qt.Key_End)
    assert axial.image_number() == n and axial.k == 0
    # the image shown is the array's slice, and the corner text says so
    assert np.array_equal(axial.image_item.image, axial.plane.extract(layout.session.volume.array, 0))
    assert axial.corner_texts()["top_left"][0] == f"Im {n}/{n}"


def test_ctrl_wheel_zooms_instead_of_scrolling(layout):
    axial = layout.views["axial"]
    k0, zoom0 = axial.k, axial.zoom_factor()
    wheel(axial.viewport(), centre(axial), clicks=2, modifiers=Qt.ControlModifier)
    assert axial.k == k0
    assert axial.zoom_factor() > zoom0 * 1.2


def test_left_drag_changes_window_and_level(layout):
    session = layout.session
    axial = layout.views["axial"]
    session.apply_preset("soft tissue")
    drag(axial.viewport(), centre(axial), centre(axial) + QPoint(60, 0))
    assert session.width > 400 and session.level == pytest.approx(40)
    assert session.preset_name == ""
    w = session.width
    drag(axial.viewport(), centre(axial), centre(axial) + QPoint(0, 40))
    assert session.width == pytest.approx(w) and session.level > 40
    lo, hi = axial.image_item.levels
    assert (hi - lo) == pytest.approx(session.width) and (hi + lo) / 2 == pytest.approx(session.level)


def test_middle_drag_pans_and_space_resets(layout, qtbot):
    axial = layout.views["axial"]
    before = axial.vb.viewRange()
    drag(axial.viewport(), centre(axial), centre(axial) + QPoint(50, 0), button=Qt.MiddleButton)
    after = axial.vb.viewRange()
    assert after[0][0] < before[0][0] - 10  # content moved right: the visible x range moved left
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Space)
    assert np.allclose(axial.vb.viewRange()[0], before[0], atol=1.0)


@pytest.mark.parametrize("preset", CT_PRESETS, ids=lambda p: p.name)
def test_preset_keys_set_the_documented_values(layout, qtbot, preset):
    documented = {"soft tissue": (400, 40, "1"), "lung": (1500, -600, "2"), "bone": (2500, 480, "3"),
                  "brain": (80, 40, "4"), "liver": (150, 90, "5"), "mediastinum": (500, 50, "6"),
                  "stroke": (30, 30, "7"), "CT angiography": (600, 170, "8")}
    width, level, key = documented[preset.name]
    axial = layout.views["axial"]
    axial.setFocus()
    qtbot.keyClick(axial, key)
    s = layout.session
    assert (s.width, s.level, s.preset_name) == (width, level, preset.name)
    assert tuple(axial.image_item.levels) == pytest.approx((level - width / 2, level + width / 2))
    assert f"W {width} L {level} ({preset.name})" in axial.corner_texts()["bottom_left"][-2]


def test_key_zero_restores_the_window_from_the_file(layout, qtbot, demo_volume):
    axial = layout.views["axial"]
    axial.setFocus()
    qtbot.keyClick(axial, "3")
    qtbot.keyClick(axial, "0")
    centre_, width = demo_volume.meta["window"]
    assert (layout.session.width, layout.session.level) == (width, centre_)


def test_shift_move_moves_the_crosshair_in_the_other_views(layout):
    axial, coronal, sagittal = (layout.views[v] for v in ("axial", "coronal", "sagittal"))
    before = {name: (v.k, v.vline.value(), v.hline.value()) for name, v in layout.views.items()}
    target = centre(axial) + QPoint(-70, 50)
    move(axial.viewport(), target)  # no Shift: only the read-out changes
    assert coronal.k == before["coronal"][0] and sagittal.k == before["sagittal"][0]
    assert axial.hover is not None
    move(axial.viewport(), target, modifiers=Qt.ShiftModifier)
    assert axial.k == before["axial"][0]  # the view's own slice stays
    assert coronal.k != before["coronal"][0] and sagittal.k != before["sagittal"][0]
    # the cursor is where the mouse was, in patient coordinates
    world, _value = axial.hover
    assert np.allclose(layout.session.cursor_lps[:2], world[:2], atol=0.8)
    # the coronal view now shows the slice through the cursor
    assert coronal.plane.from_world(world)[0] == pytest.approx(coronal.k, abs=0.5)
    # the other views' crosshair lines moved to the cursor
    assert sagittal.vline.value() != before["sagittal"][1]
    # scrolling the axial view moves the horizontal line of the coronal view
    hline = coronal.hline.value()
    axial.step_slice(5)
    assert coronal.hline.value() != hline and coronal.k == coronal.plane.slice_of(layout.session.cursor_lps)


def test_hide_patient_data_removes_the_name_from_every_corner(layout, qtbot, demo_volume):
    name = demo_volume.meta["patient"]["name"].replace("^", " ").strip()
    pid = demo_volume.meta["patient"]["id"]
    assert name and any(name in line for line in layout.views["axial"].corner_texts()["top_right"])

    def bright_top_right(view) -> int:
        img = view.grab().toImage()
        w = img.width()
        arr = np.array([[img.pixelColor(x, y).lightness() for x in range(int(w * 0.62), w - 2, 2)]
                        for y in range(4, 70, 2)])
        return int((arr > 200).sum())

    axial = layout.views["axial"]
    shown = bright_top_right(axial)
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_F12, Qt.ShiftModifier)
    assert layout.session.show_patient_data is False
    for view in layout.views.values():
        for lines in view.corner_texts().values():
            assert not any(name in line or pid in line for line in lines)
    assert shown > 20 and bright_top_right(axial) < shown / 10  # and it is gone from the picture
    qtbot.keyClick(axial, Qt.Key_F12)  # F12 alone hides all corner text
    assert layout.session.show_corner_text is False


def test_label_map_shows_at_the_right_place(layout, demo_labels):
    session = layout.session
    session.apply_preset("lung")
    session.add_layer(LabelLayer(demo_labels, "truth"))
    axial = layout.views["axial"]
    lab = demo_labels.array
    names = {v: k for k, v in demo_labels.labels.items()}
    # a slice through both lungs; a voxel well inside each lung
    z = int(np.argmax([(s == names["lung_left"]).sum() for s in lab]))
    axial.set_slice(axial.plane.slice_of(demo_labels.geometry.index_to_world((z, 0, 0))))

    def inner_voxel(label):
        ys, xs = np.nonzero(lab[z] == label)
        i = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        return z, ys[i], xs[i]

    def colour_at(index):
        pos = viewport_pos_of_index(axial, index)
        img = axial.viewport().grab().toImage()
        c = img.pixelColor(int(pos.x()), int(pos.y()))
        return np.array([c.red(), c.green(), c.blue()], float)

    left, right = inner_voxel(names["lung_left"]), inner_voxel(names["lung_right"])
    assert lab[left] == names["lung_left"] and lab[right] == names["lung_right"]
    layer = session.label_layers()[0]
    left_rgb, right_rgb = np.array(layer.colors[names["lung_left"]]), np.array(layer.colors[names["lung_right"]])
    with_overlay = colour_at(left), colour_at(right)
    session.set_display(overlays_visible=False)
    without = colour_at(left), colour_at(right)
    session.set_display(overlays_visible=True)
    for got, plain, rgb in zip(with_overlay, without, (left_rgb, right_rgb)):
        assert np.ptp(plain) < 8  # the CT alone is grey
        expected = plain * (1 - layer.opacity) + rgb * layer.opacity  # alpha blend of the label colour
        assert np.abs(got - expected).max() < 20, (got, expected)
    # the patient's left lung is on the screen's right (radiological convention)
    assert viewport_pos_of_index(axial, left).x() > viewport_pos_of_index(axial, right).x()
    # hiding one label clears it there, the other stays
    session.update_layer(layer, hidden_labels={names["lung_left"]})
    assert np.abs(colour_at(left) - without[0]).max() < 8
    assert np.abs(colour_at(right) - with_overlay[1]).max() < 8
    # outline mode: the inside of the lung is not filled
    session.update_layer(layer, hidden_labels=set(), outline=True)
    assert np.abs(colour_at(right) - without[1]).max() < 8


def test_label_map_on_another_grid_is_refused(layout, demo_labels):
    from radview_base.geometry import Geometry, GeometryMismatchError
    from viewer.io.volume import LabelMap

    g = demo_labels.geometry
    shifted = LabelMap(demo_labels.array, Geometry(g.shape_zyx, g.spacing_zyx, np.add(g.origin_lps, (0, 0, 2.0)),
                                                   g.direction), demo_labels.labels)
    with pytest.raises(GeometryMismatchError):
        layout.session.add_layer(LabelLayer(shifted, "shifted"))
    assert layout.session.layers == []


def test_markers_show_on_the_slices_where_they_lie(layout, demo_paths):
    import json

    from viewer.core.layers import Marker, MarkerLayer

    nodules = json.loads(open(demo_paths.nodules_json).read())
    big = max(nodules, key=lambda n: n["diameter_mm"])
    d = big["diameter_mm"]
    layout.session.add_layer(MarkerLayer([Marker(tuple(big["center_lps_mm"]), (d, d, d), text="N1", score=0.9)]))
    axial = layout.views["axial"]
    layout.session.move_cursor(big["center_lps_mm"])
    assert any(hasattr(i, "rect") for i in axial._marker_items)
    axial.set_slice(axial.k + int(d / axial.plane.slice_spacing) + 2)  # beyond the sphere
    assert axial._marker_items == []


def test_invert_cine_and_double_click_maximise(layout, qtbot):
    axial = layout.views["axial"]
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_I)
    assert layout.session.invert and axial.image_item.lut is not None
    k0 = axial.k
    qtbot.keyClick(axial, Qt.Key_C)
    qtbot.waitUntil(lambda: axial.k != k0, timeout=2000)
    qtbot.keyClick(axial, Qt.Key_C)
    assert not axial.cine_running
    qtbot.mouseDClick(axial.viewport(), Qt.LeftButton, pos=centre(axial))
    assert layout.visible_panes() == [axial] and not layout.views["coronal"].isVisible()
    qtbot.mouseDClick(axial.viewport(), Qt.LeftButton, pos=centre(axial))
    assert len(layout.visible_panes()) == 3
    layout.set_layout("2x2")
    assert layout.pane_3d in layout.visible_panes() and len(layout.visible_panes()) == 4


def test_anisotropic_voxels_show_with_their_true_aspect(layout):
    coronal = layout.views["coronal"]
    rows, cols = coronal.plane.shape
    top_left = viewport_pos_of_index(coronal, coronal.plane.to_index(coronal.k, 0, 0))
    bottom_right = viewport_pos_of_index(coronal, coronal.plane.to_index(coronal.k, rows - 1, cols - 1))
    height_px, width_px = bottom_right.y() - top_left.y(), bottom_right.x() - top_left.x()
    row_mm, col_mm = coronal.plane.pixel_spacing
    assert row_mm != col_mm
    assert height_px / width_px == pytest.approx(((rows - 1) * row_mm) / ((cols - 1) * col_mm), rel=0.02)


def test_orientation_letters_and_value_readout(layout):
    letters = {name: v.plane.edge_letters() for name, v in layout.views.items()}
    assert letters["axial"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters["coronal"] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert letters["sagittal"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    axial = layout.views["axial"]
    move(axial.viewport(), centre(axial))
    world, value = axial.hover
    assert value == layout.session.volume.value_at(world)
    lines = axial.corner_texts()["bottom_left"]
    assert lines[0] == "LPS {:.1f}, {:.1f}, {:.1f} mm".format(*world) and lines[1] == f"{int(value)} HU"


def test_colour_and_single_slice_volumes_show(qtbot):
    from radview_base.geometry import Geometry
    from viewer.io.volume import Volume

    session = Session()
    widget = ViewLayout(session)
    qtbot.addWidget(widget)
    widget.resize(900, 300)
    widget.show()
    rgb = np.zeros((1, 40, 60, 3), np.uint8)
    rgb[0, :, :30, 0] = 255  # red on the array's left half (the patient's right)
    session.load_volume(Volume(rgb, Geometry((1, 40, 60), (1.0, 0.5, 0.5), (0, 0, 0)), meta={"modality": "SC"}))
    axial = widget.views["axial"]
    assert axial.plane.n_slices == 1 and axial.image_item.image.shape == (40, 60, 3)
    move(axial.viewport(), viewport_pos_of_index(axial, (0, 20, 10)))
    assert axial.hover is not None and axial.corner_texts()["bottom_left"][1] == "RGB 255 0 0"
    img = axial.viewport().grab().toImage()
    p = viewport_pos_of_index(axial, (0, 20, 10))
    c = img.pixelColor(int(p.x()), int(p.y()))
    assert c.red() > 200 and c.green() < 60  # the patient's right is red, on the screen's left
    assert p.x() < axial.viewport().width() / 2
    wheel(axial.viewport(), centre(axial), clicks=-3)  # one slice: scrolling stays put, no error
    assert axial.k == 0
