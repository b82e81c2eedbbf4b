"""A classification model's answer as session state (viewer/core): held per series, replaced by a newer run of the
same model, dropped with the series, reviewed as a whole (like a label map); a 2D image as the volume an AI run
takes. Qt-free."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ai.api import ClassificationResult, InferenceResult, Provenance
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import ClassifiedSeries, classified_from_result, modality_mismatch, volume_from_image
from viewer.core.session import Session
from viewer.io.volume import Volume

GEOM = Geometry((4, 6, 8), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
SERIES, STUDY = "1.2.3.9", "1.2.3"


def _result(probs=(0.2, 0.7, 0.1), version="1.0") -> InferenceResult:
    prov = Provenance("phase", "CT phase", version, "learned network (safetensors)", "cpu", "float32", 0.1,
                      "2026-01-01T00:00:00Z")
    return InferenceResult(GEOM, prov, classification=ClassificationResult(("plain", "arterial", "venous"), probs,
                                                                          "softmax"))


def _session() -> Session:
    s = Session()
    s.load_volume(Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM,
                         meta={"modality": "CT", "series_uid": SERIES, "study_uid": STUDY}))
    return s


def test_a_classification_is_held_replaced_reviewed_and_dropped_with_its_series():
    session = _session()
    added, removed = [], []
    session.classification_added.connect(added.append)
    session.classification_removed.connect(removed.append)
    first = classified_from_result(_result(), session.volume.meta)
    assert classified_from_result(InferenceResult(GEOM, _result().provenance), {}) is None  # no classification
    session.add_classification(first)
    assert session.classifications == [first] and added == [first] and first.series_uid == SERIES
    (result,) = review.ai_results(session)
    assert result.classification.flagged() == ("arterial",) and result.layers == [] and result.key == \
        review.result_key("phase", SERIES)
    assert review.result_status(session.annotations.review, result).header == review.NOT_REVIEWED
    review.decide_result(session.annotations, result, review.ACCEPTED, user="bob", time="2026-01-01T10:00:00+00:00")
    status = review.result_status(session.annotations.review, review.ai_results(session)[0])
    assert status.state == "reviewed" and status.header.startswith("reviewed by bob")
    assert session.annotations.review[result.key]["kind"] == "result"
    assert "revision" not in session.annotations.review[result.key]  # no label map
    session.annotations.undo()
    assert review.result_status(session.annotations.review, review.ai_results(session)[0]).state == "not reviewed"

    newer = classified_from_result(_result((0.1, 0.1, 0.8)), session.volume.meta)
    session.add_classification(newer)  # a newer run of the same model replaces the older answer
    assert session.classifications == [newer] and removed == [first]
    session.load_volume(session.volume)  # (re)loading a series drops its classifications
    assert session.classifications == [] and removed == [first, newer]
    session.clear()
    with pytest.raises(RuntimeError, match="open a series"):
        session.add_classification(newer)


def test_a_2d_image_is_the_one_slice_volume_an_ai_run_takes(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ai"))
    from classifier_folders import write_generated_radiograph

    from viewer.io.dicom_index import scan
    from viewer.io.planar import load_planar

    write_generated_radiograph(tmp_path / "dx.dcm", rows=40, cols=30)
    (entry,) = [e for e in scan(str(tmp_path)).series if e.planar]
    series = load_planar(entry)
    volume = volume_from_image(series, 0)
    assert volume.array.shape == (1, 40, 30) and np.array_equal(volume.array[0], series.images[0].frames[0])
    assert volume.modality == "DX" and volume.meta["planar"] and volume.meta["series_uid"] == entry.series_uid
    assert volume.meta["sop_instance_uid"] == series.images[0].display.sop_instance_uid
    classifier = type("M", (), {"task": "classification", "modality": "DX"})()
    segmenter = type("M", (), {"task": "segmentation", "modality": "DX"})()
    assert modality_mismatch(classifier, volume) == ""
    assert modality_mismatch(segmenter, volume) == "a 2D image takes classification models only"

    session = Session()
    session.load_images(series)
    c = ClassifiedSeries(_result().provenance, _result().classification, entry.series_uid,
                         series.images[0].display.sop_instance_uid)
    session.add_classification(c)
    assert review.ai_results(session)[0].series_uid == entry.series_uid
    session.load_images(series)  # another 2D series (here: the same, again): the answer goes
    assert session.classifications == []


def test_a_radiograph_tells_the_model_how_it_is_shown(tmp_path):
    """The request for a 2D image carries its display: the file's VOI window in stored values, and MONOCHROME1's
    inversion (undone by Presentation LUT Shape INVERSE); nothing the file does not say."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ai"))
    import pydicom
    from classifier_folders import write_generated_radiograph

    from viewer.core.ai_bridge import request_from_volume
    from viewer.io.dicom_index import scan
    from viewer.io.planar import load_planar

    def request_for(path):
        (entry,) = [e for e in scan(str(path.parent)).series if e.planar]
        return request_from_volume(volume_from_image(load_planar(entry), 0), "any-classifier")

    (tmp_path / "a").mkdir()
    plain = write_generated_radiograph(tmp_path / "a" / "dx.dcm", rows=40, cols=30)
    assert request_for(plain).options["display"] == {"invert": False, "window": [2000.0, 3000.0]}

    (tmp_path / "b").mkdir()
    path = write_generated_radiograph(tmp_path / "b" / "dx.dcm", rows=40, cols=30)
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 2, -100, "US"
    ds.save_as(path)
    assert request_for(path).options["display"] == {"invert": True, "window": [1050.0, 1500.0]}

    ds.PresentationLUTShape = "INVERSE"  # MONOCHROME1 shown inverted again: as stored
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(path)
    assert request_for(path).options["display"] == {"invert": False}  # no window in the file: none made up
    explicit = request_from_volume(volume_from_image(load_planar(next(
        e for e in scan(str(path.parent)).series if e.planar)), 0), "m", options={"display": {"invert": True}})
    assert explicit.options["display"] == {"invert": True}  # the caller's own display wins
