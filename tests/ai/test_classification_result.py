"""The typed classification result (``ai.api.ClassificationResult``) end to end, without Qt: a tiny safetensors
classifier run through the real ``classifier`` runner in the engine child process on a radiograph (the real
``RG1_J2KI.dcm`` of ../shared/data, else a generated DX image), then findings.json, the DICOM SR read back with
pydicom, the batch job's outputs and the report's table; and results written before the typed field existed."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pydicom
import pytest
from classifier_folders import CLASSES, RADIOGRAPH, radiograph_folder, write_radiograph_classifier

from ai.api import NOT_A_DIAGNOSIS, ClassificationResult, InferenceRequest
from viewer.export import AI_NOT_REVIEWED

PROBABILITY = ("122157", "DCM")


# --- the type --------------------------------------------------------------------------------------------------
def test_classification_result_checks_ranks_flags_and_round_trips():
    c = ClassificationResult(("a", "b", "c"), (0.2, 0.9, 0.55), "sigmoid", thresholds=(0.5, 0.95, 0.5),
                             preprocessing="resized", input_size=[32, 32], image="image 3 × 4")
    assert c.ranked() == (("b", 0.9), ("c", 0.55), ("a", 0.2))
    assert c.flagged() == ("c",)  # b is below its own threshold 0.95
    assert c.threshold("b") == 0.95 and c.probability("c") == 0.55 and c.multi_label
    assert ClassificationResult.from_dict(json.loads(json.dumps(c.as_dict()))) == c
    assert pickle.loads(pickle.dumps(c)) == c
    s = ClassificationResult(("x", "y"), (0.3, 0.7), "softmax", thresholds=(0.5,))
    assert s.thresholds == () and s.flagged() == ("y",) and s.threshold("x") is None
    assert ClassificationResult(("x", "y"), (0.1, 0.2), "sigmoid", thresholds=(0.15,)).thresholds == (0.15, 0.15)
    for bad in [dict(classes=("a",), probabilities=(0.1, 0.2)), dict(classes=("a", "a"), probabilities=(0.1, 0.2)),
                dict(classes=("a",), probabilities=(1.5,)), dict(classes=("a",), probabilities=(float("nan"),)),
                dict(classes=("a",), probabilities=(0.5,), activation="relu"),
                dict(classes=("a", "b"), probabilities=(0.5, 0.5), thresholds=(0.1, 0.2, 0.3))]:
        with pytest.raises(ValueError):
            ClassificationResult(**{"activation": "sigmoid", **bad})
    with pytest.raises(ValueError, match="probabilities"):
        ClassificationResult.from_dict({"classes": ["a"], "activation": "sigmoid"})


def test_findings_written_before_the_typed_field_are_read_from_the_old_place():
    old = {"provenance": {"model_id": "m", "parameters": {
        "classification": {"classes": ["bright", "dark"], "probabilities": [0.98, 0.02], "activation": "softmax",
                           "note": NOT_A_DIAGNOSIS},
        "input_size": [4, 8, 8], "normalization": "clip to [-1000, 1000], then (x - 0) / 1000"}}}
    c = ClassificationResult.from_findings(old)
    assert c.classes == ("bright", "dark") and c.probabilities == (0.98, 0.02) and c.flagged() == ("bright",)
    assert c.input_size == (4, 8, 8) and "clip to [-1000, 1000]" in c.preprocessing
    new = dict(old, classification=ClassificationResult(("z",), (0.4,), "sigmoid").as_dict())
    assert ClassificationResult.from_findings(new).classes == ("z",)  # the typed field wins
    assert ClassificationResult.from_findings({"provenance": {"parameters": {}}}) is None


# --- a real run -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def radiograph(tmp_path_factory):
    """(folder, volume as radview-cli ai run loads it, is it the real RG1_J2KI.dcm)."""
    from viewer.io.series_loader import load_path

    folder, real = radiograph_folder(tmp_path_factory.mktemp("xr"))
    return folder, load_path(str(folder), None, progress=None), real


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, radiograph):
    _, volume, _ = radiograph
    return write_radiograph_classifier(tmp_path_factory.mktemp("models") / "tiny-xr", modality=volume.modality)


@pytest.fixture(scope="module")
def run(radiograph, model_folder):
    """The result through the engine child process (the GUI's path) and in this process (the batch's path)."""
    from ai.engine import Engine
    from ai.engine_process import EngineClient
    from ai.registry import Registry

    _, volume, _ = radiograph
    request = InferenceRequest(array=volume.array, grid=volume.geometry, model_id="tiny-xr", device="cpu",
                               modality=volume.modality, series_uid=volume.meta["series_uid"],
                               options={"model_folder": str(model_folder)})
    client = EngineClient()
    try:
        client.start()
        crossed = client.run(request)
    finally:
        client.close(timeout=3)
    registry = Registry(extra_dirs=[], builtin=False)
    registry.add_model_folder(str(model_folder))
    return crossed, Engine(registry).run(request)


def test_the_typed_result_crosses_the_engine_process(run, radiograph):
    crossed, local = run
    _, volume, real = radiograph
    c = crossed.classification
    assert isinstance(c, ClassificationResult) and c == local.classification  # pickled across, unchanged
    assert c.classes == CLASSES and c.activation == "sigmoid" and c.thresholds == (0.5,) * len(CLASSES)
    assert len(set(c.probabilities)) == len(CLASSES) and all(0 < p < 1 for p in c.probabilities)
    assert c.input_size == (32, 32) and "resized as a whole to 32 × 32 (bilinear" in c.preprocessing
    assert "clip to [0, 30000], then scale to [0, 1]" in c.preprocessing
    rows, cols = volume.array.shape[1:]
    assert c.image == f"image {cols} × {rows}" and c.note == NOT_A_DIAGNOSIS
    assert crossed.labels is None and not crossed.detections
    assert "classification" not in crossed.provenance.parameters  # no longer the stopgap place
    assert crossed.provenance.parameters["input_size"] == [32, 32]
    # the probabilities are the network's, recomputed here: the image resized to 32 x 32 (bilinear), scaled from
    # [0, 30000] to [0, 1], max-pooled by 2, averaged (m); class k scores w_k * m + b_k
    import torch

    x = torch.from_numpy(volume.array[0].astype(np.float32))[None, None]
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = x.clamp(0, 30000) / 30000
    m = float(torch.nn.functional.max_pool2d(x, 2, ceil_mode=True).mean())
    w, b = np.linspace(12.0, -12.0, len(CLASSES)), np.linspace(-2.0, 1.5, len(CLASSES))
    assert np.allclose(c.probabilities, 1 / (1 + np.exp(-(w * m + b))), atol=1e-4), (m, c.probabilities)
    if not real:
        pytest.skip(f"ran on a generated DX radiograph: {RADIOGRAPH} is not here (../shared/data absent)")


def _content(items, out=None, group=""):
    """(group identifier, value type, concept (code, scheme, meaning), value) of every content item, depth first."""
    out = [] if out is None else out
    for item in items:
        ident = group
        if item.ValueType == "CONTAINER" and "ContentSequence" in item:
            ident = next((str(c.TextValue) for c in item.ContentSequence if c.ValueType == "TEXT"
                          and c.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier"), group)
        name = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
        concept = (str(name.CodeValue), str(name.CodingSchemeDesignator), str(name.CodeMeaning)) if name else None
        if item.ValueType == "NUM":
            value = float(item.MeasuredValueSequence[0].NumericValue)
        elif item.ValueType == "CODE":
            code = item.ConceptCodeSequence[0]
            value = (str(code.CodeValue), str(code.CodingSchemeDesignator), str(code.CodeMeaning))
        elif item.ValueType == "TEXT":
            value = str(item.TextValue)
        else:
            value = None
        out.append((ident, item.ValueType, concept, value))
        if "ContentSequence" in item:
            _content(item.ContentSequence, out, ident)
    return out


def dciodvfy_errors(path) -> list[str]:
    """dciodvfy's "Error" lines for a file (none where dicom3tools is not installed: scripts/setup.sh installs it)."""
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    if exe is None:
        return []
    done = subprocess.run([exe, str(path)], capture_output=True, timeout=120)
    text = (done.stdout + done.stderr).decode("latin-1")
    return [ln for ln in text.splitlines() if ln.startswith("Error")]


def check_sr(path, c: ClassificationResult, model_name: str, note: str = AI_NOT_REVIEWED) -> list:
    """Each class is a group with its finding type (99RADVIEW, the class name) and its Probability; returns the
    groups' identifiers in document order."""
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.VerificationFlag == "UNVERIFIED"
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99RADVIEW"
    assert dciodvfy_errors(path) == []
    items = _content(ds.ContentSequence)
    groups = []
    for name, p in c.ranked():
        ident = f"AI class {name}"[:64]
        mine = [i for i in items if i[0] == ident]
        assert mine, f"no group for {name}"
        groups.append(ident)
        finding = [v for g, t, k, v in mine if t == "CODE" and k and k[2] == "Finding"]
        assert finding and finding[0][1] == "99RADVIEW" and finding[0][2] == name
        probability = [v for g, t, k, v in mine if t == "NUM" and k[:2] == PROBABILITY]
        assert len(probability) == 1 and probability[0] == pytest.approx(p, abs=1e-6)
        texts = [v for g, t, k, v in mine if t == "TEXT"]
        assert any(v.startswith(note) and f"probability of {name} {p:.3f}" in v and NOT_A_DIAGNOSIS in v
                   for v in texts), texts
        assert not c.preprocessing or any(f"input: {c.preprocessing.replace('×', 'x')}" in v for v in texts)
        algorithm = [v for g, t, k, v in mine if t == "TEXT" and k and k[2] == "Algorithm Name"]
        assert algorithm and set(algorithm) == {model_name}  # the group's and the measurement's
    flagged = set(c.flagged())
    for name in c.classes:
        says = [v for g, t, k, v in items if g == f"AI class {name}"[:64] and t == "TEXT" and "probability of" in v]
        answered = "most probable class" in says[0] if not c.multi_label else \
            "flagged" in says[0] and "not flagged" not in says[0]
        assert answered == (name in flagged), says
    return groups


def test_findings_json_sr_and_report_of_a_classification(run, radiograph, tmp_path):
    from viewer.export.json_file import write_json
    from viewer.export.seg import SourceSeries
    from viewer.export.sr import findings_document, write_sr
    from viewer.logic.batch_outputs import findings_document as job_findings
    from viewer.logic.report_content import ai_result_from_findings, report_tables

    folder, volume, _ = radiograph
    result, _ = run
    c = result.classification
    findings = job_findings(volume, result, str(folder), NOT_A_DIAGNOSIS)
    write_json(str(tmp_path / "findings.json"), findings)
    stored = json.loads((tmp_path / "findings.json").read_text())
    assert stored["classification"]["classes"] == list(CLASSES)
    assert ClassificationResult.from_findings(stored) == c
    assert stored["detections"] == [] and stored["note"] == NOT_A_DIAGNOSIS

    source = SourceSeries.open(str(folder))
    info = write_sr(str(tmp_path / "sr.dcm"), source, findings=stored)
    assert info.n_classes == len(CLASSES) and info.n_detections == 0
    groups = check_sr(info.path, c, "Tiny chest XR classifier")
    assert groups == [f"AI class {n}"[:64] for n, _ in c.ranked()]  # most probable first
    ds = pydicom.dcmread(info.path)
    assert "AI classification" in ds.SeriesDescription and AI_NOT_REVIEWED in ds.SeriesDescription
    assert ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.first.SOPInstanceUID
    long_name = CLASSES[-1]
    code = next(v for g, t, k, v in _content(ds.ContentSequence) if t == "CODE" and v[2] == long_name)
    assert code[0].startswith("RV") and len(code[0]) == 16  # too long for a code value: a stable hash

    # an InferenceResult directly, and an accepted result: the note says who accepted it
    from viewer.core.review import result_key

    decision = {result_key("tiny-xr", source.series_uid): {
        "state": "accepted", "user": "alice", "time": "2026-01-02T10:00:00+00:00", "kind": "result",
        "model_id": "tiny-xr", "model_version": "0.3"}}
    info2 = write_sr(str(tmp_path / "sr2.dcm"), source, findings=result, review=decision)
    check_sr(info2.path, c, "Tiny chest XR classifier", note="AI result, accepted by alice")

    doc = findings_document(stored, review=decision, source=source)
    assert doc["classification"]["flagged"] == list(c.flagged()) and doc["ai_note"] == ""
    assert doc["classification"]["review_note"].startswith("AI result, accepted by alice")

    record = ai_result_from_findings(stored)
    tables = report_tables([record], [], [], None)
    table = next(t for t in tables if t.title == "AI classification")
    assert [r[0] for r in table.rows] == [n for n, _ in c.ranked()]
    assert [r[1] for r in table.rows] == [f"{p:.3f}" for _, p in c.ranked()]
    assert all(r[4] == AI_NOT_REVIEWED for r in table.rows)
    assert any(NOT_A_DIAGNOSIS.rstrip(".") in n or "Not a diagnosis" in n for n in table.notes)


def test_a_legacy_findings_json_still_makes_its_sr_and_report(radiograph, tmp_path):
    from viewer.export.seg import SourceSeries
    from viewer.export.sr import write_sr
    from viewer.logic.report_content import ai_result_from_findings, report_tables

    folder, _, _ = radiograph
    old = {"provenance": {"model_id": "old", "model_name": "Old classifier", "model_version": "1",
                          "parameters": {"classification": {"classes": ["bright", "dark"],
                                                            "probabilities": [0.98, 0.02], "activation": "softmax"},
                                         "input_size": [8, 8]}},
           "detections": [], "structures": [], "note": NOT_A_DIAGNOSIS}
    c = ClassificationResult.from_findings(old)
    info = write_sr(str(tmp_path / "old.dcm"), SourceSeries.open(str(folder)), findings=old)
    comments = [v for g, t, k, v in _content(pydicom.dcmread(info.path).ContentSequence) if t == "TEXT"]
    assert any("single-label (softmax): the most probable class" in v for v in comments)
    check_sr(info.path, c, "Old classifier")
    table = report_tables([ai_result_from_findings(old)], [], [], None)[0]
    assert table.title == "AI classification" and table.rows[0][:3] == ("bright", "0.980", "most probable")


def test_a_batch_job_writes_findings_sr_and_thumbnail_of_a_classification(run, radiograph, tmp_path):
    from viewer.export.seg import SourceSeries
    from viewer.logic.batch_outputs import findings_document, write_job_outputs

    folder, volume, _ = radiograph
    result, _ = run
    out = tmp_path / "job"
    out.mkdir()
    findings = findings_document(volume, result, str(folder), NOT_A_DIAGNOSIS)
    notes = write_job_outputs(str(out), None, volume, result, findings, "tiny-xr",
                              source=SourceSeries.open(str(folder)))
    assert sorted(p.name for p in out.iterdir()) == ["findings.json", "sr.dcm", "thumbnail.png"], notes
    check_sr(str(out / "sr.dcm"), result.classification, "Tiny chest XR classifier")


def test_manifest_thresholds_and_the_engine_check(tmp_path):
    from types import SimpleNamespace

    from ai.api import ModelError
    from ai.engine import Engine
    from ai.registry import ManifestError, load_model_folder
    from ai.runners.base import RunOutput

    listed = "threshold = [0.1, 0.2, 0.3, 0.4, 0.5]"
    m = load_model_folder(write_radiograph_classifier(tmp_path / "a", threshold=listed))
    assert m.classification.thresholds == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert load_model_folder(write_radiograph_classifier(tmp_path / "b", threshold="")).classification.thresholds \
        == (0.5,) * len(CLASSES)
    for i, (threshold, activation) in enumerate([("threshold = [0.1, 0.2]", "sigmoid"), ("threshold = 1.5", "sigmoid"),
                                                 ("threshold = 0.5", "softmax")]):
        folder = write_radiograph_classifier(tmp_path / f"bad{i}", activation="sigmoid", threshold=threshold)
        if activation == "softmax":
            text = (folder / "model.toml").read_text().replace('"sigmoid"', '"softmax"')
            (folder / "model.toml").write_text(text)
        with pytest.raises(ManifestError, match="classification.threshold"):
            load_model_folder(folder)

    c = ClassificationResult(CLASSES, (0.5,) * len(CLASSES), "sigmoid")
    assert Engine._checked_classification(m, RunOutput(classification=c)) is c
    with pytest.raises(ModelError, match="no class probabilities"):
        Engine._checked_classification(m, RunOutput())
    other = ClassificationResult(("x",), (0.5,), "sigmoid")
    with pytest.raises(ModelError, match="its manifest lists"):
        Engine._checked_classification(m, RunOutput(classification=other))
    segmentation = SimpleNamespace(outputs=("labels",), classification=None, name="seg")
    assert Engine._checked_classification(segmentation, RunOutput(classification=c)) is None  # a stray one: dropped
