"""Label names for label maps (radview_base/label_table.py and image_io.read_label_map).

Names come from a JSON sidecar (``<stem>.json``, then ``labels.json``) or from
the ``SegmentN_Name`` / ``SegmentN_LabelValue`` header fields of a 3D Slicer
``.seg.nrrd`` (written here with SimpleITK metadata, as Slicer's files hold them).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from radview_base.label_table import read_label_names
from viewer.io.image_io import read_label_map


def _label_array() -> np.ndarray:
    a = np.zeros((3, 4, 5), np.uint8)
    a[0, 0, 0] = 1
    a[1, 1, 1] = 2
    a[2, 2, 2] = 5
    return a


def _write(path, array=None, meta: dict | None = None):
    img = sitk.GetImageFromArray(_label_array() if array is None else array)
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    for k, v in (meta or {}).items():
        img.SetMetaData(k, v)
    sitk.WriteImage(img, str(path))
    return path


def _json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")


# ------------------------------------------------------------------ JSON sidecars
def test_stem_sidecar_for_nifti(tmp_path):
    p = _write(tmp_path / "seg.nii.gz")
    _json(tmp_path / "seg.json", {"1": "liver", "2": "spleen", "5": "kidney"})
    assert read_label_names(str(p)) == {1: "liver", 2: "spleen", 5: "kidney"}
    lm = read_label_map(str(p))
    assert lm.labels == {1: "liver", 2: "spleen", 5: "kidney"}
    # geometry survives (SimpleITK's NIfTI reader/writer works in LPS)
    assert lm.geometry.spacing_zyx == pytest.approx((2.0, 0.6, 0.5))
    assert lm.geometry.origin_lps == pytest.approx((1.0, 2.0, 3.0))
    np.testing.assert_array_equal(lm.array, _label_array())


def test_labels_json_in_the_folder(tmp_path):
    p = _write(tmp_path / "mask.nrrd")
    _json(tmp_path / "labels.json", {"1": "body", "2": "lung_left"})
    lm = read_label_map(str(p))
    # named ones from the file, present but unnamed ones get "label N"
    assert lm.labels == {1: "body", 2: "lung_left", 5: "label 5"}


def test_stem_sidecar_wins_over_labels_json(tmp_path):
    p = _write(tmp_path / "a.mha")
    _json(tmp_path / "a.json", {"1": "from stem"})
    _json(tmp_path / "labels.json", {"1": "from folder"})
    assert read_label_names(str(p)) == {1: "from stem"}


def test_nested_labels_key_and_background_dropped(tmp_path):
    p = _write(tmp_path / "b.nii")
    _json(tmp_path / "b.json", {"labels": {"0": "background", "2": "spleen"}, "model": "x"})
    assert read_label_names(str(p)) == {2: "spleen"}


@pytest.mark.parametrize("bad", ["{not json", json.dumps(["liver", "spleen"]), json.dumps({"name": "liver"})])
def test_unusable_stem_sidecar_falls_through_to_labels_json(tmp_path, bad):
    p = _write(tmp_path / "c.nii.gz")
    (tmp_path / "c.json").write_text(bad, encoding="utf-8")
    _json(tmp_path / "labels.json", {"1": "liver"})
    assert read_label_names(str(p)) == {1: "liver"}


def test_no_names_anywhere(tmp_path):
    p = _write(tmp_path / "d.nii.gz")
    assert read_label_names(str(p)) == {}
    assert read_label_map(str(p)).labels == {1: "label 1", 2: "label 2", 5: "label 5"}


def test_explicit_labels_override_files(tmp_path):
    p = _write(tmp_path / "e.nii.gz")
    _json(tmp_path / "e.json", {"1": "liver"})
    assert read_label_map(str(p), labels={1: "mine"}).labels == {1: "mine", 2: "label 2", 5: "label 5"}


def test_unicode_names_in_json(tmp_path):
    p = _write(tmp_path / "f.nii.gz")
    _json(tmp_path / "f.json", {"1": "lésion", "2": "Lunge links"})
    assert read_label_names(str(p)) == {1: "lésion", 2: "Lunge links"}


# ------------------------------------------------------------------ Slicer .seg.nrrd
SLICER_META = {
    "Segment0_Name": "liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0", "Segment0_ID": "Segment_1",
    "Segment1_Name": "left kidney", "Segment1_LabelValue": "5", "Segment1_Layer": "0", "Segment1_ID": "Segment_2",
    "Segment2_Name": "spleen", "Segment2_LabelValue": "2", "Segment2_Layer": "0", "Segment2_ID": "Segment_3",
}


def test_slicer_seg_nrrd_header(tmp_path):
    p = _write(tmp_path / "Segmentation.seg.nrrd", meta=SLICER_META)
    assert "Segment1_Name:=left kidney" in p.read_bytes()[:2000].decode("latin-1")  # really in the header
    assert read_label_names(str(p)) == {1: "liver", 5: "left kidney", 2: "spleen"}
    lm = read_label_map(str(p))
    assert lm.labels == {1: "liver", 2: "spleen", 5: "left kidney"}


def test_slicer_label_value_defaults_to_index_plus_one(tmp_path):
    p = _write(tmp_path / "g.seg.nrrd", meta={"Segment0_Name": "liver", "Segment1_Name": "spleen"})
    assert read_label_names(str(p)) == {1: "liver", 2: "spleen"}


def test_slicer_header_without_segments(tmp_path):
    p = _write(tmp_path / "h.nrrd", meta={"SomethingElse": "1"})
    assert read_label_names(str(p)) == {}


def test_slicer_nhdr(tmp_path):
    p = _write(tmp_path / "i.nhdr", meta={"Segment0_Name": "aorta", "Segment0_LabelValue": "2"})
    assert read_label_map(str(p)).labels == {1: "label 1", 2: "aorta", 5: "label 5"}


def test_json_sidecar_of_seg_nrrd_uses_the_stem_without_seg(tmp_path):
    p = _write(tmp_path / "k.seg.nrrd", meta=SLICER_META)
    _json(tmp_path / "k.json", {"1": "from json"})
    assert read_label_names(str(p)) == {1: "from json"}


def test_unreadable_nrrd_gives_no_names(tmp_path):
    p = tmp_path / "broken.seg.nrrd"
    p.write_bytes(b"not an nrrd file at all")
    assert read_label_names(str(p)) == {}
