"""2D series in the real window: hangings, letters from the file, calibration labels, cine at its rate (issue 14)."""
from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
from planar_cases import chest_pixels, mammography_study, write_radiograph, write_ultrasound
from pydicom.uid import generate_uid
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QFontMetricsF

from viewer.core.annotations import display_text
from viewer.qt.capture.screenshot import ScreenshotOptions, render
from viewer.qt.main_window import MainWindow
from viewer.qt.views.slice_foreground import foreground_font


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.close()


def open_images(qtbot, window, path):
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.session.images is not None and bool(window.planar_area.views), timeout=30000)
    return window.planar_area


def test_a_radiograph_opens_alone_with_the_files_letters_and_no_mpr_panes(window, qtbot, tmp_path):
    write_radiograph(tmp_path / "cr", "a.dcm", PatientOrientation=["L", "F"], ViewPosition="PA",
                     ImageLaterality="", ImagerPixelSpacing=[0.6, 0.6])
    area = open_images(qtbot, window, tmp_path / "cr")
    assert window.reading_area.currentWidget() is area and not window.layout_widget.isVisible()
    (view,) = area.views
    assert area.hanging.name == "single"
    assert view.edge_letters() == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    texts = view.corner_texts()
    assert any("Im 1" in line for line in texts["top_left"])
    assert "Measure: mm at detector" in texts["bottom_right"] and "PA" in texts["bottom_right"]
    view.toggle_flip()  # letters follow the flip
    assert view.edge_letters()["right"] == "R" and view.edge_letters()["left"] == "L"


def test_rendered_radiograph_has_bone_bright_as_the_file_says(window, qtbot, tmp_path):
    pixels = chest_pixels()
    write_radiograph(tmp_path / "cr", "a.dcm", WindowCenter=int(np.median(pixels)), WindowWidth=int(np.ptp(pixels)))
    area = open_images(qtbot, window, tmp_path / "cr")
    view = area.views[0]
    shown = view.image_item.image
    low, high = pixels <= np.percentile(pixels, 5), pixels >= np.percentile(pixels, 95)
    assert shown[low].mean() > shown[high].mean() + 80  # MONOCHROME1: low stored values (bone) are bright
    assert view.corner_texts()["bottom_left"][1] == "MONOCHROME1"
    assert view.edge_letters() is None  # the file gives no orientation: no letters (the view says so)
    picture = render(view, ScreenshotOptions())
    assert picture.width() > 100


def _scene(view, x, y):
    """The scene position of pixel centre (column x, row y) of the view's image."""
    return view.image_item.mapToScene(QPointF(x + 0.5, y + 0.5))


def test_uncalibrated_length_is_in_pixels(window, qtbot, tmp_path):
    write_radiograph(tmp_path / "cr", "a.dcm", PatientOrientation=["L", "F"])
    view = open_images(qtbot, window, tmp_path / "cr").views[0]
    qtbot.keyClick(view, Qt.Key_L)
    assert window.layout_widget.tools.tool == "length"  # the shared tool: the toolbar shows it too
    view.measurements.drag(_scene(view, 10, 10), _scene(view, 50, 40), True)
    (a,) = window.session.annotations
    assert a.image is not None and a.image.sop_instance_uid == view.current.display.sop_instance_uid
    assert a.unit == "px" and a.value == pytest.approx(50.0, abs=0.01)
    assert display_text(a) == "50.0 px (no calibration)"
    assert "Measure: px (no calibration)" in view.corner_texts()["bottom_right"]
    assert a.as_dict()["points_image"] == [[10.0, 10.0], [50.0, 40.0]] and "points_lps" not in a.as_dict()


def test_measurements_use_the_images_calibration_and_stay_with_their_image(window, qtbot, tmp_path):
    series = generate_uid()
    write_radiograph(tmp_path / "pair", "a.dcm", series_uid=series, number=1, ImagerPixelSpacing=[0.2, 0.2],
                     ViewPosition="PA")
    write_radiograph(tmp_path / "pair", "b.dcm", series_uid=series, number=2, PixelSpacing=[0.1, 0.1],
                     ViewPosition="LL")
    area = open_images(qtbot, window, tmp_path / "pair")
    first, second = area.views
    length = first.measurements.add("length", [(0, 0), (30, 40)])
    assert length.value == pytest.approx(10.0) and display_text(length) == "10.0 mm at detector"
    roi = second.measurements.add("rectangle", [(10, 10), (30, 10), (30, 20), (10, 20)])
    pixels = chest_pixels()[10:21, 10:31]  # pixel centres inside the rectangle's edges
    assert roi.stats["area_px2"] == pytest.approx(200.0) and roi.stats["area_mm2"] == pytest.approx(2.0)
    assert roi.stats["mean"] == pytest.approx(pixels.mean(), rel=0.05)
    assert first.measurements.shown() == [length] and second.measurements.shown() == [roi]
    window.session.annotations.undo()
    assert second.measurements.shown() == []


def test_pa_and_lateral_hang_side_by_side(window, qtbot, tmp_path):
    series = generate_uid()
    write_radiograph(tmp_path / "pair", "lat.dcm", series_uid=series, number=1, ViewPosition="LL",
                     PatientOrientation=["A", "F"])
    write_radiograph(tmp_path / "pair", "pa.dcm", chest_pixels()[::2, ::2], series_uid=series, number=2,
                     ViewPosition="PA", PatientOrientation=["L", "F"])
    area = open_images(qtbot, window, tmp_path / "pair")
    assert area.hanging.name == "pair" and len(area.views) == 2
    left, right = area.views
    assert left.current.display.view_position == "PA" and right.current.display.view_position == "LL"
    assert left.mapTo(area, left.rect().topLeft()).x() < right.mapTo(area, right.rect().topLeft()).x()


def test_mammography_four_views_back_to_back(window, qtbot, tmp_path):
    mammography_study(tmp_path / "mg")
    area = open_images(qtbot, window, tmp_path / "mg")
    assert area.hanging.name == "mammography" and len(area.views) == 4
    names = [v.current.display.laterality + v.current.display.view_position for v in area.views]
    assert names == ["RCC", "LCC", "RMLO", "LMLO"]
    rcc, lcc = area.views[0], area.views[1]
    # chest walls (posterior, P) meet in the middle: on the right edge of the right breast, the left of the left
    assert rcc.edge_letters()["right"] == "P" and lcc.edge_letters()["left"] == "P"
    assert rcc.flip_h and not lcc.flip_h


def test_ultrasound_stack_scrolls_image_by_image(window, qtbot, tmp_path):
    series = generate_uid()
    for n in (3, 1, 2):
        write_ultrasound(tmp_path / "us", f"u{n}.dcm", series_uid=series, number=n)
    view = open_images(qtbot, window, tmp_path / "us").views[0]
    numbers = [view.current.display.instance_number]
    for _ in range(2):
        qtbot.keyClick(view, Qt.Key_Down)
        numbers.append(view.current.display.instance_number)
    assert numbers == [1, 2, 3]
    qtbot.keyClick(view, Qt.Key_Up)
    assert view.current.display.instance_number == 2


def test_cine_plays_at_the_files_frame_rate(window, qtbot, tmp_path):
    write_ultrasound(tmp_path / "cine", "c.dcm", frames=20, FrameTime=50.0)
    view = open_images(qtbot, window, tmp_path / "cine").views[0]
    assert view.series.kind == "cine" and view.frame_interval_s() == pytest.approx(0.05)
    assert "Fr 1/20  20 fps" in view.corner_texts()["top_left"]
    start = time.perf_counter()
    qtbot.keyClick(view, Qt.Key_C)
    qtbot.wait(1000)
    qtbot.keyClick(view, Qt.Key_C)
    elapsed = time.perf_counter() - start
    assert not view.cine_running
    advanced = view.frames_shown + view.frames_dropped
    # the frame shown follows the clock: about 20 frames per second, however many were dropped on a busy machine
    assert abs(advanced - elapsed / 0.05) <= 4, (advanced, elapsed)
    qtbot.keyClick(view, Qt.Key_Right)
    frame = view.frame
    qtbot.keyClick(view, Qt.Key_Right)
    assert view.frame == (frame + 1) % 20


def test_overlay_plane_shows_and_toggles(window, qtbot, tmp_path):
    path = write_radiograph(tmp_path / "ov", "a.dcm", PatientOrientation=["L", "F"])
    ds = pydicom.dcmread(path)
    bits = np.zeros((64, 64), dtype=np.uint8)
    bits[10:20, :] = 1
    for element, vr, value in ((0x0010, "US", 64), (0x0011, "US", 64), (0x0040, "CS", "G"), (0x0050, "SS", [1, 1]),
                               (0x0100, "US", 1), (0x0102, "US", 0),
                               (0x3000, "OW", pydicom.pixels.pack_bits(bits))):
        ds.add_new((0x6000, element), vr, value)
    ds.save_as(path)
    view = open_images(qtbot, window, tmp_path / "ov").views[0]
    assert view.overlay_item.image is not None and view.overlay_item.image[15, 5, 3] > 0
    qtbot.keyClick(view, Qt.Key_O)
    assert view.overlay_item.image is None


def test_opening_a_volume_after_images_returns_to_the_mpr_layout(window, qtbot, tmp_path, demo_paths):
    write_radiograph(tmp_path / "cr", "a.dcm")
    open_images(qtbot, window, tmp_path / "cr")
    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: window.session.volume is not None, timeout=60000)
    assert window.session.images is None and window.reading_area.currentWidget() is window.layout_widget
    assert not window.planar_area.views


def test_screenshot_of_the_hanging_has_every_view(window, qtbot, tmp_path):
    mammography_study(tmp_path / "mg")
    open_images(qtbot, window, tmp_path / "mg")
    out = window.export_screenshot(str(tmp_path / "shot.png"), what="layout")
    assert out and (tmp_path / "shot.png").stat().st_size > 1000


def test_toolbar_window_box_offers_the_files_vois_and_invert_flips_the_picture(window, qtbot, tmp_path):
    write_radiograph(tmp_path / "cr", "a.dcm", WindowCenter=[16000, 12000], WindowWidth=[20000, 8000],
                     WindowCenterWidthExplanation=["STANDARD", "BONE"], PatientOrientation=["L", "F"])
    view = open_images(qtbot, window, tmp_path / "cr").views[0]
    box = window.reading.preset_box
    names = [box.itemText(i) for i in range(box.count())]
    assert names[:2] == ["0  STANDARD W 20000 / L 16000", "1  BONE W 8000 / L 12000"] and "full range" in names[2]
    box.activated.emit(1)
    assert (view.voi.center, view.voi.width) == (12000, 8000)
    before = view.image_item.image.copy()
    window.action_registry.action("toolbar.invert").trigger()
    assert window.session.invert and np.array_equal(view.image_item.image, 255 - before)


def test_report_of_a_radiograph_pair_shows_the_hanging_and_the_measurements(window, qtbot, tmp_path):
    from test_report import has, page_count, pdf_text

    series = generate_uid()
    write_radiograph(tmp_path / "pair", "pa.dcm", series_uid=series, number=1, ViewPosition="PA",
                     ImagerPixelSpacing=[0.2, 0.2], PatientOrientation=["L", "F"])
    write_radiograph(tmp_path / "pair", "lat.dcm", series_uid=series, number=2, ViewPosition="LL",
                     PatientOrientation=["A", "F"])
    area = open_images(qtbot, window, tmp_path / "pair")
    area.views[0].measurements.add("length", [(0, 0), (30, 40)])
    area.views[1].measurements.add("length", [(0, 0), (30, 40)])
    out = window.export_report(str(tmp_path / "r.pdf"))
    assert out and page_count(out) == 1
    text = pdf_text(out)
    assert has(text, "10.0 mm at detector", "50.0 px (no calibration)", "Im 1", "Im 2", "CR stack")
    assert has(text, "measured in mm at detector")


@pytest.mark.parametrize("case", ["pair", "mammography"])
def test_no_two_texts_overlap_in_the_hangings_at_1280x800(window, qtbot, tmp_path, case):
    if case == "pair":
        series = generate_uid()
        write_radiograph(tmp_path / case, "pa.dcm", series_uid=series, number=1, ViewPosition="PA",
                         ImagerPixelSpacing=[0.2, 0.2], PatientOrientation=["L", "F"])
        write_radiograph(tmp_path / case, "lat.dcm", series_uid=series, number=2, ViewPosition="LL")
    else:
        mammography_study(tmp_path / case)
    area = open_images(qtbot, window, tmp_path / case)
    qtbot.wait(100)
    for view in area.views:
        items = view.foreground_items()
        assert len(items) >= 6
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                assert not a.rect.intersects(b.rect), (a.kind, a.text, b.kind, b.text)
        bar = view.scale_bar(QFontMetricsF(foreground_font()))
        if bar is not None:
            assert not any(item.rect.intersects(bar.rect) for item in items)
