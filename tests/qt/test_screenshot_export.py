"""File → Export → Screenshot: the view as seen (overlay, measurement, letters, scale bar), patient data hidden
unless asked, nothing on screen touched (even when the export fails), written atomically, off the GUI thread.

The demo CT in the main window (run under xvfb-run for the 3D test). An "AI" label layer (a yellow nodule box on
the axial slice shown) and a length measurement are added; exports with and without them are compared at the
places where the view itself says they are drawn.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage

from ai.api import Detection, InferenceResult, Provenance
from viewer.core.ai_bridge import layers_from_result
from viewer.core.annotations import new_annotation
from viewer.qt.capture.screenshot import ScreenshotDialog, ScreenshotOptions, render

NAME = "Demo Phantom"  # the demo's PatientName, as the corner text writes it
IDENTIFYING = (NAME, "RADVIEW-DEMO", "1970-01-01", "radview demo")  # name, ID, birth date, institution
BOX = (slice(200, 236), slice(330, 370))  # (rows, cols) of the nodule box on the axial slice (left lung)


def to_array(image: QImage) -> np.ndarray:
    """``(h, w, 3)`` int16 RGB of a QImage."""
    img = image.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : 3 * w].reshape(h, w, 3).astype(np.int16)


def read(path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable image"
    return to_array(image)


@pytest.fixture
def window(qtbot, demo_series_window):
    demo_series_window.set_layout("1x1")
    qtbot.wait(50)
    return demo_series_window


def ai_layers(volume, k: int):
    """An AI-like result: a nodule box on slice ``k`` (label 1, "nodule": yellow) and its detection."""
    g = volume.geometry
    labels = np.zeros(g.shape_zyx, np.uint8)
    labels[k - 3:k + 4, BOX[0], BOX[1]] = 1
    centre = g.index_to_world((k, (BOX[0].start + BOX[0].stop) / 2, (BOX[1].start + BOX[1].stop) / 2))
    prov = Provenance("test-nodules", "Test nodules", "0.9", "classical image analysis, not a learned network",
                      "cpu", "float32", 0.2, "2026-01-01T00:00:00Z", {"threshold": 0.5})
    det = Detection(tuple(centre), 21.0, 2.1, 38.0, "solid", 0.87, "nodule", "lung_left")
    result = InferenceResult(g, prov, labels, {1: "nodule"}, (det,))
    return layers_from_result(result, g)


def add_length(session, view, start_rc, end_rc):
    """A length measurement on the view's current slice from display pixel (row, col) to (row, col)."""
    points = [view.plane.to_world(view.k, r, c) for r, c in (start_rc, end_rc)]
    return session.annotations.add(new_annotation("length", points, view.annotation_overlay.view_plane(),
                                                  series_uid=session.volume.meta["series_uid"]))


def screen_xy(view, row: float, col: float) -> tuple[int, int]:
    """Viewport pixel (x, y) where display pixel (row, col) of the slice is drawn."""
    row_mm, col_mm = view.plane.pixel_spacing
    p = view.mapFromScene(view.vb.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm)))
    return round(p.x()), round(p.y())


def test_overlay_and_measurement_are_in_the_export_where_the_view_draws_them(window, qtbot, tmp_path):
    view = window.layout_widget.active
    assert view.view == "axial"
    label_layer, marker_layer = ai_layers(window.session.volume, view.k)
    window.session.add_layer(label_layer)
    window.session.add_layer(marker_layer)
    length = add_length(window.session, view, (300, 150), (300, 260))
    qtbot.wait(50)  # the findings dock opens: the view settles to its new size
    annotated = window.export_screenshot(str(tmp_path / "annotated.png"), "view")
    texts = [t.toPlainText() for t in _text_items(view)]
    for layer in (label_layer, marker_layer):
        window.session.update_layer(layer, visible=False)
    window.session.annotations.undo()  # the measurement goes
    plain = window.export_screenshot(str(tmp_path / "plain.png"), "view")
    a, b = read(annotated), read(plain)
    # the AI layer in view brings the stamp band below the picture (test_screenshot_stamp.py); the picture itself
    # is the view's size, as without AI content
    assert b.shape == (view.height(), view.width(), 3) and a.shape[1:] == b.shape[1:] and a.shape[0] > b.shape[0]
    a = a[: b.shape[0]]

    # the label overlay: the box is tinted yellow (red and green up against blue) where the view puts it
    (x0, y0), (x1, y1) = screen_xy(view, BOX[0].start, BOX[1].start), screen_xy(view, BOX[0].stop - 1,
                                                                                 BOX[1].stop - 1)
    inner = (slice(y0 + 3, y1 - 2), slice(x0 + 3, x1 - 2))
    yellow = lambda img: (img[..., 0] + img[..., 1]) / 2 - img[..., 2]  # noqa: E731
    assert yellow(a[inner]).mean() > yellow(b[inner]).mean() + 40
    outside = (slice(y1 + 40, y1 + 60), slice(x0, x1))
    assert np.abs(a[outside] - b[outside]).mean() < 3  # nothing else moved

    # the measurement: its line (annotation yellow 255, 215, 64) along the two points, its value beside it
    (lx0, ly), (lx1, _) = screen_xy(view, 300, 150), screen_xy(view, 300, 260)
    band = a[ly - 2:ly + 3, lx0 + 5:lx1 - 5]
    on_line = (np.abs(band - np.array([255, 215, 64])).max(axis=-1) < 60).any(axis=0)
    assert on_line.mean() > 0.9, "the measurement line is not in the export"
    assert (np.abs(b[ly - 2:ly + 3, lx0 + 5:lx1 - 5] - np.array([255, 215, 64])).max(axis=-1) < 60).sum() == 0
    text = (slice(ly - 12, ly + 12), slice(lx1 + 4, lx1 + 70))  # "xx.x mm" on a dark box right of the line
    drawn = np.abs(a[text] - b[text]).max(axis=-1) > 60
    assert drawn.sum() > 40, "the measurement's value is not drawn beside it"
    assert f"{length.value:.1f} mm" in texts

    # the orientation letters and the scale bar are there too (orange R / L at the middle of the side edges)
    mid = a.shape[0] // 2
    orange = np.abs(a[mid - 12:mid + 8, :30] - np.array([255, 190, 80])).max(axis=-1) < 50
    assert orange.sum() > 5


def _text_items(view):
    import pyqtgraph as pg

    return [i.textItem for i in view.annotation_overlay.items if isinstance(i, pg.TextItem)]


def test_patient_data_is_left_out_unless_asked_and_the_screen_is_untouched(window, qtbot, tmp_path):
    view = window.layout_widget.active
    session = window.session
    assert session.show_patient_data and any(NAME in line for line in view.corner_texts()["top_right"])
    on_screen = view.corner_texts()
    events = []
    session.display_changed.connect(lambda: events.append("display"))
    painted: list[str] = []
    original = view._shadow_text
    view._shadow_text = lambda p, x, y, text, color: (painted.append(text), original(p, x, y, text, color))

    hidden_path = window.export_screenshot(str(tmp_path / "hidden.png"), "view")
    hidden_strings, painted[:] = list(painted), []
    shown_path = window.export_screenshot(str(tmp_path / "shown.png"), "view",
                                          ScreenshotOptions(include_patient_data=True))
    shown_strings = list(painted)
    del view._shadow_text

    # the strings painted: no name, ID, birth date or institution by default; all of them when asked
    assert hidden_strings and not any(s in line for line in hidden_strings for s in IDENTIFYING)
    assert all(any(s in line for line in shown_strings) for s in IDENTIFYING)
    # the pixels: the name's text in (b) is text-free in (a); the rest of the picture is the same
    a, b = read(hidden_path), read(shown_path)
    h, w, _ = a.shape
    corner = (slice(0, 100), slice(w // 2, w))
    text_b = b[corner].min(axis=-1) > 200  # near-white corner text
    text_a = a[corner].min(axis=-1) > 200
    assert text_b.sum() > 150
    assert (text_a & text_b).sum() <= 0.02 * text_b.sum()
    assert not np.array_equal(a[corner], b[corner])
    rest = np.ones(a.shape[:2], bool)
    rest[:120, :] = False
    rest[h - 110:, w // 2:] = False  # bottom right: the acquisition date and time, shown with patient data too
    assert np.array_equal(a[rest], b[rest])
    # the screen: exactly as before, no session event, no override left on the view
    assert events == [] and session.show_patient_data
    assert view.corner_texts() == on_screen and "corner_texts" not in view.__dict__
    assert view.active


def test_a_failed_export_leaves_no_file_and_the_screen_as_it_was(window, qtbot, tmp_path, monkeypatch):
    view = window.layout_widget.active
    on_screen = view.corner_texts()

    def broken(*_args, **_kw):
        raise RuntimeError("painting failed")

    monkeypatch.setattr(view, "render", broken)
    assert window.export_screenshot(str(tmp_path / "x.png"), "view") is None
    assert "painting failed" in window.notices.last_message
    monkeypatch.undo()
    assert view.corner_texts() == on_screen and "corner_texts" not in view.__dict__ and view.active
    # a write that fails (the folder is a file): no file, no temporary file left
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    assert window.export_screenshot(str(blocker / "x.png"), "view") is None
    from viewer.qt.capture.screenshot import save_image

    image = render(view)
    def disk_full(*_args, **_kw):
        raise OSError("disk full")

    monkeypatch.setattr("viewer.qt.capture.screenshot.encode_image", disk_full)
    with pytest.raises(OSError):
        save_image(image, str(tmp_path / "y.png"))
    assert [n for n in os.listdir(tmp_path) if n.endswith(".png") or n.startswith(".radview-tmp")] == []
    assert window.export_screenshot(str(tmp_path / "x.tif"), "view") is None
    assert "PNG or JPEG" in window.notices.last_message


def test_background_write_jpeg_quality_and_print_scale(window, qtbot, tmp_path):
    view = window.layout_widget.active
    with qtbot.waitSignal(window.notices.exported, timeout=20000) as done:
        returned = window.export_screenshot(str(tmp_path / "bg.png"), "view", wait=False)
    assert done.args == [returned] and os.path.isfile(returned)
    sizes = {}
    for q in (30, 95):
        with qtbot.waitSignal(window.notices.exported, timeout=20000):
            window.export_screenshot(str(tmp_path / f"q{q}.jpg"), "view", ScreenshotOptions(quality=q), wait=False)
        with open(tmp_path / f"q{q}.jpg", "rb") as fh:
            assert fh.read(3) == b"\xff\xd8\xff"  # JPEG
        sizes[q] = os.path.getsize(tmp_path / f"q{q}.jpg")
    assert sizes[30] < sizes[95]
    one = read(window.export_screenshot(str(tmp_path / "1x.png"), "view"))
    two = read(window.export_screenshot(str(tmp_path / "2x.png"), "view", ScreenshotOptions(scale=2.0)))
    assert two.shape == (2 * view.height(), 2 * view.width(), 3)
    halved = two.reshape(view.height(), 2, view.width(), 2, 3).mean(axis=(1, 3))
    assert np.abs(halved - one).mean() < 6  # the same picture, drawn at twice the resolution
    # the screen view kept its size and zoom
    assert (view.width(), view.height()) == (one.shape[1], one.shape[0])


def test_layout_export_composes_every_pane(window, qtbot, tmp_path):
    window.set_layout("1x3")
    qtbot.wait(50)
    layout = window.layout_widget
    record = {}
    image = to_array(render(layout, ScreenshotOptions(), record=record))
    assert image.shape == (layout.height(), layout.width(), 3)
    assert set(record) == {"axial", "coronal", "sagittal"}
    assert all(not any(NAME in line for line in texts["top_right"]) for texts in record.values())
    for name, view in layout.views.items():  # each pane is that view's own export, in its place
        x, y = view.mapTo(layout, view.rect().topLeft()).toTuple()
        pane = to_array(render(view))
        assert np.abs(image[y:y + view.height(), x:x + view.width()] - pane).mean() < 1.0, name
    path = window.export_screenshot(str(tmp_path / "layout.png"), "layout")
    assert read(path).shape == image.shape


def test_the_3d_pane_is_read_back_from_vtk_and_composited(window, qtbot, tmp_path):
    from viewer.qt.views.view3d import vtk_widget_supported

    if not vtk_widget_supported():
        pytest.skip("VTK cannot draw in a widget under Qt's offscreen platform (run under xvfb-run)")
    window.set_layout("2x2")
    view3d = window.view3d
    qtbot.waitUntil(lambda: view3d.isVisible() and view3d.vtk_widget.width() > 50, timeout=10000)
    layout = window.layout_widget
    image = read(window.export_screenshot(str(tmp_path / "layout3d.png"), "layout"))
    x, y = view3d.vtk_widget.mapTo(layout, view3d.vtk_widget.rect().topLeft()).toTuple()
    picture = view3d.capture()
    h, w, _ = picture.shape
    region = image[y:y + h, x:x + w]
    assert region.shape == picture.shape
    assert np.abs(region - picture.astype(np.int16)).mean() < 8  # the VTK frame, not a grab of the widget
    assert region.std() > 5  # a picture, not a blank pane


def test_the_dialog_and_the_menu(window, qtbot):
    dialog = ScreenshotDialog(window, "/tmp/x.png")
    qtbot.addWidget(dialog)
    assert not dialog.patient_box.isChecked() and not dialog.quality_box.isEnabled()
    dialog.path_edit.setText("/tmp/x.jpg")
    assert dialog.quality_box.isEnabled()
    dialog.quality_box.setValue(70)
    dialog.scale_box.setCurrentIndex(1)
    dialog.patient_box.setChecked(True)
    assert dialog.options() == ScreenshotOptions(include_patient_data=True, scale=2.0, quality=70)
    texts = [a.text() for a in window.action_registry.menu("File/Export").actions()]
    assert {"Screenshot of &active view…", "Screenshot of &layout…", "&Report (PDF)…"} <= set(texts)
