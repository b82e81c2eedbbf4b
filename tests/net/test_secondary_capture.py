"""Screenshots as DICOM Secondary Capture (viewer.export.secondary_capture, viewer.logic.pacs_capture): RGB pixels
kept exactly, filed in the study of the series shown (same StudyInstanceUID, patient), a series of their own; sent
by C-STORE to a real Orthanc and found there through its REST API with the Secondary Capture SOP Class."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pacs_cases import CALLING, CT_PATIENT, CT_SERIES, CT_STUDY

from viewer.export import ExportError
from viewer.export.secondary_capture import SC_SOP_CLASS, write_secondary_capture
from viewer.logic.pacs_capture import ScreenshotSource, sc_uids, send_with_screenshots, write_screenshot_sc


def _picture(path, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


@pytest.fixture
def ct_file(ct_folder):
    return str(sorted(ct_folder.glob("*.dcm"))[0])


@pytest.mark.parametrize("use_highdicom", [True, False])
def test_the_secondary_capture_is_rgb_in_the_source_study(tmp_path, ct_file, use_highdicom):
    if use_highdicom:
        pytest.importorskip("highdicom")
    reference = pydicom.dcmread(ct_file, stop_before_pixels=True)
    rgb = np.random.default_rng(1).integers(0, 256, size=(30, 40, 4), dtype=np.uint8)  # RGBA: alpha dropped
    path = write_secondary_capture(tmp_path / "sc.dcm", rgb, reference, series_uid="1.2.3.4", sop_uid="1.2.3.4.5",
                                   comments="AI-assisted, not reviewed", use_highdicom=use_highdicom)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == SC_SOP_CLASS and ds.file_meta.MediaStorageSOPClassUID == SC_SOP_CLASS
    assert ds.StudyInstanceUID == CT_STUDY and ds.PatientID == CT_PATIENT
    assert ds.PatientName == reference.PatientName and ds.StudyDate == reference.StudyDate
    assert ds.SeriesInstanceUID == "1.2.3.4" and ds.SeriesInstanceUID != CT_SERIES
    assert ds.Modality == "OT" and ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert ds.BurnedInAnnotation == "YES" and ds.ConversionType == "WSD"
    assert ds.ImageComments == "AI-assisted, not reviewed"
    assert np.array_equal(ds.pixel_array, rgb[:, :, :3])


def test_a_secondary_capture_needs_its_own_series_and_a_study(tmp_path, ct_file):
    reference = pydicom.dcmread(ct_file, stop_before_pixels=True)
    rgb = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ExportError, match="series of its own"):
        write_secondary_capture(tmp_path / "a.dcm", rgb, reference, series_uid=CT_SERIES, sop_uid="1.2.3")
    del reference.StudyInstanceUID
    with pytest.raises(ExportError, match="StudyInstanceUID"):
        write_secondary_capture(tmp_path / "b.dcm", rgb, reference, series_uid="1.2.3", sop_uid="1.2.3.4")
    assert list(tmp_path.iterdir()) == []


def test_the_same_screenshot_is_the_same_instance(tmp_path, ct_file):
    _picture(tmp_path / "shot.png")
    source = ScreenshotSource(str(tmp_path / "shot.png"), ct_file)
    a = pydicom.dcmread(write_screenshot_sc(source, str(tmp_path / "a.dcm")))
    b = pydicom.dcmread(write_screenshot_sc(source, str(tmp_path / "b.dcm")))
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    _picture(tmp_path / "other.png", seed=2)
    c = pydicom.dcmread(write_screenshot_sc(ScreenshotSource(str(tmp_path / "other.png"), ct_file),
                                            str(tmp_path / "c.dcm")))
    assert c.SOPInstanceUID != a.SOPInstanceUID and c.SeriesInstanceUID == a.SeriesInstanceUID  # one series per study


def test_a_screenshot_is_sent_by_c_store_and_found_in_orthanc(inbox_nodes, inbox, tmp_path, ct_file):
    rgb = _picture(tmp_path / "shot.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    shots = (ScreenshotSource(str(tmp_path / "shot.png"), ct_file, "CT"),
             ScreenshotSource(str(tmp_path / "broken.png"), ct_file, "CT"))
    result = send_with_screenshots(inbox_nodes[0], (), shots, CALLING)
    assert result.sent == (str(tmp_path / "shot.png"),)  # named by the picture, not the temporary DICOM file
    assert [p for p, _ in result.failed] == [str(tmp_path / "broken.png")]
    assert "not made into a Secondary Capture" in result.failed[0][1]
    sop_uid = sc_uids(CT_STUDY, (tmp_path / "shot.png").read_bytes())[1]
    sc = inbox.rest("/tools/lookup", sop_uid.encode(), "POST")
    assert [x["Type"] for x in sc] == ["Instance"]
    tags = inbox.rest(f"/instances/{sc[0]['ID']}/simplified-tags")
    assert tags["SOPClassUID"] == SC_SOP_CLASS and tags["StudyInstanceUID"] == CT_STUDY
    assert tags["PatientID"] == CT_PATIENT and tags["SeriesInstanceUID"] != CT_SERIES
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(inbox.rest(f"/instances/{sc[0]['ID']}/file")))
    assert np.array_equal(stored.pixel_array, rgb)
    held = len(inbox.rest("/instances"))
    again = send_with_screenshots(inbox_nodes[0], (), shots[:1], CALLING)  # the same instance: still one in Orthanc
    assert again.complete and len(inbox.rest("/instances")) == held
