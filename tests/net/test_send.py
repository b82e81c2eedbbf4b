"""Sending radview's exports to a real Orthanc: a DICOM SEG and a DICOM SR by C-STORE and by STOW-RS, found
afterwards through Orthanc's REST API; a file that is not DICOM is reported, the rest still goes."""
from __future__ import annotations

import pydicom
from pacs_cases import CALLING
from reference import data_path

from viewer.logic.pacs import SendRequest, send


def _uid(path) -> str:
    return str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID)


def test_c_store_sends_a_seg_and_an_sr(inbox_nodes, inbox, make_sr, tmp_path):
    dimse_node = inbox_nodes[0]
    seg = data_path("seg-dcmqi", "liver.dcm")
    sr = make_sr("c-store length")
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    progress = []
    result = send(SendRequest(dimse_node, (str(seg), str(sr), str(junk)), CALLING),
                  progress=lambda done, total, _msg="": progress.append((done, total)))
    assert set(result.sent) == {str(seg), str(sr)}
    assert [p for p, _ in result.failed] == [str(junk)] and "not a DICOM file" in result.failed[0][1]
    assert not result.complete and progress[-1] == (3, 3)
    held = inbox.sop_instance_uids()
    assert _uid(seg) in held and _uid(sr) in held
    sr_in_orthanc = inbox.rest("/tools/lookup", _uid(sr).encode(), "POST")[0]
    tags = inbox.rest(f"/instances/{sr_in_orthanc['ID']}/simplified-tags")
    assert tags["Modality"] == "SR" and tags["StudyInstanceUID"] == pydicom.dcmread(str(sr)).StudyInstanceUID


def test_stow_rs_sends_a_seg_and_an_sr(inbox_nodes, inbox, make_sr):
    web_node = inbox_nodes[1]
    seg = data_path("seg-dcmqi", "partial_overlaps.dcm")
    sr = make_sr("stow length")
    result = send(SendRequest(web_node, (str(seg), str(sr))))
    assert result.complete and set(result.sent) == {str(seg), str(sr)}, result.failed
    held = inbox.sop_instance_uids()
    assert _uid(seg) in held and _uid(sr) in held


def test_a_kind_the_node_does_not_take_is_reported_per_file(inbox_nodes):
    label_map = data_path("seg-dcmqi", "sparse-labelmap-ppv5.dcm")  # Label Map Segmentation: unknown to Orthanc 1.10
    result = send(SendRequest(inbox_nodes[0], (str(label_map),), CALLING))
    assert result.sent == () and [p for p, _ in result.failed] == [str(label_map)]
    assert "accepts none of what was proposed: 1.2.840.10008.5.1.4.1.1.66.7" in result.failed[0][1]
