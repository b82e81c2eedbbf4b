"""DICOM SEG as a segmentation of its referenced series: names, numbers and recommended colours kept, frames placed
on the series' grid (by position, or by source image when a frame has none), SEG files kept in the study index.

Real cases come from ../shared/data/seg-dcmqi (skipped when absent); synthetic series and SEGs (written here with
pydicom and highdicom) run everywhere.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from reference import data_path

from viewer.io import loaders
from viewer.io.dicom_index import scan
from viewer.io.seg_file import (
    SegError,
    SegmentedStudyIndex,
    load_seg,
    read_seg,
    read_seg_reference,
    segment_colors,
    source_slices_of,
    with_segmentations,
)
from viewer.logic import open_study

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
LIVER_RGB = (221, 130, 101)  # 3D Slicer's liver; liver.dcm recommends it as CIELab (41661, 41167, 40792)


# --- synthetic series and SEGs -------------------------------------------------------------------------------------
def write_ct_series(folder, n: int = 4, size: int = 16, spacing: float = 2.0, names=None, seed: int = 1) -> list[str]:
    """``n`` axial CT slices (``size``², 0.5 mm pixels, ``spacing`` mm apart) of one new series; their paths."""
    os.makedirs(folder, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Seg", "SEG-1", "19700101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.SeriesDescription, ds.Manufacturer = "synthetic CT", "test"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], spacing
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        rng = np.random.default_rng(seed + k)
        ds.PixelData = rng.integers(-100, 100, (size, size)).astype(np.int16).tobytes()
        path = os.path.join(folder, names[k] if names else f"ct{k:02d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def write_seg(path, sources, masks, names=("Liver",), lab=(None,), description="Synthetic SEG") -> str:
    """A BINARY SEG made with highdicom over the images ``sources``: ``masks[i]`` (one (rows, cols) plane per
    source) is segment ``i + 1`` named ``names[i]``, recommended colour ``lab[i]`` (CIELab, or None)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    images = [pydicom.dcmread(p) for p in sources]
    descriptions = []
    for i, name in enumerate(names):
        extra = {"display_color": hd.color.CIELabColor(*lab[i])} if lab[i] is not None else {}
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=name, segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            **extra))
    pixels = np.stack([np.asarray(m, bool) for m in masks], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=images, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=10,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="1", device_serial_number="1", series_description=description)
    seg.save_as(str(path))
    return str(path)


def without_positions(src: str, dst: str) -> str:
    """A copy of a SEG whose frames have no position or orientation: only their source images place them."""
    ds = pydicom.dcmread(src)
    for groups in ds.PerFrameFunctionalGroupsSequence:
        if "PlanePositionSequence" in groups:
            del groups.PlanePositionSequence
    shared = ds.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" in shared:
        del shared.PlaneOrientationSequence
    ds.save_as(dst)
    return dst


@pytest.fixture
def subset_study(tmp_path):
    """A 4-slice CT and a SEG (two segments) whose frames cover slices 1 and 3 only."""
    paths = write_ct_series(tmp_path / "ct")
    a = np.zeros((2, 16, 16), bool)
    a[0, 2:6, 3:8] = True  # on slice 1
    a[1, 8:12, 8:14] = True  # on slice 3
    b = np.zeros((2, 16, 16), bool)
    b[1, 0:3, 0:3] = True  # slice 3 only
    seg = write_seg(tmp_path / "seg.dcm", [paths[1], paths[3]], [a, b], names=("Tumour", "Kidney"),
                    lab=((60.0, 20.0, 30.0), None))
    index = loaders.load(loaders.examine(str(tmp_path))[0])
    volume = open_study.load_series(index.series[0])
    return index, volume, seg


# --- a SEG over its series -----------------------------------------------------------------------------------------
def test_liver_keeps_its_name_number_and_recommended_colour_over_its_series():
    ct, seg = data_path("seg-dcmqi", "ct-3slice"), str(data_path("seg-dcmqi", "liver.dcm"))
    index = scan(str(ct))
    volume = open_study.load_series(index.series[0])
    layer = open_study.read_segmentation(seg, volume, index.series[0], index)
    assert layer.label_map.labels == {1: "Liver"}
    assert layer.label_name(1) == "Liver" and layer.name == "Liver Segmentation"
    assert all(abs(c - e) <= 1 for c, e in zip(layer.colors[1], LIVER_RGB)), layer.colors
    assert layer.geometry == volume.geometry and layer.volumes_ml[1] > 0
    assert all(layer.label_map.array[z].any() for z in range(3))
    assert layer.meta["source_file"] == seg and layer.meta["source_kind"] == "DICOM SEG"
    segment = layer.label_map.meta["segments"][1]
    assert segment["number"] == 1 and segment["label"] == "Liver"


def test_liver_is_added_over_its_series_not_refused_as_off_grid():
    from viewer.core.session import Session

    ct, seg = data_path("seg-dcmqi", "ct-3slice"), str(data_path("seg-dcmqi", "liver.dcm"))
    index = with_segmentations(scan(str(ct)))
    session = Session()
    session.load_volume(open_study.load_series(index.series[0]))
    layer = open_study.read_segmentation(seg, session.volume, index=index)
    ok, text = open_study.add_segmentation(session, layer, seg)
    assert ok, text
    assert "Liver" in text and "label 255" not in text
    assert open_study.shown_segmentation(session, seg) is layer


def test_partial_overlaps_segments_land_on_their_own_slices():
    ct, seg = data_path("seg-dcmqi", "ct-3slice"), str(data_path("seg-dcmqi", "partial_overlaps.dcm"))
    index = scan(str(ct))
    volume = open_study.load_series(index.series[0])
    stack_source = pydicom.dcmread(seg, stop_before_pixels=True)
    # which source slice (by SOPInstanceUID) each segment's frames were derived from
    slice_of = {uid: z for (uid, _), z in source_slices_of(index.series[0], volume.geometry).items()}
    expected: dict[int, set[int]] = {}
    for groups in stack_source.PerFrameFunctionalGroupsSequence:
        number = int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = groups.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        expected.setdefault(number, set()).add(slice_of[uid])
    assert expected[1] == {1} and expected[3] == {0, 1, 2}  # GREEN on the middle slice only, PURPLE on all
    from viewer.io.seg_file import read_seg_segments

    segments = read_seg_segments(seg, volume)
    assert segments.labels == {1: "GREEN", 2: "ORANGE", 3: "PURPLE", 4: "LIGHT_BLUE", 5: "DARK_BLUE"}
    for i, number in enumerate(segments.numbers):
        on = {z for z in range(volume.shape_zyx[0]) if segments.masks[i, z].any()}
        assert on <= expected[number], (number, on, expected[number])
        assert on, f"segment {number} is empty"
    layer = open_study.read_segmentation(seg, volume, index.series[0], index)
    assert layer.colors[1] == (128, 174, 128) and layer.colors[5] == (0, 151, 206)  # GREEN, DARK_BLUE


def test_a_seg_of_some_slices_is_zeros_elsewhere(subset_study):
    index, volume, seg = subset_study
    labels = read_seg(seg, volume)
    assert labels.geometry == volume.geometry
    assert labels.labels == {1: "Tumour", 2: "Kidney"}
    array = labels.array
    assert not array[0].any() and not array[2].any()
    assert np.count_nonzero(array[1] == 1) == 20 and np.count_nonzero(array[3] == 1) == 24
    assert np.count_nonzero(array[3] == 2) == 9 and not (array[1] == 2).any()
    assert array[1, 2:6, 3:8].all() and array[3, 8:12, 8:14].all()
    colors = segment_colors(labels)
    assert set(colors) == {1}  # the Kidney segment recommends no colour: the layer picks its own
    layer = open_study.read_segmentation(seg, volume, index.series[0], index)
    assert layer.colors[1] == colors[1] and layer.name == "Synthetic SEG"


def test_recommended_cielab_becomes_srgb_through_highdicom(subset_study):
    import highdicom as hd

    _, _, seg = subset_study
    ref = read_seg_reference(seg)
    expected = tuple(int(c) for c in hd.color.CIELabColor(60.0, 20.0, 30.0).to_rgb())
    assert ref.segments[0].color_rgb == expected
    r, g, b = expected  # L* 60, a* +20 (red), b* +30 (yellow): a warm brown
    assert r > g > b and 140 < r < 220


def test_frames_without_positions_are_placed_by_their_source_images(subset_study, tmp_path):
    index, volume, seg = subset_study
    bare = without_positions(seg, str(tmp_path / "bare.dcm"))
    slices = source_slices_of(index.series[0], volume.geometry)
    placed = read_seg(bare, volume, source_slices=slices)
    assert np.array_equal(placed.array, read_seg(seg, volume).array)
    with pytest.raises(SegError, match="no position in patient space"):
        read_seg(bare, volume)  # without the series' slices nothing says where the frames go
    layer = open_study.read_segmentation(bare, volume, index.series[0], index)
    assert np.array_equal(layer.label_map.array, placed.array)


def test_a_seg_made_on_another_series_of_the_study_asks_for_that_series(subset_study, tmp_path):
    index, volume, seg = subset_study
    other = write_ct_series(tmp_path / "other", n=2, seed=9)
    index = with_segmentations(scan(str(tmp_path)))
    other_entry = next(e for e in index.series if e.files[0] in other)
    other_volume = open_study.load_series(other_entry)
    answer = open_study.read_segmentation(seg, other_volume, other_entry, index)
    assert isinstance(answer, open_study.SeriesFirst)
    assert answer.series_key == next(e.key for e in index.series if e.key != other_entry.key)
    assert open_study.segmentation_series_key(index, seg, volume.meta["series_uid"]) is None


def test_reading_a_seg_needs_a_series():
    with pytest.raises(RuntimeError, match="load a series first"):
        open_study.read_segmentation(str(data_path("seg-dcmqi", "liver.dcm")))


# --- SEG files in the study index ------------------------------------------------------------------------------------
def test_index_keeps_seg_files_as_segmentations_of_their_series(subset_study, tmp_path):
    index, _, seg = subset_study
    assert isinstance(index, SegmentedStudyIndex)
    assert [r.path for r in index.segmentations] == [seg]
    ref = index.segmentations[0]
    assert ref.referenced_series_uids == (index.series[0].series_uid,)
    assert ref.labels == {1: "Tumour", 2: "Kidney"} and ref.title == "Synthetic SEG"
    assert index.segmentations_of(index.series[0].series_uid) == [ref]
    assert not index.skipped and len(index.series) == 1
    assert index.to_dict()["segmentations"][0]["segments"][0]["label"] == "Tumour"
    # the plain scan skips it; the index of the loaders keeps it
    plain = scan(str(tmp_path))
    assert [s.path for s in plain.skipped] == [seg]


def test_a_seg_whose_series_is_absent_stays_skipped_with_a_reason(subset_study, tmp_path):
    _, _, seg = subset_study
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(seg, alone / "seg.dcm")
    write_ct_series(alone / "unrelated", n=2, seed=5)
    index = loaders.load(loaders.examine(str(alone))[0])
    assert index.segmentations == []
    (skipped,) = index.skipped
    assert skipped.path.endswith("seg.dcm") and "which is not here" in skipped.reason


def test_shared_folder_lists_its_segs_under_their_series():
    root = data_path("seg-dcmqi")
    index = loaders.load(loaders.examine(str(root))[0])
    by_name = {os.path.basename(r.path): r for r in index.segmentations}
    assert {"liver.dcm", "partial_overlaps.dcm"} <= set(by_name)
    ct = next(e for e in index.series if e.files[0].endswith(os.path.join("ct-3slice", "01.dcm")))
    assert {os.path.basename(r.path) for r in index.segmentations_of(ct.series_uid)} == {"liver.dcm",
                                                                                          "partial_overlaps.dcm"}
    liver = by_name["liver.dcm"]
    assert [(s.number, s.label) for s in liver.segments] == [(1, "Liver")]
    assert all(abs(c - e) <= 1 for c, e in zip(liver.segments[0].color_rgb, LIVER_RGB))
    # the label-map SEG (its own series in the plain scan) joins its series too, and no SEG stays skipped or listed
    assert "sparse-labelmap-noppv.dcm" in by_name
    assert all(e.modality != "SEG" for e in index.series)
    assert not [s for s in index.skipped if "DICOM SEG segmentation (open it" in s.reason]


def test_seg_on_its_own_grid_still_opens_alone():
    labels = load_seg(str(data_path("seg-dcmqi", "liver.dcm")))
    assert labels.labels == {1: "Liver"} and labels.array.shape == (3, 512, 512)
