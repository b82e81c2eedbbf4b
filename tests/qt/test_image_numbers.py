"""Image numbers and the direction of "next image" (``shared/CONVENTIONS.md``, "Image numbers and direction"), the
read-out that follows every slice change, the crosshair toggle, the reading keys wherever the focus is, and the
Philips scaling choice: through real widgets, on DICOM files written here (InstanceNumbers running with or against
the slice positions), the demo study and the Philips MR of ``../shared/data``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from input_events import move, wheel
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from viewer.core.session import Session
from viewer.io.dicom_index import scan
from viewer.io.series_loader import load_series
from viewer.qt.views.view_layout import ViewLayout

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
N = 7
SPACING = 2.5
Z0 = -40.0
PHILIPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mr-philips" / "In" / "cl"


def write_series(folder: Path, numbers: list[int]) -> None:
    """``len(numbers)`` axial CT slices, slice ``i`` at z = Z0 + i·SPACING with InstanceNumber ``numbers[i]``; each
    image's pixels hold 10 × its InstanceNumber (so the image shown says which file it is). Files are named in a
    third order, so neither the file name nor the order on disk can stand in for the InstanceNumber."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for i, number in enumerate(numbers):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_IMAGE, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Test^Numbers", "NUM-1"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20240101", "CT", 201, number
        ds.SeriesDescription = "numbers"
        ds.AcquisitionDate, ds.AcquisitionTime = "20240101", "093000"
        ds.KVP, ds.XRayTubeCurrent, ds.ExposureTime, ds.ConvolutionKernel = "100", 250, 800, "B30f"
        ds.ImagePositionPatient = [-8.0, -8.0, Z0 + i * SPACING]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], SPACING
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.full((16, 16), 10 * number, np.int16).tobytes()
        ds.save_as(folder / f"file{(i * 3) % len(numbers):02d}.dcm", enforce_file_format=True)


def _load(folder: Path):
    index = scan(str(folder))
    (entry,) = index.series
    return load_series(entry)


@pytest.fixture
def show(qtbot):
    """``show(volume)``: a shown reading layout (1×3) with ``volume`` loaded."""
    made = []

    def make(volume, size=(1200, 420)):
        session = Session()
        widget = ViewLayout(session)
        qtbot.addWidget(widget)
        widget.resize(*size)
        widget.show()
        qtbot.waitExposed(widget)
        session.load_volume(volume)
        made.append(widget)
        return widget

    yield make
    for widget in made:
        for view in widget.views.values():
            if view.cine_running:
                view.toggle_cine()


def _file_z(folder: Path) -> dict[int, float]:
    """InstanceNumber → the z of its ImagePositionPatient, read back from the files."""
    out = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        out[int(ds.InstanceNumber)] = float(ds.ImagePositionPatient[2])
    return out


@pytest.mark.parametrize("numbers", [list(range(N, 0, -1)), list(range(1, N + 1))],
                         ids=["numbers against z (1 at the head)", "numbers along z (1 at the feet)"])
def test_the_corner_says_the_instance_number_and_down_goes_to_the_next_one(tmp_path, qtbot, show, numbers):
    write_series(tmp_path / "s", numbers)
    volume = _load(tmp_path / "s")
    assert volume.meta["instance_numbers"] == numbers  # per z index, in the order of the slice positions
    layout = show(volume)
    axial = layout.views["axial"]
    file_z = _file_z(tmp_path / "s")
    qtbot.keyClick(axial, Qt.Key_Home)
    seen = []
    for _ in range(N):
        number = axial.image_number()
        seen.append(number)
        # the image shown is that file's, the corner says its number and where it lies
        assert np.all(axial.image_item.image == 10 * number)
        lines = axial.corner_texts()["top_left"]
        assert lines[0] == f"Im {number}/{N}"
        assert lines[1].startswith(f"Z {file_z[number]:.1f} mm")
        axial.setFocus()
        qtbot.keyClick(axial, Qt.Key_Down)
    assert seen == list(range(1, N + 1))  # Home is image 1, each Down the next InstanceNumber
    assert axial.image_number() == N  # the last image stays
    wheel(axial.viewport(), axial.viewport().rect().center(), clicks=+1)  # wheel up: the previous image
    assert axial.image_number() == N - 1
    wheel(axial.viewport(), axial.viewport().rect().center(), clicks=-1)  # wheel down: the next one
    assert axial.image_number() == N
    qtbot.keyClick(axial, Qt.Key_Up, Qt.ShiftModifier)
    assert axial.image_number() == 1
    # the same number through every door: the view's API, its slicing numbers, its corner text
    axial.set_slice(2)
    assert axial.image_number() == numbers[2] == axial.image_numbers.number(2)
    assert axial.corner_texts()["top_left"][0] == f"Im {numbers[2]}/{N}"


def test_reformats_number_in_reading_order_toward_i_p_and_l(tmp_path, qtbot, show):
    write_series(tmp_path / "s", list(range(1, N + 1)))
    layout = show(_load(tmp_path / "s"))
    toward = {"axial": np.array([0, 0, -1.0]), "coronal": np.array([0, 1.0, 0]), "sagittal": np.array([1.0, 0, 0])}
    for name in ("coronal", "sagittal"):
        view = layout.views[name]
        n = view.plane.n_slices
        view.setFocus()
        qtbot.keyClick(view, Qt.Key_Home)
        assert view.corner_texts()["top_left"][0] == f"Im 1/{n} reformat"
        before = view.plane.to_world(view.k, 0, 0)
        qtbot.keyClick(view, Qt.Key_Down)
        moved = view.plane.to_world(view.k, 0, 0) - before
        assert moved @ toward[name] > 0.5, (name, moved)  # coronal: toward P, sagittal: toward L
        assert view.image_number() == 2 and view.corner_texts()["top_left"][0] == f"Im 2/{n} reformat"


def test_acquisition_attributes_in_the_bottom_right(tmp_path, show):
    write_series(tmp_path / "s", list(range(1, N + 1)))
    volume = _load(tmp_path / "s")
    info = volume.meta["series_info"]
    assert (info["kvp"], info["mas"], info["kernel"]) == (100.0, 200.0, "B30f")  # 250 mA × 800 ms
    layout = show(volume)
    assert layout.views["axial"].corner_texts()["bottom_right"] == [
        "2024-01-01 09:30:00", "100 kVp  200 mAs", "Kernel B30f", "CT"]


def test_a_volume_without_instance_numbers_is_numbered_as_a_reformat(show):
    from radview_base.geometry import Geometry
    from viewer.io.volume import Volume

    layout = show(Volume(np.zeros((5, 8, 8), np.int16), Geometry((5, 8, 8), (2.0, 1.0, 1.0), (0, 0, 0)),
                         meta={"modality": "CT"}))
    axial = layout.views["axial"]
    axial.show_image_at(1)
    assert axial.k == 4 and axial.corner_texts()["top_left"][0] == "Im 1/5 reformat"  # the top slice first
    axial.step_slice(1)
    assert axial.k == 3 and axial.image_number() == 2


def test_the_read_out_follows_every_slice_change(tmp_path, qtbot, show):
    write_series(tmp_path / "s", list(range(N, 0, -1)))
    layout = show(_load(tmp_path / "s"))
    session = layout.session
    axial, coronal = layout.views["axial"], layout.views["coronal"]
    centre = axial.viewport().rect().center()
    move(axial.viewport(), centre)
    world, value = axial.hover

    def follows():
        w, v = axial.hover
        assert w[2] == pytest.approx(axial.plane.to_world(axial.k, 0, 0)[2])  # on the slice shown
        assert v == session.volume.value_at(w) == 10 * axial.image_number()
        assert axial.corner_texts()["bottom_left"][:2] == ["LPS {:.1f}, {:.1f}, {:.1f} mm".format(*w), f"{v} HU"]
        return w

    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Down)  # the keyboard
    moved = follows()
    assert moved[2] != world[2] and moved[:2] == pytest.approx(world[:2])
    qtbot.keyClick(axial, Qt.Key_End)
    follows()
    axial.set_slice(3)  # code
    follows()
    wheel(axial.viewport(), centre, clicks=-1)  # the wheel
    follows()
    k = axial.k  # another view moves the linked cursor: this view changes slice
    coronal_centre = coronal.viewport().rect().center()
    move(coronal.viewport(), coronal_centre + QPoint(0, -60), modifiers=Qt.ShiftModifier)
    assert axial.k != k
    follows()
    axial.toggle_cine()  # cine
    qtbot.waitUntil(lambda: axial.k != k, timeout=2000)
    axial.toggle_cine()
    follows()


def test_the_crosshair_can_be_hidden(tmp_path, qtbot, show):
    write_series(tmp_path / "s", list(range(1, N + 1)))
    layout = show(_load(tmp_path / "s"))
    session = layout.session
    lines = [line for v in layout.views.values() for line in (v.hline, v.vline)]
    assert session.show_crosshair and all(line.isVisible() for line in lines)
    axial = layout.views["axial"]
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_H)
    assert not session.show_crosshair and not any(line.isVisible() for line in lines)
    qtbot.keyClick(axial, Qt.Key_H)
    assert session.show_crosshair and all(line.isVisible() for line in lines)


# --- in the main window ----------------------------------------------------------------------------------------
def _activate(qtbot, w) -> None:
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)


def _add_ai_finding(w) -> None:
    """One AI detection over the open series, so that the findings table shows."""
    from ai.api import Detection, InferenceResult, Provenance
    from viewer.core.ai_bridge import layers_from_result

    g = w.session.volume.geometry
    detection = Detection(tuple(w.session.cursor_lps), 8.0, 0.3, 40.0, "solid", 0.9, "nodule", "lung_left")
    prov = Provenance("test-nodules", "Test nodules", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.3, "2026-01-01T00:00:00Z")
    result = InferenceResult(g, prov, np.zeros(g.shape_zyx, np.uint8), {}, (detection,))
    for layer in layers_from_result(result, g):
        w.session.add_layer(layer)
    w.ai.findings_dock.show()


def test_reading_keys_work_wherever_the_focus_is(demo_series_window, qtbot):
    w = demo_series_window
    _add_ai_finding(w)
    _activate(qtbot, w)
    axial = w.layout_widget.views["axial"]
    w.layout_widget.set_active(axial)
    bar = w.action_registry.toolbar("reading")
    button = bar.widgetForAction(w.action_registry.action("toolbar.reset"))
    table = w.ai.findings.table
    preset_box = w.reading.preset_box
    for widget in (button, table, preset_box):
        if widget is button:
            qtbot.mouseClick(button, Qt.LeftButton)
        widget.setFocus()
        qtbot.waitUntil(widget.hasFocus, timeout=2000)
        number = axial.image_number()
        qtbot.keyClick(widget, Qt.Key_Down)
        assert axial.image_number() == number + 1, type(widget).__name__
        qtbot.keyClick(widget, Qt.Key_Up, Qt.ShiftModifier)
        assert axial.image_number() == number - 9, type(widget).__name__
        qtbot.keyClick(widget, Qt.Key_3)  # bone
        assert w.session.preset_name == "bone"
        qtbot.keyClick(widget, Qt.Key_I)
        assert w.session.invert
        qtbot.keyClick(widget, Qt.Key_I)
        qtbot.keyClick(widget, Qt.Key_L)  # the length tool
        assert w.layout_widget.tools.tool == "length"
        qtbot.keyClick(widget, Qt.Key_Escape)
        assert w.layout_widget.tools.tool == ""
        qtbot.keyClick(widget, Qt.Key_2)
        assert w.session.preset_name == "lung"
        assert widget.hasFocus()  # the keys did not take the focus away


def test_the_view_menu_toggles_the_crosshair(demo_series_window):
    w = demo_series_window
    action = w.action_registry.action("view.crosshair")
    axial = w.layout_widget.views["axial"]
    assert action.isChecked() and axial.hline.isVisible()
    action.trigger()
    assert not w.session.show_crosshair and not axial.hline.isVisible() and not axial.vline.isVisible()
    axial.handle_key(Qt.Key_H)
    assert action.isChecked() and axial.vline.isVisible()
    # the demo CT has no Philips scale slope: no scaling choice to make
    assert not w.action_registry.action("view.scaling.philips").isEnabled()


@pytest.mark.skipif(not PHILIPS.is_dir(), reason=f"Philips MR test data not found at {PHILIPS}")
def test_philips_floating_point_values_from_the_view_menu(new_window, qtbot):
    index = scan(str(PHILIPS))
    entry = next(s for s in index.series if s.loadable and s.plan is not None and len(s.frames) <= 60
                 and all(fr.philips_scale for fr in s.frames))
    expected = load_series(entry, scaling="philips-float")
    w = new_window(size=(1280, 800))
    w.open_path(str(PHILIPS), series=entry.key)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=30000)
    display = w.session.volume
    assert display.meta["scaling"] == "display" and display.meta["philips_scale"]
    floating, shown = (w.action_registry.action(f"view.scaling.{name}") for name in ("philips", "display"))
    assert floating.isEnabled() and shown.isChecked() and not floating.isChecked()
    cursor = w.session.cursor_lps.copy()
    w.session.move_cursor(cursor + (0, 0, 10))
    cursor = w.session.cursor_lps.copy()
    floating.trigger()
    qtbot.waitUntil(lambda: w.session.volume is not display and not w.tasks._running, timeout=30000)
    volume = w.session.volume
    assert volume.meta["scaling"] == "philips-float" and volume.array.dtype == np.float32
    assert np.array_equal(volume.array, expected.array)
    fr = entry.frames[0]
    factor = fr.slope * fr.philips_scale  # display value = factor × floating-point value
    assert np.allclose(display.array.astype(np.float64), volume.array * factor, rtol=1e-4, atol=1e-3)
    assert floating.isChecked() and not shown.isChecked()
    assert np.allclose(w.session.cursor_lps, cursor)  # the same place, in the new values
    if display.meta.get("window"):
        assert volume.meta["window"] == pytest.approx(tuple(v / factor for v in display.meta["window"]))
    shown.trigger()  # and back
    qtbot.waitUntil(lambda: w.session.volume.meta["scaling"] == "display" and not w.tasks._running, timeout=30000)
    assert np.array_equal(w.session.volume.array, display.array)
