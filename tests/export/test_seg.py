"""DICOM SEG export and import: atomic writing, the demo round trip (highdicom and radview read the same mask
on the same grid), dcmqi's SEGs against their NRRD references and back, dciodvfy, and the loader opening a SEG."""
from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from reference import compare_in_physical_space, data_path, sitk_geometry_arrays

from radview_base.atomic_file import TEMP_PREFIX, atomic_path, atomic_write, atomic_write_bytes
from radview_base.geometry import Geometry
from viewer.export import AI_NOT_REVIEWED
from viewer.export.seg import SourceSeries, segment_codes, write_seg
from viewer.io.seg_file import SegError, SegmentStack, is_seg_file, load_seg, read_seg, read_seg_segments, seg_geometry
from viewer.io.series_loader import load_path
from viewer.io.volume import LabelMap

PROVENANCE = {"model_id": "demo-ct", "model_name": "Demo CT segmenter", "model_version": "2.1",
              "method": "learned network (TorchScript)", "device": "cpu", "precision": "float32",
              "run_time_s": 3.25, "started_at": "2024-03-15T10:20:00+00:00", "parameters": {"threshold": 0.5},
              "software": "radview 0.1.0"}


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------------------------------ atomic writing
def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    dest = tmp_path / "out" / "report.txt"  # the folder is created
    seen = []

    def writer(tmp):
        seen.append(tmp)
        assert os.path.dirname(tmp) == str(dest.parent) and os.path.basename(tmp).startswith(TEMP_PREFIX)
        assert tmp.endswith("report.txt") and not dest.exists()
        Path(tmp).write_text("first")

    assert atomic_write(dest, writer) == str(dest)
    assert dest.read_text() == "first" and _files(dest.parent) == ["report.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~umask  # usual permissions, not mkstemp's 0600
    atomic_write_bytes(dest, "second")
    assert dest.read_text() == "second" and _files(dest.parent) == ["report.txt"]
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(b"third")
        assert dest.read_text() == "second"  # untouched until the block ends
    assert dest.read_bytes() == b"third"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_destination_as_it_was(tmp_path, error):
    old = tmp_path / "seg.dcm"
    old.write_bytes(b"previous version")
    new = tmp_path / "new.dcm"

    def half_then_fail(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half of a file")
        raise error

    for dest in (old, new):
        with pytest.raises(type(error)):
            atomic_write(dest, half_then_fail)
    assert old.read_bytes() == b"previous version"
    assert _files(tmp_path) == ["seg.dcm"]  # no temporary file, no half-written new file


def test_atomic_write_refuses_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(tmp_path, b"x")


def test_a_seg_export_that_fails_midway_leaves_no_file(tmp_path, monkeypatch):
    ct = data_path("seg-dcmqi", "ct-3slice")
    source = SourceSeries.open(str(ct))
    labels = read_seg(data_path("seg-dcmqi", "liver.dcm"), source.geometry)
    out = tmp_path / "exports"
    out.mkdir()
    (out / "liver.dcm").write_bytes(b"an earlier export")
    real_save = hd.seg.Segmentation.save_as

    def disk_full(self, filename, *args, **kwargs):  # writes the first half of the real bytes, then fails
        buffer = io.BytesIO()
        real_save(self, buffer, *args, **kwargs)
        with open(filename, "wb") as fh:
            fh.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hd.seg.Segmentation, "save_as", disk_full)
    for name in ("liver.dcm", "new.dcm"):
        with pytest.raises(OSError, match="No space"):
            write_seg(str(out / name), labels, source)
    assert _files(out) == ["liver.dcm"] and (out / "liver.dcm").read_bytes() == b"an earlier export"


# --------------------------------------------------------------------------------------------------- codes
def test_segment_codes_of_known_and_unknown_names():
    assert segment_codes("lung_left") == (codes.SCT.AnatomicalStructure, codes.SCT.Lung, codes.SCT.Left)
    assert segment_codes("Right Lung") == (codes.SCT.AnatomicalStructure, codes.SCT.Lung, codes.SCT.Right)
    assert segment_codes("kidney_right")[1:] == (codes.SCT.Kidney, codes.SCT.Right)
    assert segment_codes("body")[1] == codes.SCT.EntireBody
    assert segment_codes("airway")[1] == codes.SCT.AirwayStructure
    assert segment_codes("heart")[1] == codes.SCT.Heart and segment_codes("aorta")[1] == codes.SCT.Aorta
    assert segment_codes("bone")[:2] == (codes.SCT.Tissue, codes.SCT.BoneTissue)
    assert segment_codes("nodule")[:2] == (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule)
    assert segment_codes("nodule candidate")[1] == codes.SCT.Nodule
    assert segment_codes("my structure") == (codes.SCT.Tissue, codes.SCT.Tissue, None)
    assert segment_codes("left_thing") == (codes.SCT.Tissue, codes.SCT.Tissue, None)


# ------------------------------------------------------------------------------------ the demo round trip
def _hd_geometry(g: Geometry, for_uid: str) -> hd.VolumeGeometry:
    """Our grid as highdicom's: its affine maps (slice, row, column) indices to LPS."""
    affine = np.eye(4)
    steps = g.direction_matrix * g.spacing_xyz  # columns: x, y, z steps
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = steps[:, 2], steps[:, 1], steps[:, 0]
    affine[:3, 3] = g.origin_lps
    return hd.VolumeGeometry(affine, g.shape_zyx, coordinate_system="PATIENT", frame_of_reference_uid=for_uid)


@pytest.fixture(scope="module")
def demo_seg(tmp_path_factory, demo_labels, demo_source):
    path = tmp_path_factory.mktemp("seg") / "demo_seg.dcm"
    info = write_seg(str(path), demo_labels, demo_source, provenance=PROVENANCE)
    return path, info


def test_demo_seg_reads_back_identically_with_highdicom_and_radview(demo_seg, demo_labels, demo_volume,
                                                                    demo_source):
    path, info = demo_seg
    assert info.segment_of_label == {k: k for k in range(1, 9)} and info.note == AI_NOT_REVIEWED
    # highdicom: its own frame sorting and geometry, matched onto the CT's grid by highdicom (no resampling)
    seg = hd.seg.segread(str(path))
    vol = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint8)
    matched = vol.match_geometry(_hd_geometry(demo_volume.geometry, demo_source.frame_of_reference_uid), tol=1e-3)
    assert np.array_equal(matched.array, demo_labels.array)
    # radview's reader: the identical mask on the identical geometry
    back = read_seg(str(path), demo_volume)
    assert back.geometry == demo_volume.geometry
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, demo_labels.array)
    assert back.labels == demo_labels.labels
    assert back.meta["overlapping_voxels"] == 0 and back.meta["warnings"] == []
    # frames only where a segment is present: one per (segment, slice) pair holding it
    pairs = sum(int(np.any(demo_labels.array == k, axis=(1, 2)).sum()) for k in demo_labels.labels)
    assert int(seg.NumberOfFrames) == pairs


def test_demo_seg_frames_reference_their_source_slices_and_hold_the_right_pixels(demo_seg, demo_labels,
                                                                                 demo_paths):
    """From first principles: each frame's source is the CT file at that frame's position, and a foreground
    pixel at (row, column) lies at IPP + column·Δc·row-direction + row·Δr·column-direction, where the label
    map holds that frame's segment."""
    path, _ = demo_seg
    by_z = {}
    for f in (demo_paths.dicom_dir / "ct_thin").iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        by_z[round(float(ds.ImagePositionPatient[2]), 3)] = str(ds.SOPInstanceUID)
    seg = hd.seg.segread(str(path))
    ori = np.asarray(seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float)
    spacing = np.asarray(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing, float)
    rng = np.random.default_rng(7)
    frames = rng.choice(int(seg.NumberOfFrames), size=60, replace=False)
    for i in frames:
        fg = seg.PerFrameFunctionalGroupsSequence[i]
        ipp = np.asarray(fg.PlanePositionSequence[0].ImagePositionPatient, float)
        source = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source == by_z[round(ipp[2], 3)]
        number = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        rows, cols = np.nonzero(seg.get_stored_frame(int(i) + 1))
        assert len(rows)
        pick = rng.choice(len(rows), size=min(5, len(rows)), replace=False)
        for r, c in zip(rows[pick], cols[pick]):
            position = ipp + c * spacing[1] * ori[:3] + r * spacing[0] * ori[3:]
            idx = np.rint(demo_labels.geometry.world_to_index(position)).astype(int)
            assert demo_labels.array[tuple(idx)] == number


def test_demo_seg_describes_segments_algorithm_and_review_state(demo_seg, demo_paths):
    path, _ = demo_seg
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    assert ds.SeriesDescription.startswith(AI_NOT_REVIEWED) and "Demo CT segmenter" in ds.SeriesDescription
    assert ds.ContentDescription == AI_NOT_REVIEWED
    assert [s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence] == [demo_paths.ct_series_uid]
    by_label = {s.SegmentLabel: s for s in ds.SegmentSequence}
    assert list(by_label) == ["body", "lung_left", "lung_right", "airway", "heart", "aorta", "bone", "nodule"]
    left = by_label["lung_left"].SegmentedPropertyTypeCodeSequence[0]
    assert (left.CodeValue, left.CodingSchemeDesignator) == ("39607008", "SCT")
    assert left.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"  # Left
    nodule = by_label["nodule"]
    assert nodule.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"  # morphologically abnormal
    assert nodule.SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"  # nodule
    for s in ds.SegmentSequence:
        assert s.SegmentAlgorithmType == "AUTOMATIC"
        algo = s.SegmentationAlgorithmIdentificationSequence[0]
        assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("Demo CT segmenter", "2.1")
        assert algo.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
        assert "device=cpu" in algo.AlgorithmParameters and "parameters.threshold=0.5" in algo.AlgorithmParameters
        assert "RecommendedDisplayCIELabValue" in s


def test_demo_seg_passes_dciodvfy(demo_seg, dciodvfy):
    path, _ = demo_seg
    assert dciodvfy(path) == []


# ------------------------------------------------------------------------------- options and refusals
@pytest.fixture(scope="module")
def ct3():
    folder = data_path("seg-dcmqi", "ct-3slice")
    return str(folder), SourceSeries.open(str(folder)), load_path(str(folder))


def test_edited_manual_and_reviewed_results_say_so(ct3, tmp_path):
    _, source, _ = ct3
    array = np.zeros(source.geometry.shape_zyx, np.uint8)
    array[1, 200:260, 220:300] = 1
    labels = LabelMap(array, source.geometry, {1: "liver"})
    edited = write_seg(str(tmp_path / "edited.dcm"), labels, source, provenance=PROVENANCE, edited=True)
    manual = write_seg(str(tmp_path / "manual.dcm"), labels, source, content_creator="Doe^Jane")
    reviewed = write_seg(str(tmp_path / "reviewed.dcm"), labels, source, provenance=PROVENANCE,
                         reviewed_by="Doe^Jane")
    ds = pydicom.dcmread(edited.path, stop_before_pixels=True)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "Demo CT segmenter"
    assert ds.ContentDescription == "AI result, edited, not reviewed"
    ds = pydicom.dcmread(manual.path, stop_before_pixels=True)
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in ds.SegmentSequence[0]
    assert ds.ContentCreatorName == "Doe^Jane" and "AI result" not in ds.SeriesDescription
    ds = pydicom.dcmread(reviewed.path, stop_before_pixels=True)
    assert ds.ContentDescription == "AI result, reviewed by Doe^Jane"
    for info in (edited, manual, reviewed):
        assert np.array_equal(read_seg(info.path, source.geometry).array, array)


def test_empty_segments_are_kept_unless_asked_and_label_ids_survive(ct3, tmp_path):
    _, source, volume = ct3
    array = np.zeros(source.geometry.shape_zyx, np.uint8)
    array[0, 100:150, 100:150] = 2
    array[2, 300:320, 310:330] = 5
    labels = LabelMap(array, source.geometry, {2: "liver", 5: "nodule", 7: "spleen"})  # spleen: not found
    info = write_seg(str(tmp_path / "kept.dcm"), labels, source)
    assert info.segment_of_label == {2: 1, 5: 2, 7: 3} and info.n_frames == 2
    # other readers see segments 1..3 (consecutive, as the standard wants) ...
    seg = hd.seg.segread(info.path)
    assert seg.segment_numbers == [1, 2, 3]
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == ["liver", "nodule", "spleen"]
    hd_array = seg.get_volume(combine_segments=True, dtype=np.uint8).match_geometry(
        _hd_geometry(source.geometry, source.frame_of_reference_uid), tol=1e-3).array
    assert np.array_equal(hd_array, np.select([array == 2, array == 5], [1, 2], 0))
    # ... radview reads back the label ids it wrote (kept in a private element of each segment)
    back = read_seg(info.path, volume)
    assert back.labels == {2: "liver", 5: "nodule", 7: "spleen"} and np.array_equal(back.array, array)
    skipped = write_seg(str(tmp_path / "skipped.dcm"), labels, source, skip_empty=True)
    assert skipped.segment_of_label == {2: 1, 5: 2}
    assert read_seg(skipped.path, volume).labels == {2: "liver", 5: "nodule"}


def test_segment_numbers_are_mapped_only_in_labelled_slices_with_the_values_of_a_full_lookup(ct3, tmp_path):
    from viewer.export.seg import _segment_numbers

    rng = np.random.default_rng(5)
    numbers = {2: 1, 5: 2, 8: 3}  # 1, 3, 4, 6 and 7 have no segment
    lut = np.zeros(9, np.uint8)
    for label, n in numbers.items():
        lut[label] = n
    for dtype in (np.uint8, np.uint16, np.int16, np.int32):
        array = np.zeros((6, 7, 5), dtype)
        array[1] = rng.integers(0, 9, (7, 5))
        array[4, 2, 3] = 8
        mapped = _segment_numbers(array, numbers, len(numbers))
        assert mapped.dtype == np.uint8 and np.array_equal(mapped, lut[array])
    # through the writer: a uint16 map whose labels lie in one slice of three reads back the same, both ways
    _, source, volume = ct3
    array = np.zeros(source.geometry.shape_zyx, np.uint16)
    array[2, 40:90, 60:120] = 7
    array[2, 100:110, 130:140] = 3
    info = write_seg(str(tmp_path / "u16.dcm"), LabelMap(array, source.geometry, {3: "nodule", 7: "liver"}), source)
    assert info.segment_of_label == {3: 1, 7: 2} and info.n_frames == 2
    hd_array = hd.seg.segread(info.path).get_volume(combine_segments=True, dtype=np.uint8).match_geometry(
        _hd_geometry(source.geometry, source.frame_of_reference_uid), tol=1e-3).array
    assert np.array_equal(hd_array, np.select([array == 3, array == 7], [1, 2], 0))
    assert np.array_equal(read_seg(info.path, volume).array, array)


def test_a_label_map_off_the_series_grid_is_refused(ct3, tmp_path):
    _, source, _ = ct3
    g = source.geometry
    shifted = Geometry(g.shape_zyx, g.spacing_zyx, np.add(g.origin_lps, (0, 0, 0.5)), g.direction)
    with pytest.raises(SegError, match="away from the volume's grid"):
        write_seg(str(tmp_path / "x.dcm"), LabelMap(np.zeros(g.shape_zyx, np.uint8), shifted, {}), source)
    cropped = g.with_shape((2, 512, 512))
    with pytest.raises(SegError, match="shape"):
        write_seg(str(tmp_path / "x.dcm"), LabelMap(np.zeros((2, 512, 512), np.uint8), cropped, {}), source)
    assert _files(tmp_path) == []


def test_reading_refuses_a_grid_the_frames_do_not_lie_on(ct3):
    _, _, volume = ct3
    seg = data_path("seg-dcmqi", "liver.dcm")
    g = volume.geometry
    half_voxel = Geometry(g.shape_zyx, g.spacing_zyx, np.add(g.origin_lps, (0.4, 0, 0)), g.direction)
    with pytest.raises(SegError, match="mm off the series' voxel centres"):
        read_seg(seg, half_voxel)
    coarser = Geometry((3, 256, 256), (g.spacing_zyx[0], 2 * g.spacing_zyx[1], 2 * g.spacing_zyx[2]), g.origin_lps,
                       g.direction)
    with pytest.raises(SegError, match="would need resampling"):
        read_seg(seg, coarser)
    other = type(volume)(volume.array, g, meta=dict(volume.meta, frame_of_reference_uid="1.2.3.4"))
    with pytest.raises(SegError, match="frame of reference"):
        read_seg(seg, other)


def test_reading_onto_a_flipped_or_transposed_grid_places_each_pixel_by_position(ct3):
    """The same physical voxels indexed differently: frames are placed by position, not by file order."""
    _, _, volume = ct3
    seg = data_path("seg-dcmqi", "partial_overlaps.dcm")
    g = volume.geometry
    plain = read_seg(seg, g).array
    d = g.direction_matrix
    nz, ny, nx = g.shape_zyx
    flipped_y = Geometry(g.shape_zyx, g.spacing_zyx, g.index_to_world((0, ny - 1, 0)),
                         np.column_stack([d[:, 0], -d[:, 1], d[:, 2]]))
    assert np.array_equal(read_seg(seg, flipped_y).array, plain[:, ::-1, :])
    flipped_z = Geometry(g.shape_zyx, g.spacing_zyx, g.index_to_world((nz - 1, 0, 0)),
                         np.column_stack([d[:, 0], d[:, 1], -d[:, 2]]))
    assert np.array_equal(read_seg(seg, flipped_z).array, plain[::-1])
    transposed = Geometry((nz, nx, ny), (g.spacing_zyx[0], g.spacing_zyx[2], g.spacing_zyx[1]), g.origin_lps,
                          np.column_stack([d[:, 1], d[:, 0], d[:, 2]]))
    assert np.array_equal(read_seg(seg, transposed).array, plain.transpose(0, 2, 1))
    cropped = Geometry((nz, 200, 300), g.spacing_zyx, g.index_to_world((0, 150, 100)), d)
    part = read_seg(seg, cropped)
    assert np.array_equal(part.array, plain[:, 150:350, 100:400])
    assert any("outside the series" in w for w in part.meta["warnings"]) == bool(
        np.count_nonzero(plain) != np.count_nonzero(plain[:, 150:350, 100:400]))


# ------------------------------------------------------------------- dcmqi's SEGs: references and back
#: (SEG, source series, {reference NRRD: {value in the NRRD: segment number}})
DCMQI = [
    ("liver.dcm", "ct-3slice", {"liver_seg.nrrd": {1: 1}}),
    ("partial_overlaps.dcm", "ct-3slice", {"partial_overlaps-1.nrrd": {1: 1, 4: 4, 5: 5},
                                           "partial_overlaps-2.nrrd": {2: 2}, "partial_overlaps-3.nrrd": {3: 3}}),
    ("sparse-labelmap-noppv.dcm", "24x38x3/image", {"sparse_labelmap_noppv_seg.nrrd": {1: 1}}),
    ("sparse-labelmap-ppv5.dcm", "24x38x3/image", {"sparse_labelmap_ppv5_seg.nrrd": {1: 1}}),
    ("23x38x3/seg/label.seg", "23x38x3/image", {"23x38x3/nrrd/label.nrrd": {1: 1}}),
    ("24x38x3/seg/label.seg", "24x38x3/image", {"24x38x3/nrrd/label.nrrd": {1: 1}}),
    ("23x38x3/seg/label.seg", "23x38x3/multiframe", {"23x38x3/nrrd/label.nrrd": {1: 1}}),  # one multi-frame CT
]
#: dcmqi marks a frame the sparse SEG leaves out with the SEG's PixelPaddingValue (5): no segment there.
PADDING = {"sparse_labelmap_ppv5_seg.nrrd": 5}


def test_every_seg_of_the_dcmqi_data_is_covered():
    root = data_path("seg-dcmqi")
    segs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and is_seg_file(str(p))}
    assert segs == {case[0] for case in DCMQI}


@pytest.mark.parametrize("seg_name,source_name,references", DCMQI, ids=[f"{c[0]}@{c[1]}" for c in DCMQI])
def test_dcmqi_seg_matches_its_references_and_survives_a_radview_round_trip(seg_name, source_name, references,
                                                                            tmp_path, dciodvfy):
    root = data_path("seg-dcmqi")
    volume = load_path(str(root / source_name))
    stack = read_seg_segments(str(root / seg_name), volume)
    assert stack.geometry == volume.geometry
    numbers = stack.numbers
    for ref_name, value_to_segment in references.items():
        (ref,), ref_geom = sitk_geometry_arrays(root / ref_name)
        padding = PADDING.get(ref_name)
        if padding is not None:
            pad = ref == padding
            assert pad.any() and np.array_equal(np.nonzero(pad.any(axis=(1, 2)))[0], [1])  # the left-out frame
            ref = np.where(pad, 0, ref)
        for value, number in value_to_segment.items():
            ours = stack.masks[numbers.index(number)].astype(np.uint8)
            pos_err, diff, n = compare_in_physical_space(ours, stack.geometry, (ref == value).astype(np.uint8),
                                                         ref_geom, tol_mm=0.01)
            assert diff == 0 and n == ref.size and ours.sum() == (ref == value).sum() > 0
    # one label per voxel: the smallest segment covering it
    labels = read_seg(str(root / seg_name), volume)
    sizes = stack.masks.sum(axis=(1, 2, 3))
    expected = np.zeros(volume.shape_zyx, np.uint8)
    for i in sorted(range(len(numbers)), key=lambda i: (-sizes[i], numbers[i])):
        expected[stack.masks[i]] = numbers[i]
    assert np.array_equal(labels.array, expected)
    assert labels.meta["overlapping_voxels"] == int((stack.masks.sum(axis=0) > 1).sum())
    # written again by radview on the same series, read back identical (codes and names kept)
    source = SourceSeries.open(str(root / source_name))
    info = write_seg(str(tmp_path / "again.dcm"), stack, source)
    again = read_seg_segments(info.path, volume)
    assert again.labels == stack.labels and np.array_equal(again.masks, stack.masks)
    for n in numbers:
        theirs, ours = stack.meta["segments"][n], again.meta["segments"][n]
        assert ours["type"][2] == theirs["type"][2] and ours["category"][2] == theirs["category"][2]
        assert ours["algorithm_type"] == theirs["algorithm_type"]
    assert np.array_equal(read_seg(info.path, volume).array, labels.array)
    assert dciodvfy(info.path) == []


# ------------------------------------------------------------------------------------ opening a SEG alone
def test_the_loader_opens_a_seg_on_its_own_grid(ct3):
    _, _, volume = ct3
    seg = str(data_path("seg-dcmqi", "liver.dcm"))
    assert is_seg_file(seg) and not is_seg_file(str(data_path("seg-dcmqi", "ct-3slice", "01.dcm")))
    opened = load_path(seg)
    assert opened.meta["modality"] == "SEG" and opened.meta["labels"] == {1: "Liver"}
    assert opened.geometry.is_close(volume.geometry)  # its frames cover the CT's three slices
    assert np.array_equal(opened.array, read_seg(seg, volume).array)
    assert seg_geometry(seg).is_close(volume.geometry)
    assert np.array_equal(load_seg(seg).array, opened.array)


def test_a_sparse_seg_alone_spans_its_frames(tmp_path, ct3):
    """A SEG holding frames on slices 0 and 2 only opens on a 3-slice grid with slice 1 empty."""
    _, source, volume = ct3
    array = np.zeros(source.geometry.shape_zyx, np.uint8)
    array[0, 10:20, 10:20] = 1
    array[2, 30:40, 30:40] = 1
    info = write_seg(str(tmp_path / "sparse.dcm"), LabelMap(array, source.geometry, {1: "liver"}), source)
    assert info.n_frames == 2
    alone = load_seg(info.path)
    assert alone.geometry.is_close(volume.geometry) and np.array_equal(alone.array, array)


def test_segmentstack_to_label_map_resolves_overlaps_to_the_smaller_segment(ct3):
    _, source, _ = ct3
    g = source.geometry
    masks = np.zeros((2,) + g.shape_zyx, bool)
    masks[0, 1, 100:200, 100:200] = True  # big
    masks[1, 1, 150:160, 150:160] = True  # small, inside the big one
    lm = SegmentStack(masks, g, {1: "liver", 2: "lesion"}).to_label_map()
    assert (lm.array == 2).sum() == 100 and (lm.array == 1).sum() == 100 * 100 - 100
