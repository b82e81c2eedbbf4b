"""File → Export → Screenshot as DICOM Secondary Capture…: the active view saved as a Secondary Capture in the study
of the DICOM series on screen, with the pixels of the PNG export of the same view; refused (nothing written, a
readable message) when no series is open, the series is not DICOM or the name does not end in .dcm.

The demo CT in the real main window (run under xvfb-run); the file is read back with pydicom and PIL.
"""
from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from radview_base.atomic_file import TEMP_PREFIX
from radview_base.geometry import Geometry
from viewer.export.secondary_capture import SC_SOP_CLASS
from viewer.io.image_io import write_image
from viewer.io.volume import Volume
from viewer.logic.pacs_capture import save_screenshot_sc, sc_uids
from viewer.qt.capture.screenshot import ScreenshotDialog, ScreenshotOptions, render
from viewer.qt.controllers.capture_actions import SC_NOT_DICOM

SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage, as the standard writes it


@pytest.fixture
def window(qtbot, demo_series_window):
    demo_series_window.set_layout("1x1")
    qtbot.wait(50)
    return demo_series_window


def reference_header(window):
    """The header of one file of the series on screen (what the Secondary Capture must be filed with)."""
    _ref, _ = window.captures.reference_file()
    return pydicom.dcmread(_ref, stop_before_pixels=True)


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX) or n.endswith(".dcm"))


def test_secondary_capture_is_in_the_demo_study_with_the_png_exports_pixels(window, tmp_path):
    view = window.layout_widget.active
    png = window.export_screenshot(str(tmp_path / "view.png"), "view")
    dcm = window.captures.export_screenshot_dicom(str(tmp_path / "view.dcm"))
    assert dcm == str(tmp_path / "view.dcm") and window.notices.status_label.text() == f"Saved {dcm}"
    picture = render(view, ScreenshotOptions())
    ds = pydicom.dcmread(dcm)
    ref = reference_header(window)
    meta = window.session.volume.meta

    assert ds.SOPClassUID == SC == SC_SOP_CLASS and ds.file_meta.MediaStorageSOPClassUID == SC
    assert ds.StudyInstanceUID == meta["study_uid"] == ref.StudyInstanceUID
    assert ds.PatientID == ref.PatientID == "RADVIEW-DEMO" and str(ds.PatientName) == str(ref.PatientName)
    assert ds.SeriesInstanceUID not in (meta["series_uid"], ref.SeriesInstanceUID)
    assert (ds.Rows, ds.Columns) == (picture.height(), picture.width()) == (view.height(), view.width())
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3 and ds.BitsAllocated == 8
    assert ds.BurnedInAnnotation == "YES" and ds.Modality == "OT"

    with Image.open(png) as im:
        png_pixels = np.asarray(im.convert("RGB"))
    pixels = ds.pixel_array
    assert pixels.shape == png_pixels.shape == (picture.height(), picture.width(), 3)
    assert np.array_equal(pixels, png_pixels)  # the same picture, losslessly, both ways
    assert pixels.std() > 10  # a CT slice, not a blank picture
    # the same picture bytes: the same instance as sending the PNG to a PACS would make
    assert ds.SOPInstanceUID == sc_uids(ds.StudyInstanceUID, open(png, "rb").read())[1]
    assert leftovers(tmp_path) == ["view.dcm"]  # no temporary file left


def test_written_in_a_job_and_routed_from_export_screenshot(window, qtbot, tmp_path):
    out = str(tmp_path / "bg.dcm")
    with qtbot.waitSignal(window.notices.exported, timeout=30000) as done:
        returned = window.export_screenshot(out, "view", wait=False)  # a .dcm name: the Secondary Capture
    assert returned == out and done.args == [out]
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == SC and ds.StudyInstanceUID == window.session.volume.meta["study_uid"]
    # twice the view's size: drawn anew at that resolution
    two = window.captures.export_screenshot_dicom(str(tmp_path / "2x.dcm"), "view", ScreenshotOptions(scale=2.0))
    view = window.layout_widget.active
    assert (pydicom.dcmread(two).Rows, pydicom.dcmread(two).Columns) == (2 * view.height(), 2 * view.width())


def test_menu_entry_dialog_and_refusal_without_a_series(qtbot, tmp_path, new_window, demo_paths):
    w = new_window(size=(1400, 800))
    action = w.action_registry.action("export.screenshot.dicom")
    assert action in w.action_registry.menu("File/Export").actions()
    assert action.text() == "Screenshot as DICOM &Secondary Capture…"
    texts = [a.text() for a in w.action_registry.menu("File/Export").actions()]
    assert texts.index("Screenshot of &3D view…") < texts.index(action.text()) < texts.index("&Report (PDF)…")

    action.trigger()  # nothing open: refused before any dialog
    assert "Secondary Capture not saved" in w.notices.last_message
    assert "Open a series first" in w.notices.last_message
    assert QApplication.activeModalWidget() is None
    w.notices.message_box.close()

    w.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=30000)
    out = tmp_path / "from-menu.dcm"
    seen = {"tries": 0}

    def fill_in():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ScreenshotDialog):
            seen["tries"] += 1
            if seen["tries"] < 200:
                QTimer.singleShot(50, fill_in)
            elif dialog is not None:  # another dialog: close it, the test fails below instead of hanging
                dialog.reject()
            return
        seen["title"], seen["default"] = dialog.windowTitle(), dialog.path
        seen["quality_shown"] = dialog.quality_box.isVisible()
        seen["filter"] = dialog.file_filter
        dialog.path_edit.setText(str(out))
        dialog.grab().save(str(tmp_path / "sc-dialog.png"))
        dialog.accept()

    QTimer.singleShot(0, fill_in)
    with qtbot.waitSignal(w.notices.exported, timeout=30000) as done:
        action.trigger()
    assert done.args == [str(out)]
    assert seen["title"] == "Screenshot as DICOM Secondary Capture" and seen["default"].endswith("radview-view.dcm")
    assert not seen["quality_shown"] and seen["filter"] == "DICOM Secondary Capture (*.dcm)"
    assert pydicom.dcmread(out).SOPClassUID == SC


def test_refused_for_a_nifti_series_and_a_name_not_ending_in_dcm(qtbot, tmp_path, new_window, demo_paths):
    w = new_window(size=(1400, 800))
    g = Geometry((12, 20, 24), (2.0, 0.7, 0.7), (-8.0, -7.0, -8.0), np.eye(3))
    image = tmp_path / "src" / "ct.nii.gz"
    image.parent.mkdir()
    write_image(Volume(np.full(g.shape_zyx, -500, np.int16), g), str(image))
    w.open_path(str(image))
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=20000)
    out = tmp_path / "out"
    out.mkdir()

    assert w.captures.export_screenshot_dicom(str(out / "x.dcm")) is None
    assert SC_NOT_DICOM in w.notices.last_message and "not DICOM" in w.notices.last_message
    assert "ct.nii.gz was not read from a DICOM series" in w.notices.last_message
    assert w.notices.message_box.isVisible() and not w.notices.message_box.isModal()
    w.notices.message_box.close()
    w.action_registry.action("export.screenshot.dicom").trigger()  # the menu: the same, before any dialog
    assert "not DICOM" in w.notices.last_message and QApplication.activeModalWidget() is None
    assert leftovers(out) == []

    w.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=30000)
    for name in ("x.png", "x.dcm.txt", "x"):
        assert w.captures.export_screenshot_dicom(str(out / name)) is None
        assert "give a name ending in .dcm" in w.notices.last_message
    (out / "folder.dcm").mkdir()
    assert w.captures.export_screenshot_dicom(str(out / "folder.dcm")) is None
    assert "is a folder" in w.notices.last_message
    assert sorted(os.listdir(out)) == ["folder.dcm"]


def test_logic_writes_atomically_and_leaves_nothing_on_failure(tmp_path, demo_paths):
    """Qt-free: the picture's bytes and one file of the series in, the .dcm out; a bad picture, a bad reference or
    a wrong name → ValueError and no file (nor temporary file) left."""
    from viewer.io.dicom_index import scan

    reference = str(scan(str(demo_paths.dicom_dir)).find(demo_paths.ct_series_uid).files[0])
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[5:25, 10:30] = (200, 40, 90)
    png = tmp_path / "p.png"
    Image.fromarray(rgb).save(png)
    out = tmp_path / "sub" / "p.dcm"
    assert save_screenshot_sc(png.read_bytes(), reference, str(out)) == str(out)
    ds = pydicom.dcmread(out)
    assert np.array_equal(ds.pixel_array, rgb) and ds.StudyInstanceUID == \
        pydicom.dcmread(reference, stop_before_pixels=True).StudyInstanceUID
    before = out.read_bytes()

    with pytest.raises(ValueError, match="not a picture"):
        save_screenshot_sc(b"not a png", reference, str(out))
    with pytest.raises(ValueError, match="cannot be read"):
        save_screenshot_sc(png.read_bytes(), str(png), str(tmp_path / "sub" / "q.dcm"))
    with pytest.raises(ValueError, match=r"ending in \.dcm"):
        save_screenshot_sc(png.read_bytes(), reference, str(tmp_path / "sub" / "q.png"))
    blocker = tmp_path / "sub" / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError):  # the folder cannot be made: nothing written
        save_screenshot_sc(png.read_bytes(), reference, str(blocker / "x.dcm"))
    assert out.read_bytes() == before  # a failed export leaves the previous file as it was
    assert sorted(os.listdir(tmp_path / "sub")) == ["a_file", "p.dcm"]
