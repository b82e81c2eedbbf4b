"""A classification model's answer exported: what File → Export gathers from the session
(``viewer.logic.exports``) and ``radview-cli export sr`` on a 2D series, read back with pydicom — the class
probabilities, the classified image and the review state are in the SR and the JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from ai.api import ClassificationResult, Provenance
from viewer.core import review
from viewer.core.ai_bridge import ClassifiedSeries
from viewer.core.session import Session
from viewer.export.sr import write_findings_json, write_sr
from viewer.logic import exports

ROOT = Path(__file__).resolve().parents[2]
AI_TESTS = ROOT / "tests" / "ai"
if str(AI_TESTS) not in sys.path:
    sys.path.insert(0, str(AI_TESTS))

from classifier_folders import RADIOGRAPH, write_generated_radiograph  # noqa: E402

PROV = Provenance("tiny-xr", "Tiny chest XR classifier", "0.3", "learned network (safetensors)", "cpu", "float32",
                  0.05, "2026-01-01T00:00:00+00:00", {"input_size": [32, 32]})
CLASSES = ("effusion", "nodule", "pneumothorax", "a class name longer than sixteen characters")
PROBS = (0.912345, 0.4, 0.05, 0.7)


def _classification() -> ClassificationResult:
    return ClassificationResult(CLASSES, PROBS, "sigmoid", (0.5,), "resized as a whole to 32 × 32",
                                (32, 32), "image 256 × 300")


def _radiograph_session(tmp_path) -> Session:
    from viewer.io.dicom_index import scan
    from viewer.io.planar import load_planar

    folder = tmp_path / "dx"
    folder.mkdir()
    write_generated_radiograph(folder / "dx.dcm")
    (entry,) = [e for e in scan(str(folder)).series if e.planar]
    session = Session()
    session.load_images(load_planar(entry))
    return session


def sr_classes(ds) -> dict[str, float]:
    """``{class meaning: probability}`` of every measurement group of an SR that holds a Probability."""
    out = {}

    def walk(items):
        for item in items:
            children = item.get("ContentSequence", [])
            finding = next((c.ConceptCodeSequence[0] for c in children
                            if c.get("ValueType") == "CODE" and c.ConceptNameCodeSequence[0].CodeMeaning == "Finding"),
                           None)
            prob = next((c for c in children if c.get("ValueType") == "NUM"
                         and c.ConceptNameCodeSequence[0].CodeMeaning == "Probability"), None)
            if finding is not None and prob is not None:
                assert finding.CodingSchemeDesignator == "99RADVIEW"
                out[str(finding.CodeMeaning)] = float(prob.MeasuredValueSequence[0].NumericValue)
            walk(children)

    walk(ds.ContentSequence)
    return out


def comments(ds) -> list[str]:
    found = []

    def walk(items):
        for item in items:
            if item.get("ValueType") == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == "Comment":
                found.append(str(item.TextValue))
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


def referenced_images(ds) -> set[str]:
    found = set()

    def walk(items):
        for item in items:
            for ref in item.get("ReferencedSOPSequence", []):
                found.add(str(ref.ReferencedSOPInstanceUID))
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


# --------------------------------------------------------------------------------------------- the GUI's gathering
def test_a_session_classification_is_gathered_and_written_to_the_sr(tmp_path):
    session = _radiograph_session(tmp_path)
    image = session.images.images[0]
    series_uid, sop = session.images.meta["series_uid"], image.display.sop_instance_uid
    session.add_classification(ClassifiedSeries(PROV, _classification(), series_uid, sop))

    result = exports.default_result(session, None)  # the only AI result is the classification
    assert result is not None and exports.reportable(result)
    doc = exports.findings_doc(session, result)
    assert exports.has_findings(doc)
    assert doc["classification"]["classes"] == list(CLASSES)
    assert doc["classification"]["probabilities"] == list(PROBS)
    assert doc["input"] == {"series_uid": series_uid, "sop_instance_uid": sop}
    assert doc["provenance"]["model_id"] == "tiny-xr"

    review.decide_result(session.annotations, result, review.ACCEPTED, user="alice", time="2026-02-01T10:00:00+00:00")
    source = exports.classified_image_source(session.images, sop)
    assert source.series_uid == series_uid and len(source.slices) == 1
    info = write_sr(str(tmp_path / "sr.dcm"), source, findings=doc,
                    review=exports.measurement_doc(session.annotations)["review"])
    assert info.n_classes == len(CLASSES)

    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    assert sr_classes(ds) == pytest.approx(dict(zip(CLASSES, PROBS)))
    assert sop in referenced_images(ds)  # the classified image is the groups' source image
    assert str(ds.StudyInstanceUID) == str(image.header.StudyInstanceUID)
    notes = comments(ds)
    assert any("accepted by alice" in n and "probability of effusion 0.912" in n for n in notes)
    assert not any("not reviewed" in n for n in notes)

    out = write_findings_json(str(tmp_path / "findings.json"), doc, exports.measurement_doc(session.annotations))
    written = json.loads(Path(out).read_text())
    assert written["classification"]["probabilities"] == list(PROBS)
    assert written["classification"]["review"]["user"] == "alice"
    assert written["classification"]["flagged"] == ["effusion", "a class name longer than sixteen characters"]


def test_a_volume_classification_is_gathered_like_a_result_with_findings():
    import numpy as np

    from radview_base.geometry import Geometry
    from viewer.io.volume import Volume

    g = Geometry((3, 4, 5), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    session = Session()
    session.load_volume(Volume(np.zeros(g.shape_zyx, np.int16), g, {"series_uid": "1.2.3.4", "study_uid": "1.2.3"}))
    assert exports.default_result(session, None) is None
    session.add_classification(ClassifiedSeries(PROV, ClassificationResult(("a", "b"), (0.3, 0.7), "softmax"),
                                                "1.2.3.4"))
    doc = exports.findings_doc(session, exports.default_result(session, None))
    assert doc["input"] == {"series_uid": "1.2.3.4"} and doc["classification"]["activation"] == "softmax"
    assert doc["detections"] == [] and doc["structures"] == []


# --------------------------------------------------------------------------------------------------- the CLI
def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def _findings(path: Path, series_uid: str, sop: str = "") -> Path:
    doc = {"provenance": PROV.as_dict(), "input": {"series_uid": series_uid, **({"sop_instance_uid": sop} if sop
                                                                                 else {})},
           "detections": [], "structures": [], "messages": [], "classification": _classification().as_dict()}
    path.write_text(json.dumps(doc))
    return path


def test_export_sr_of_a_radiograph_classification(tmp_path):
    folder = tmp_path / "dx"
    folder.mkdir()
    image = pydicom.dcmread(write_generated_radiograph(folder / "dx.dcm"), stop_before_pixels=True)
    findings = _findings(tmp_path / "findings.json", str(image.SeriesInstanceUID))
    review_doc = {"measurements": [], "review": {review.result_key("tiny-xr", str(image.SeriesInstanceUID)): {
        "state": "rejected", "user": "bob", "time": "2026-02-02T09:00:00+00:00", "kind": "result",
        "model_id": "tiny-xr", "model_version": "0.3"}}}
    (tmp_path / "m.json").write_text(json.dumps(review_doc))

    done = cli("export", "sr", folder, "--findings", findings, "--measurements", tmp_path / "m.json",
               "--out", tmp_path / "sr.dcm")
    assert done.returncode == 0, done.stderr
    assert "classification of 4 class(es)" in done.stdout
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    assert sr_classes(ds) == pytest.approx(dict(zip(CLASSES, PROBS)))
    assert str(image.SOPInstanceUID) in referenced_images(ds)
    assert any("rejected by bob" in n for n in comments(ds))

    done = cli("export", "sr", folder, "--findings", findings, "--out", tmp_path / "sr.json")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "sr.json").read_text())["classification"]["probabilities"] == list(PROBS)

    # refused in one line: another series' findings; a classified image that is not in the series
    other = _findings(tmp_path / "other.json", "1.2.3.999")
    done = cli("export", "sr", folder, "--findings", other, "--out", tmp_path / "x.dcm")
    assert done.returncode == 2 and "1.2.3.999" in done.stderr and "Traceback" not in done.stderr
    wrong = _findings(tmp_path / "wrong.json", str(image.SeriesInstanceUID), "1.2.3.4.5")
    done = cli("export", "sr", folder, "--findings", wrong, "--out", tmp_path / "x.dcm")
    assert done.returncode == 2 and "1.2.3.4.5" in done.stderr and "Traceback" not in done.stderr
    # a radiograph's SR holds the classification or the measurements on its images: both at once is refused
    drawn = dict(review_doc, measurements=[{"id": "m1", "kind": "length", "points_image": [[10, 10], [60, 10]],
                                            "image": {"sop_instance_uid": str(image.SOPInstanceUID), "frame": 0}}])
    (tmp_path / "drawn.json").write_text(json.dumps(drawn))
    done = cli("export", "sr", folder, "--findings", findings, "--measurements", tmp_path / "drawn.json",
               "--out", tmp_path / "x.dcm")
    assert done.returncode == 2 and "one at a time" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.dcm").exists()
    done = cli("export", "sr", folder, "--measurements", tmp_path / "drawn.json", "--out", tmp_path / "m.dcm")
    assert done.returncode == 0 and "1 measurement(s) on 2D images" in done.stdout, done.stderr


def test_export_sr_of_a_classification_of_the_real_radiograph(tmp_path):
    if not RADIOGRAPH.is_file():
        pytest.skip(f"{RADIOGRAPH} is not here (../shared/data absent)")
    import shutil

    folder = tmp_path / "rg"
    folder.mkdir()
    shutil.copy(RADIOGRAPH, folder / RADIOGRAPH.name)
    image = pydicom.dcmread(folder / RADIOGRAPH.name, stop_before_pixels=True)
    findings = _findings(tmp_path / "findings.json", str(image.SeriesInstanceUID), str(image.SOPInstanceUID))
    done = cli("export", "sr", folder, "--findings", findings, "--out", tmp_path / "sr.dcm")
    assert done.returncode == 0, done.stderr
    ds = pydicom.dcmread(tmp_path / "sr.dcm")
    assert sr_classes(ds) == pytest.approx(dict(zip(CLASSES, PROBS)))
    assert str(image.SOPInstanceUID) in referenced_images(ds)
    assert str(ds.PatientID) == str(image.PatientID)
    assert any("AI result, not reviewed" in n for n in comments(ds))
