"""DICOM SR (TID 1500) and JSON export of a real AI run's findings and user measurements on the demo CT:
highdicom parses the SR, its content tree holds every measurement with its value and unit, planar
measurements reference the nearest source image, AI results carry provenance and review notes; dciodvfy."""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict

import highdicom as hd
import numpy as np
import pydicom
import pytest

from viewer.core.review import detection_key, result_key
from viewer.export import AI_NOT_REVIEWED
from viewer.export.seg import write_seg
from viewer.export.sr import SrError, findings_document, write_findings_json, write_sr
from viewer.io.image_io import read_label_map

HU = "[hnsf'U]"


# ------------------------------------------------------------------------------------------------- inputs
def _ellipse_stats(volume, k, centre_ji, a_mm, b_mm):
    """Mean/SD/min/max of the slice-k voxels inside an axis-aligned ellipse (semi-axes along x and y)."""
    g = volume.geometry
    jj, ii = np.mgrid[0:g.shape_zyx[1], 0:g.shape_zyx[2]]
    dy = (jj - centre_ji[0]) * g.spacing_zyx[1]
    dx = (ii - centre_ji[1]) * g.spacing_zyx[2]
    inside = (dx / a_mm) ** 2 + (dy / b_mm) ** 2 <= 1
    values = volume.array[k][inside].astype(float)
    return {"mean": float(values.mean()), "sd": float(values.std()), "min": float(values.min()),
            "max": float(values.max()), "area_mm2": math.pi * a_mm * b_mm}


def _decision(findings, state, user, kind="detection", **extra):
    prov = findings["provenance"]
    return dict({"state": state, "user": user, "time": "2024-03-15T11:05:00+00:00", "kind": kind,
                 "model_id": prov["model_id"], "model_version": prov["model_version"]}, **extra)


@pytest.fixture(scope="module")
def user_measurements(demo_volume, demo_source, findings):
    """Measurements in the annotation JSON contract, on real voxels of the demo CT (slices 80, 95, 60), and the
    review table with the first detection accepted (key and entry as viewer.core.review writes them)."""
    g = demo_volume.geometry
    w = g.index_to_world
    c = w((80, 256, 256))
    length_end = w((80, 300, 230))
    box = [w((95, 200, 200)), w((95, 200, 240)), w((95, 230, 240)), w((95, 230, 200))]
    box_stats_values = demo_volume.array[95, 200:231, 200:241].astype(float)
    uid = demo_source.series_uid
    return {"study_uid": demo_source.study_uid, "measurements": [
        {"id": "m-length", "kind": "length", "points_lps": [list(c), list(length_end)], "series_uid": uid,
         "label": "mediastinum width", "value": float(np.linalg.norm(length_end - c)), "unit": "mm",
         "created_by": "alice", "created_at": "2024-03-15T11:00:00+00:00"},
        {"id": "m-angle", "kind": "angle", "points_lps": [list(c + [20, 0, 0]), list(c), list(c + [10, 10, 0])],
         "series_uid": uid, "label": "", "value": 45.0, "unit": "deg", "created_by": "alice",
         "created_at": "2024-03-15T11:01:00+00:00"},
        {"id": "m-ellipse", "kind": "ellipse",
         "points_lps": [list(w((60, 250, 250)) - [12, 0, 0]), list(w((60, 250, 250)) + [12, 0, 0]),
                        list(w((60, 250, 250)) - [0, 7, 0]), list(w((60, 250, 250)) + [0, 7, 0])],
         "series_uid": uid, "label": "liver ROI", "value": None, "unit": "",
         "stats": _ellipse_stats(demo_volume, 60, (250, 250), 12.0, 7.0),
         "created_by": "bob", "created_at": "2024-03-15T11:02:00+00:00"},
        {"id": "m-rect", "kind": "rectangle", "points_lps": [list(p) for p in box], "series_uid": "",
         "label": "box", "value": None, "unit": "",
         "stats": {"mean": float(box_stats_values.mean()), "sd": float(box_stats_values.std()),
                   "min": float(box_stats_values.min()), "max": float(box_stats_values.max()),
                   "area_mm2": float(np.linalg.norm(box[1] - box[0]) * np.linalg.norm(box[3] - box[0]))},
         "created_by": "alice", "created_at": "2024-03-15T11:03:00+00:00"},
        {"id": "m-arrow", "kind": "arrow", "points_lps": [list(c), list(c + [8, 8, 0])], "series_uid": uid,
         "label": "see here", "value": None, "unit": "", "created_by": "alice",
         "created_at": "2024-03-15T11:04:00+00:00"},
    ], "review": {detection_key(findings["provenance"]["model_id"], uid, findings["detections"][0]["center_lps_mm"]):
                  _decision(findings, "accepted", "alice", index=0)}}


@pytest.fixture(scope="module")
def findings(ai_run):
    return json.loads((ai_run / "findings.json").read_text())


@pytest.fixture(scope="module")
def ai_seg(ai_run, demo_source, findings, tmp_path_factory):
    labels = read_label_map(str(ai_run / "labels.nii.gz"))
    return write_seg(str(tmp_path_factory.mktemp("seg") / "ai_seg.dcm"), labels, demo_source,
                     provenance=findings["provenance"])


@pytest.fixture(scope="module")
def sr_file(tmp_path_factory, demo_source, findings, user_measurements, ai_seg):
    path = tmp_path_factory.mktemp("sr") / "report.dcm"
    info = write_sr(str(path), demo_source, findings=findings, measurements=user_measurements, seg=ai_seg)
    return path, info


# ------------------------------------------------------------------------------------ content-tree walk
def _code(item, attr="ConceptNameCodeSequence") -> str:
    return str(getattr(item, attr)[0].CodeMeaning)


def _walk(items, group=None, out=None):
    """Every NUM in the content tree as (tracking identifier of its group, name, derivation, value, unit)."""
    out = [] if out is None else out
    for item in items:
        if item.ValueType == "CONTAINER" and _code(item) == "Measurement Group":
            ident = next(str(c.TextValue) for c in item.ContentSequence
                         if c.ValueType == "TEXT" and _code(c) == "Tracking Identifier")
            _walk(item.ContentSequence, ident, out)
            continue
        if item.ValueType == "NUM":
            mv = item.MeasuredValueSequence[0]
            derivation = next((str(c.ConceptCodeSequence[0].CodeMeaning) for c in item.get("ContentSequence", [])
                               if c.ValueType == "CODE" and _code(c) == "Derivation"), None)
            out.append((group, _code(item), derivation, float(mv.NumericValue),
                        str(mv.MeasurementUnitsCodeSequence[0].CodeValue)))
        if "ContentSequence" in item:
            _walk(item.ContentSequence, group, out)
    return out


def _expected(findings, measurements):
    """What the SR must hold, from the inputs: {tracking identifier: sorted [(name, derivation, value, unit)]}."""
    exp = defaultdict(list)

    def add(group, name, value, unit, derivation=None):
        if value is not None and math.isfinite(float(value)):
            exp[group].append((name, derivation, float(value), unit))

    for i, d in enumerate(findings["detections"]):
        g = f"AI {d['label']} {i + 1}"
        add(g, "Diameter", d["diameter_mm"], "mm")
        add(g, "Volume", d["volume_ml"], "ml")
        add(g, "Attenuation Coefficient", d["mean_hu"], HU, "Mean")
        add(g, "Certainty of Finding", d["score"], "1")
    for s in findings["structures"]:
        g = f"AI {s['name']}" + (f" component {s['component']}" if s.get("component") else "")
        add(g, "Volume", s["volume_ml"], "ml")
        add(g, "Long axis", s["axial_diameter_mm"], "mm")
        add(g, "Diameter", s["diameter_3d_mm"], "mm", "Maximum")
        for key, derivation in (("mean_hu", "Mean"), ("sd_hu", "Standard Deviation"), ("min_hu", "Minimum"),
                                ("max_hu", "Maximum")):
            add(g, "Attenuation Coefficient", s[key], HU, derivation)
    for m in measurements["measurements"]:
        g = m["label"] or f"{m['kind']} {m['id']}"
        exp.setdefault(g, [])
        if m["kind"] == "length":
            add(g, "Length", m["value"], "mm")
        elif m["kind"] == "angle":
            add(g, "Angle", m["value"], "deg")
        if m.get("stats"):
            add(g, "Area", m["stats"]["area_mm2"], "mm2")
            for key, derivation in (("mean", "Mean"), ("sd", "Standard Deviation"), ("min", "Minimum"),
                                    ("max", "Maximum")):
                add(g, "Attenuation Coefficient", m["stats"][key], HU, derivation)
    return {k: sorted(v, key=lambda t: (t[0], t[1] or "", t[3])) for k, v in exp.items()}


# ---------------------------------------------------------------------------------------------- the tests
def test_the_sr_holds_every_measurement_with_its_value_and_unit(sr_file, findings, user_measurements):
    path, info = sr_file
    assert findings["detections"] and findings["structures"]  # the real AI run found something to report
    sr = hd.sr.srread(str(path))
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    got = defaultdict(list)
    for group, name, derivation, value, unit in _walk(sr.ContentSequence):
        if group is not None:  # (the Image Library's descriptors hold NUMs too: pixel spacing, slice thickness)
            got[group].append((name, derivation, value, unit))
    expected = _expected(findings, user_measurements)
    assert set(got) | {k for k, v in expected.items() if not v} == set(expected)
    for group, items in expected.items():
        ours = sorted(got.get(group, []), key=lambda t: (t[0], t[1] or "", t[3]))
        assert [(n, d, u) for n, d, _, u in ours] == [(n, d, u) for n, d, _, u in items], group
        for (_, _, a, _), (_, _, b, _) in zip(ours, items):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), group
    # highdicom's own view of the report: every group with its measurements
    report = sr.content
    planar = report.get_planar_roi_measurement_groups()
    volumetric = report.get_volumetric_roi_measurement_groups()
    plain = report.get_image_measurement_groups()
    assert len(planar) == len(user_measurements["measurements"]) == info.n_measurements
    assert len(volumetric) + len(plain) == len(findings["detections"]) + len(findings["structures"])
    n_num = sum(len(g.get_measurements()) for g in planar + volumetric + plain)
    assert n_num == sum(len(v) for v in expected.values())


def test_planar_measurements_are_scoord3d_on_the_nearest_source_image(sr_file, user_measurements, demo_paths,
                                                                      demo_source):
    path, _ = sr_file
    slices = []  # (z of the plane, SOP Instance UID), read from the CT files themselves
    for f in (demo_paths.dicom_dir / "ct_thin").iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        slices.append((float(ds.ImagePositionPatient[2]), str(ds.SOPInstanceUID), str(ds.SOPClassUID)))
    sr = hd.sr.srread(str(path))
    groups = {str(g.tracking_identifier): g for g in sr.content.get_planar_roi_measurement_groups()}
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    for m in user_measurements["measurements"]:
        group = groups[m["label"] or f"{m['kind']} {m['id']}"]
        pts = np.asarray(m["points_lps"])
        region = group.roi
        assert region.ReferencedFrameOfReferenceUID == demo_source.frame_of_reference_uid
        data = region.value
        kind = {"length": "POLYLINE", "angle": "POLYLINE", "arrow": "POLYLINE", "ellipse": "ELLIPSE",
                "rectangle": "POLYGON"}[m["kind"]]
        assert region.GraphicType == kind
        want = np.vstack([pts, pts[:1]]) if m["kind"] == "rectangle" else pts
        assert np.allclose(data, want, atol=1e-3)
        z, sop, sop_class = min(slices, key=lambda s: abs(s[0] - pts[:, 2].mean()))
        for meas in group.get_measurements():
            ref = meas.referenced_images[0]
            assert (ref.referenced_sop_instance_uid, ref.referenced_sop_class_uid) == (sop, sop_class)
        if group.get_measurements():
            assert sop in evidence
    assert groups["see here"].get_measurements() == []


def test_ai_groups_carry_provenance_and_the_review_note(sr_file, findings):
    path, info = sr_file
    prov = findings["provenance"]
    ds = pydicom.dcmread(path)
    assert ds.VerificationFlag == "UNVERIFIED" and ds.CompletionFlag == "COMPLETE"
    assert AI_NOT_REVIEWED in ds.SeriesDescription
    sr = hd.sr.srread(str(path))
    observers = {str(o.observer_type.meaning): o for o in sr.content.get_observer_contexts()}
    assert observers["Device"].observer_identifying_attributes.name == prov["model_name"]
    assert observers["Person"].observer_identifying_attributes.name == "alice^"  # the most frequent author
    comments = {}
    for item in ds.ContentSequence:
        if item.ValueType == "CONTAINER" and _code(item) == "Imaging Measurements":
            for group in item.ContentSequence:
                ident = next(str(c.TextValue) for c in group.ContentSequence if _code(c) == "Tracking Identifier")
                comments[ident] = [str(c.TextValue) for c in group.ContentSequence
                                   if c.ValueType == "TEXT" and _code(c) == "Comment"]
                if ident.startswith("AI "):
                    algo = next(c for c in group.ContentSequence if _code(c) == "Algorithm Name")
                    assert algo.TextValue == prov["model_name"]
                    version = next(c for c in group.ContentSequence if _code(c) == "Algorithm Version")
                    assert version.TextValue == prov["model_version"]
    first = f"AI {findings['detections'][0]['label']} 1"
    assert comments[first][0].startswith("AI result, accepted by alice (2024-03-15T11:05:00+00:00)")
    others = [k for k in comments if k.startswith("AI ") and k != first]
    assert others and all(comments[k][0].startswith(AI_NOT_REVIEWED) for k in others)
    assert comments["see here"] == ["see here"]
    assert info.notes.count(AI_NOT_REVIEWED) == len(others)


def test_detections_are_spheres_about_their_centres_and_structures_reference_the_seg(sr_file, findings, ai_seg):
    path, _ = sr_file
    sr = hd.sr.srread(str(path))
    volumetric = {str(g.tracking_identifier): g for g in sr.content.get_volumetric_roi_measurement_groups()}
    for i, d in enumerate(findings["detections"]):
        group = volumetric[f"AI {d['label']} {i + 1}"]
        surface = group.roi
        pts = np.asarray(surface[0].value)
        assert surface[0].GraphicType == "ELLIPSOID"
        assert np.allclose(pts.mean(axis=0), d["center_lps_mm"], atol=1e-3)
        assert np.allclose(np.linalg.norm(pts[1] - pts[0]), d["diameter_mm"], atol=1e-3)
        assert str(group.finding_type.meaning) == "Nodule"
        if d.get("location") == "lung_left":
            site = group.finding_sites[0]
            assert str(site.value.meaning) == "Lung"
    seg_ds = pydicom.dcmread(ai_seg.path, stop_before_pixels=True)
    segment_of = {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg_ds.SegmentSequence}
    for s in findings["structures"]:
        if s.get("component"):
            continue
        group = volumetric[f"AI {s['name']}"]
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == ai_seg.sop_instance_uid
        assert ref.referenced_segment_numbers == [segment_of[s["name"]]]


def test_the_sr_passes_dciodvfy(sr_file, dciodvfy):
    path, _ = sr_file
    assert dciodvfy(path) == []


def test_measurements_alone_make_a_report_of_a_person(tmp_path, demo_source, user_measurements, dciodvfy):
    info = write_sr(str(tmp_path / "user.dcm"), demo_source, measurements=user_measurements["measurements"])
    sr = hd.sr.srread(info.path)
    kinds = {str(o.observer_type.meaning) for o in sr.content.get_observer_contexts()}
    assert kinds == {"Person"} and info.notes == [] and info.n_measurements == 5
    assert AI_NOT_REVIEWED not in sr.SeriesDescription
    assert dciodvfy(info.path) == []


def test_findings_json_export(tmp_path, demo_source, findings, user_measurements):
    path = tmp_path / "out" / "findings.json"
    write_findings_json(str(path), findings, user_measurements, source=demo_source)
    text = path.read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["ai_note"] == AI_NOT_REVIEWED and doc["provenance"] == findings["provenance"]
    assert doc["source"]["series_uid"] == demo_source.series_uid
    assert doc["detections"][0]["note"].startswith("AI result, accepted by alice")
    assert doc["detections"][0]["review"]["state"] == "accepted"
    assert all(d["note"] == AI_NOT_REVIEWED for d in doc["detections"][1:])
    assert [m["id"] for m in doc["measurements"]] == [m["id"] for m in user_measurements["measurements"]]
    assert doc["measurements"][2]["stats"] == user_measurements["measurements"][2]["stats"]
    assert os.listdir(path.parent) == ["findings.json"]


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(kind="circle"), "unknown kind 'circle'"),
    (lambda m: m.update(points_lps=[[0, 0, 0]]), "a length has 2 finite points, got 1"),
    (lambda m: m.update(points_lps=[[0, 0, 0], [1, 2, float("nan")]]), "finite points"),
    (lambda m: m.update(series_uid="1.2.3.999"), "is on series 1.2.3.999, which is not among the exported series"),
])
def test_a_bad_measurement_is_refused_and_nothing_is_written(tmp_path, demo_source, user_measurements, change,
                                                            message):
    items = [dict(m) for m in user_measurements["measurements"]]
    change(items[0])
    with pytest.raises(SrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_sr(str(tmp_path / "bad.dcm"), demo_source, measurements={"measurements": items})
    assert os.listdir(tmp_path) == []


def test_nothing_to_export_is_refused(tmp_path, demo_source):
    with pytest.raises(SrError, match="nothing to export"):
        write_sr(str(tmp_path / "empty.dcm"), demo_source, findings={"detections": [], "structures": []})


def test_decisions_on_the_whole_result_and_of_other_model_versions(findings, demo_source):
    prov, uid = findings["provenance"], demo_source.series_uid
    first = detection_key(prov["model_id"], uid, findings["detections"][0]["center_lps_mm"])
    second = detection_key(prov["model_id"], uid, findings["detections"][1]["center_lps_mm"])
    review = {result_key(prov["model_id"], uid): _decision(findings, "rejected", "bob", kind="result", revision="0"),
              first: _decision(findings, "accepted", "alice"),
              second: dict(_decision(findings, "accepted", "carol"), model_version="0.9")}  # another version
    doc = findings_document(findings, review=review, source=demo_source)
    notes = [d["note"] for d in doc["detections"]]
    assert notes[0] == "AI result, accepted by alice (2024-03-15T11:05:00+00:00)"
    assert all(n == "AI result, rejected by bob (2024-03-15T11:05:00+00:00)" for n in notes[1:])
    assert all(s["note"].startswith("AI result, rejected by bob") for s in doc["structures"])
    # a decision on an edited revision of the labels is not one on the model's own structures
    review[result_key(prov["model_id"], uid)] = _decision(findings, "accepted", "bob", kind="result", revision="2")
    doc = findings_document(findings, review=review, source=demo_source)
    assert all(s["note"] == AI_NOT_REVIEWED for s in doc["structures"])
    assert doc["detections"][1]["note"] == AI_NOT_REVIEWED
