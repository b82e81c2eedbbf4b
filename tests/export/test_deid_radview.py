"""radview's own SEG and SR keep their review stamp ("AI result, not reviewed") through de-identification, and
nothing else of their text; the same text in someone else's object is treated like any other text."""
from __future__ import annotations

import json

import pydicom
import pytest

from viewer.export import AI_NOT_REVIEWED
from viewer.export.deid import RADVIEW_STAMPS, deidentify_study, is_radview_object
from viewer.export.seg import seg_note, write_seg
from viewer.export.sr import review_note, write_sr
from viewer.io.image_io import read_label_map


def _texts(ds) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.keyword == "TextValue"]


@pytest.fixture(scope="module")
def own(ai_run, demo_source, tmp_path_factory):
    """radview's SEG and SR of a real AI run on the demo CT, and their de-identified copies."""
    findings = json.loads((ai_run / "findings.json").read_text())
    folder = tmp_path_factory.mktemp("own")
    seg = write_seg(str(folder / "seg.dcm"), read_label_map(str(ai_run / "labels.nii.gz")), demo_source,
                    provenance=findings["provenance"])
    write_sr(str(folder / "sr.dcm"), demo_source, findings=findings, seg=seg)
    out = tmp_path_factory.mktemp("own-deid")
    report = deidentify_study(str(folder), str(out))
    assert report.n_written == 2 and not report.skipped, report.skipped_lines()
    copies = {pydicom.dcmread(w.source).Modality: (w.source, w.path) for w in report.written}
    return copies


def test_the_stamps_are_the_writers_notes():
    assert seg_note({"model_id": "m"}) == AI_NOT_REVIEWED and review_note(None) == AI_NOT_REVIEWED
    assert seg_note({"model_id": "m"}, edited=True) in RADVIEW_STAMPS


def test_radview_sr_keeps_the_stamp_and_nothing_else(own):
    src, out = (pydicom.dcmread(p) for p in own["SR"])
    assert is_radview_object(src) and is_radview_object(out)
    before, after = _texts(src), _texts(out)
    assert before.count(AI_NOT_REVIEWED) >= 1
    assert after.count(AI_NOT_REVIEWED) == before.count(AI_NOT_REVIEWED)  # the stamp survives, where it was
    assert set(after) <= set(RADVIEW_STAMPS) | {"ANONYMIZED"}  # every other text became a dummy
    assert out.SeriesDescription == AI_NOT_REVIEWED and AI_NOT_REVIEWED in src.SeriesDescription
    assert src.SeriesDescription != out.SeriesDescription  # "Measurements (radview) - ...": only the stamp is kept


def test_radview_seg_keeps_the_stamp(own):
    src, out = (pydicom.dcmread(p, stop_before_pixels=True) for p in own["SEG"])
    assert src.ContentDescription == AI_NOT_REVIEWED and out.ContentDescription == AI_NOT_REVIEWED
    assert src.SeriesDescription.startswith(AI_NOT_REVIEWED) and out.SeriesDescription == AI_NOT_REVIEWED


def test_the_same_text_in_another_makers_sr_is_not_kept(own, tmp_path):
    ds = pydicom.dcmread(own["SR"][0])
    ds.Manufacturer = "Other Vendor"
    (tmp_path / "src").mkdir()
    ds.save_as(tmp_path / "src" / "sr.dcm", enforce_file_format=True)
    report = deidentify_study(str(tmp_path / "src"), str(tmp_path / "out"))
    out = pydicom.dcmread(report.written[0].path)
    assert not is_radview_object(out) and AI_NOT_REVIEWED not in _texts(out) and "SeriesDescription" not in out


def test_the_copies_pass_dciodvfy_as_well_as_the_originals(own, dciodvfy):
    from test_deid_dciodvfy import normalised

    for src, out in own.values():
        assert normalised(dciodvfy(out)) <= normalised(dciodvfy(src)), out
