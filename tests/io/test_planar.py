"""The 2D image model: radiographs, ultrasound, cine and stacks open as their files say (issue 14)."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from planar_cases import chest_pixels, mammography_study, us_region, voi_lut_item, write_radiograph, write_ultrasound
from pydicom.uid import generate_uid
from reference import data_path

from viewer.core import grayscale
from viewer.core.hanging import hang
from viewer.io.dicom_index import scan
from viewer.io.planar import load_planar
from viewer.io.planar_header import letters_from_patient_orientation


def _only(folder):
    index = scan(str(folder))
    assert len(index.series) == 1, [s.to_dict() for s in index.series]
    return index.series[0]


def test_every_cr_us_nm_and_multi_image_series_of_dicom_objects_opens():
    index = scan(str(data_path("dicom-objects")))
    planar = [s for s in index.series if s.modality in ("CR", "US", "NM")]
    assert {s.modality for s in planar} == {"CR", "US", "NM"}
    for entry in planar:
        assert entry.loadable, (entry.key, entry.refusal)
        series = load_planar(entry)
        assert len(series.images) == len(entry.images) and not series.skipped
        for image in series.images:
            assert grayscale.render(image, 0).dtype == np.uint8
    us3 = next(s for s in planar if s.modality == "US" and s.n_images == 3)
    assert us3.kind == "stack"
    assert [d.instance_number for d in us3.images] == [1, 2, 3]  # scrolled by InstanceNumber, not file name
    cr2 = next(s for s in planar if s.modality == "CR" and len(s.images) == 2)
    assert [d.instance_number for d in cr2.images] == [2, 3]
    assert all(d.orientation == {"right": "R", "left": "L", "bottom": "F", "top": "H"} for d in cr2.images)
    nm = next(s for s in planar if s.modality == "NM")
    assert nm.kind == "stack" and len(nm.images) == 2


def test_monochrome1_radiograph_shows_bone_bright_through_the_files_own_voi():
    entry = _only(data_path("dicom-objects", "RG1_J2KI.dcm"))
    assert entry.kind == "projection"
    image = load_planar(entry).images[0]
    ds = pydicom.dcmread(data_path("dicom-objects", "RG1_J2KI.dcm"))
    stored = ds.pixel_array.astype(np.float64)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    values = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    linear = np.clip((values - (c - 0.5)) / (w - 1) + 0.5, 0, 1)  # PS3.3 C.11.2.1.2.1
    expected = np.round((1.0 - linear) * 255)  # MONOCHROME1: the lowest value is white
    shown = grayscale.render(image, 0).astype(np.float64)
    assert np.abs(shown - expected).max() <= 1
    # bone (low stored values in MONOCHROME1) is brighter than the lung fields (high values)
    low, high = stored <= np.percentile(stored, 5), stored >= np.percentile(stored, 95)
    assert shown[low].mean() > shown[high].mean() + 100


@pytest.mark.parametrize("value, letters", [
    (["L", "F"], {"right": "L", "left": "R", "bottom": "F", "top": "H"}),
    (["R", "F"], {"right": "R", "left": "L", "bottom": "F", "top": "H"}),
    (["A", "FR"], {"right": "A", "left": "P", "bottom": "FR", "top": "HL"}),
    (["P", "H"], {"right": "P", "left": "A", "bottom": "H", "top": "F"}),
])
def test_letters_come_from_patient_orientation(tmp_path, value, letters):
    write_radiograph(tmp_path, "a.dcm", PatientOrientation=value)
    entry = _only(tmp_path)
    assert entry.images[0].orientation == letters
    assert entry.to_dict()["images"][0]["display"]["orientation"] == letters
    assert letters_from_patient_orientation(value) == letters


def test_no_orientation_means_no_letters_and_says_so(tmp_path):
    write_radiograph(tmp_path, "a.dcm")
    d = _only(tmp_path).images[0]
    assert d.orientation is None and d.orientation_source == "none"
    assert "orientation not given" in d.warnings


def test_image_orientation_patient_wins_over_patient_orientation(tmp_path):
    write_radiograph(tmp_path, "a.dcm", modality="DX", PatientOrientation=["L", "F"],
                     ImageOrientationPatient=[-1, 0, 0, 0, 0, -1])
    d = _only(tmp_path).images[0]
    assert d.orientation_source == "ImageOrientationPatient"
    assert d.orientation == {"right": "R", "left": "L", "bottom": "F", "top": "H"}


def test_monochrome1_with_a_voi_lut_sequence(tmp_path):
    pixels = chest_pixels()
    lo, hi = int(pixels.min()), int(pixels.max())
    write_radiograph(tmp_path, "a.dcm", VOILUTSequence=pydicom.Sequence([voi_lut_item(lo, hi - lo + 1)]))
    entry = _only(tmp_path)
    assert [p.name for p in entry.images[0].voi_presets] == ["VOI LUT 1: linear test LUT"]
    image = load_planar(entry).images[0]
    shown = grayscale.render(image, 0).astype(np.float64)
    expected = 255 - np.round((pixels - lo) / (hi - lo) * 255)  # the LUT is linear; MONOCHROME1 inverts it
    assert np.abs(shown - expected).max() <= 1.01


def test_window_functions_follow_the_standard():
    x = np.array([0.0, 40.0, 50.0, 60.0, 100.0])
    np.testing.assert_allclose(grayscale.window(x, 50, 21, "LINEAR"), [0, 0.025, 0.525, 1.0, 1.0])
    np.testing.assert_allclose(grayscale.window(x, 50, 20, "LINEAR_EXACT"), [0, 0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(grayscale.window(x, 50, 20, "SIGMOID"), 1 / (1 + np.exp(-4 * (x - 50) / 20)))


def test_every_window_pair_is_a_preset_with_its_explanation(tmp_path):
    write_radiograph(tmp_path, "a.dcm", WindowCenter=[2000, 1000], WindowWidth=[4000, 1500],
                     WindowCenterWidthExplanation=["NORMAL", "HARDER"], VOILUTFunction="SIGMOID")
    presets = _only(tmp_path).images[0].voi_presets
    assert [(p.center, p.width, p.function) for p in presets] == [(2000, 4000, "SIGMOID"), (1000, 1500, "SIGMOID")]
    assert presets[0].name.startswith("NORMAL") and presets[1].name.startswith("HARDER")


@pytest.mark.parametrize("attrs, source, spacing, label", [
    ({"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.25, 0.25]}, "PixelSpacing", (0.2, 0.2), "mm"),
    ({"ImagerPixelSpacing": [0.2, 0.2]}, "ImagerPixelSpacing", (0.2, 0.2), "mm at detector"),
    ({"ImagerPixelSpacing": [0.22, 0.22], "EstimatedRadiographicMagnificationFactor": 1.1},
     "ImagerPixelSpacing/ERMF", (0.2, 0.2), "mm (detector ÷ magnification 1.1)"),
    ({}, "none", None, "px (no calibration)"),
])
def test_calibration_is_stated(tmp_path, attrs, source, spacing, label):
    write_radiograph(tmp_path, "a.dcm", **attrs)
    entry = _only(tmp_path)
    cal = entry.images[0].calibration
    assert cal.source == source and cal.label == label
    display = entry.to_dict()["images"][0]["display"]
    assert display["calibration"] == source
    if spacing is None:
        assert cal.spacing_mm is None and display["pixel_spacing_mm"] is None
        assert cal.length((0, 0), (30, 40)) == (50.0, "px")
    else:
        np.testing.assert_allclose(cal.spacing_mm, spacing)
        value, unit = cal.length((0, 0), (30, 40))
        assert unit == "mm" and value == pytest.approx(50 * spacing[0])


def test_ultrasound_region_calibrates_inside_the_region_only(tmp_path):
    write_ultrasound(tmp_path, "us.dcm", SequenceOfUltrasoundRegions=pydicom.Sequence([us_region(100, 50, 500, 400,
                                                                                                 0.02)]))
    d = _only(tmp_path).images[0]
    assert d.calibration.source == "UltrasoundRegion" and d.calibration.spacing_mm == (0.2, 0.2)
    assert d.calibration.length((60, 110), (60, 160)) == (pytest.approx(10.0), "mm")  # 50 px × 0.2 mm
    assert d.calibration.length((10, 10), (10, 60)) == (50.0, "px")  # outside the region: pixels


def test_twenty_frame_cine_with_frame_time(tmp_path):
    write_ultrasound(tmp_path, "cine.dcm", frames=20, FrameTime=40.0)
    entry = _only(tmp_path)
    assert entry.kind == "cine"
    display = entry.to_dict()["images"][0]["display"]
    assert display["frames"] == 20 and display["frame_time_ms"] == 40.0
    series = load_planar(entry)
    image = series.images[0]
    assert image.n_frames == 20
    assert not np.array_equal(grayscale.render(image, 0), grayscale.render(image, 5))
    np.testing.assert_array_equal(image.frames[5], np.roll(image.frames[0], 40, axis=1))


@pytest.mark.parametrize("attrs, expected", [
    ({"FrameTimeVector": [0] + [25.0] * 19}, 25.0),
    ({"CineRate": 50}, 20.0),
    ({"RecommendedDisplayFrameRate": 10}, 100.0),
    ({}, None),
])
def test_frame_rate_sources(tmp_path, attrs, expected):
    write_ultrasound(tmp_path, "cine.dcm", frames=20, **attrs)
    d = _only(tmp_path).images[0]
    assert d.frame_time_ms == (pytest.approx(expected) if expected else None)


def test_two_radiographs_of_different_sizes_are_one_stack_in_instance_order(tmp_path):
    series = generate_uid()
    small = chest_pixels()[::2, ::2]
    write_radiograph(tmp_path, "b.dcm", series_uid=series, number=2, PatientOrientation=["P", "F"],
                     ViewPosition="LL")
    write_radiograph(tmp_path, "a.dcm", small, series_uid=series, number=1, PatientOrientation=["L", "F"],
                     ViewPosition="PA")
    entry = _only(tmp_path)
    assert entry.kind == "stack" and entry.loadable
    images = entry.to_dict()["images"]
    assert [(i["instance_number"], i["rows"]) for i in images] == [(1, small.shape[0]), (2, chest_pixels().shape[0])]
    loaded = load_planar(entry)
    assert [im.shape for im in loaded.images] == [small.shape, chest_pixels().shape]
    hanging = hang(loaded)
    assert (hanging.rows, hanging.columns, hanging.name) == (1, 2, "pair")
    assert [c.image for c in hanging.cells] == [0, 1]  # PA first, lateral beside it


def test_mammography_hangs_back_to_back_with_letters_flipped(tmp_path):
    mammography_study(tmp_path)
    entry = _only(tmp_path)
    series = load_planar(entry)
    hanging = hang(series)
    assert (hanging.rows, hanging.columns, hanging.name) == (2, 2, "mammography")
    views = [(series.images[c.image].display.laterality + series.images[c.image].display.view_position, c.flip_h)
             for c in hanging.cells]
    # every view has its nipple (A) to the right as stored: the right breast (left column) is flipped so that its
    # chest wall faces the middle; the left breast already has its chest wall on its left edge
    assert views == [("RCC", True), ("LCC", False), ("RMLO", True), ("LMLO", False)]


def test_an_undecodable_image_is_skipped_and_the_rest_opens(tmp_path):
    series = generate_uid()
    write_radiograph(tmp_path, "a.dcm", series_uid=series, number=1)
    bad = write_radiograph(tmp_path, "b.dcm", series_uid=series, number=2)
    ds = pydicom.dcmread(bad)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # claims JPEG 2000: the bytes are not
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds.save_as(bad)
    entry = _only(tmp_path)
    series_loaded = load_planar(entry)
    assert len(series_loaded.images) == 1 and series_loaded.skipped[0][0].endswith("b.dcm")
    assert series_loaded.skipped[0][1] and any("skipped" in w for w in series_loaded.warnings)


def test_absurd_declared_sizes_are_refused_before_allocation(tmp_path):
    path = write_radiograph(tmp_path, "big.dcm")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 2
    ds.save_as(path)
    index = scan(str(tmp_path))
    assert not index.series and "too large to be real" in index.skipped[0].reason
    path = write_ultrasound(tmp_path / "frames", "many.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.5"  # RLE: encapsulated, one fragment
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 100])
    ds.NumberOfFrames = 5000
    ds.save_as(path)
    index = scan(str(tmp_path / "frames"))
    assert not index.series and "frames" in index.skipped[0].reason


def test_rectangular_and_circular_shutters_blank_the_outside(tmp_path):
    write_radiograph(tmp_path, "a.dcm", photometric="MONOCHROME2", ShutterShape="RECTANGULAR\\CIRCULAR",
                     ShutterLeftVerticalEdge=50, ShutterRightVerticalEdge=400, ShutterUpperHorizontalEdge=40,
                     ShutterLowerHorizontalEdge=450, CenterOfCircularShutter=[245, 230], RadiusOfCircularShutter=200,
                     ShutterPresentationValue=0)
    image = load_planar(_only(tmp_path)).images[0]
    shown = grayscale.render(image, 0)
    assert (shown[:, :49] == 0).all() and (shown[:39, :] == 0).all()
    assert (shown[5, 230] == 0) and shown[200:290, 190:270].std() > 0  # outside the circle / inside it
    free = grayscale.render(image, 0, shutter=False)
    assert free[:, :49].std() > 0


def test_overlay_plane_is_read_at_its_origin(tmp_path):
    path = write_radiograph(tmp_path, "a.dcm")
    ds = pydicom.dcmread(path)
    rows, cols = 32, 48
    bits = np.zeros((rows, cols), dtype=np.uint8)
    bits[4:10, 4:40] = 1
    ds.add_new((0x6000, 0x0010), "US", rows)
    ds.add_new((0x6000, 0x0011), "US", cols)
    ds.add_new((0x6000, 0x0040), "CS", "G")
    ds.add_new((0x6000, 0x0050), "SS", [11, 21])
    ds.add_new((0x6000, 0x0100), "US", 1)
    ds.add_new((0x6000, 0x0102), "US", 0)
    ds.add_new((0x6000, 0x3000), "OW", pydicom.pixels.pack_bits(bits))
    ds.save_as(path)
    image = load_planar(_only(tmp_path)).images[0]
    assert image.display.overlay_groups == (0x6000,)
    mask = image.overlay(0x6000)
    assert mask.sum() == bits.sum() and mask[10 + 4, 20 + 4] and not mask[4, 4]


def test_modality_lut_sequence_is_applied_before_the_window():
    """mlut_18.dcm carries a Modality LUT Sequence (no rescale): the display goes through it, as pydicom's
    apply_modality_lut computes it, then over the full range of its output."""
    from pydicom.pixels import apply_modality_lut

    path = data_path("dicom-objects", "mlut_18.dcm")
    image = load_planar(_only(path)).images[0]
    assert image.display.has_modality_lut_sequence
    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    voi = grayscale.default_voi(image)
    assert voi.name == "full range"
    expected = np.round(grayscale.window(modality, voi.center, voi.width) * 255)
    assert np.abs(grayscale.render(image, 0, voi).astype(np.float64) - expected).max() <= 1
    assert not np.array_equal(modality, ds.pixel_array.astype(np.float64))  # the LUT changed the values
