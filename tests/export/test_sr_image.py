"""Measurements on 2D images: JSON, SR (2D SCOORD on the image and frame) and the CLI (issue 14, item 4 and 6)."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from planar_cases import write_radiograph, write_ultrasound
from pydicom.uid import generate_uid

from viewer.cli.main import main
from viewer.core.annotations import Annotation, display_text, measured, new_image_annotation
from viewer.core.image_ref import ImageRef
from viewer.export.sr_image import write_image_sr
from viewer.io.dicom_index import scan
from viewer.io.planar import load_planar


@pytest.fixture
def study(tmp_path):
    series = generate_uid()
    write_radiograph(tmp_path / "s", "cr.dcm", series_uid=series, number=1, ImagerPixelSpacing=[0.2, 0.2],
                     PatientOrientation=["L", "F"])
    write_radiograph(tmp_path / "s", "raw.dcm", series_uid=series, number=2)
    (entry,) = scan(str(tmp_path / "s")).series
    return load_planar(entry)


def _measure(series, image: int, kind: str, points, frame: int = 1):
    ref = ImageRef.of(series.images[image].display, frame)
    return measured(new_image_annotation(kind, points, ref, series.meta["series_uid"]), images=series)


def test_json_round_trip_keeps_image_points_unit_and_calibration(study):
    a = _measure(study, 0, "length", [(0, 0), (30, 40)])
    b = _measure(study, 1, "length", [(0, 0), (30, 40)])
    assert (a.value, a.unit, display_text(a)) == (pytest.approx(10.0), "mm", "10.0 mm at detector")
    assert (b.value, b.unit, display_text(b)) == (pytest.approx(50.0), "px", "50.0 px (no calibration)")
    for original in (a, b):
        d = json.loads(json.dumps(original.as_dict()))
        assert "points_lps" not in d and d["image"]["sop_instance_uid"] == original.image.sop_instance_uid
        again = Annotation.from_dict(d)
        assert again == original


def test_angle_is_measured_in_physical_space_on_non_square_pixels(tmp_path):
    write_radiograph(tmp_path, "a.dcm", PixelSpacing=[0.1, 0.2])  # rows 0.1 mm, columns 0.2 mm apart
    series = load_planar(scan(str(tmp_path)).series[0])
    angle = _measure(series, 0, "angle", [(10, 0), (0, 0), (0, 20)])  # arms along a column and a row: 90°
    assert angle.value == pytest.approx(90.0)
    diagonal = _measure(series, 0, "angle", [(10, 0), (0, 0), (10, 20)])  # 2 mm right, 2 mm down: 45°
    assert diagonal.value == pytest.approx(45.0)


def test_sr_references_each_image_with_2d_scoord_and_says_the_calibration(study, tmp_path):
    a = _measure(study, 0, "length", [(10, 20), (40, 60)])
    b = _measure(study, 1, "rectangle", [(10, 10), (30, 10), (30, 20), (10, 20)])
    info = write_image_sr(str(tmp_path / "sr.dcm"), [im.header for im in study.images],
                          {"measurements": [a.as_dict(), b.as_dict()]})
    assert info.n_measurements == 2
    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    scoords, units, comments = [], [], []

    def walk(items):
        for item in items:
            if item.get("ValueType") == "SCOORD":
                ref = item.ContentSequence[0].ReferencedSOPSequence[0]
                scoords.append((ref.ReferencedSOPInstanceUID, item.GraphicType, list(item.GraphicData)))
            if item.get("ValueType") == "NUM":
                units.append(item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
            if item.get("ValueType") == "TEXT":
                comments.append(item.TextValue)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    uids = [im.display.sop_instance_uid for im in study.images]
    assert (uids[0], "POLYLINE", [10.5, 20.5, 40.5, 60.5]) in scoords  # pixel centres at +0.5 (PS3.3 C.18.6.1.1)
    closed = next(s for s in scoords if s[0] == uids[1])
    assert closed[1] == "POLYLINE" and closed[2][:2] == closed[2][-2:] and len(closed[2]) == 10  # a closed outline
    assert "mm" in units and "{pixels}2" in units
    assert any("at the detector" in c for c in comments) and any("pixels" in c for c in comments)


def test_sr_of_a_cine_frame_names_the_frame(tmp_path):
    write_ultrasound(tmp_path, "cine.dcm", frames=20, FrameTime=40.0)
    series = load_planar(scan(str(tmp_path)).series[0])
    a = _measure(series, 0, "length", [(10, 10), (60, 10)], frame=7)
    write_image_sr(str(tmp_path / "sr.dcm"), [series.images[0].header], [a.as_dict()])
    text = str(pydicom.dcmread(tmp_path / "sr.dcm"))
    assert "Referenced Frame Number" in text and "7" in text.split("Referenced Frame Number")[1][:40]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_image_sr_passes_dciodvfy(study, tmp_path):
    measurements = [_measure(study, 0, "length", [(10, 20), (40, 60)]).as_dict(),
                    _measure(study, 1, "ellipse", [(10, 20), (50, 20), (30, 10), (30, 30)]).as_dict(),
                    _measure(study, 0, "angle", [(10, 20), (40, 60), (80, 20)]).as_dict()]
    write_image_sr(str(tmp_path / "sr.dcm"), [im.header for im in study.images], measurements)
    out = subprocess.run(["dciodvfy", str(tmp_path / "sr.dcm")], capture_output=True, text=True, timeout=60)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert not errors, errors


def test_cli_export_sr_of_measurements_on_radiographs(study, tmp_path, capsys):
    doc = {"measurements": [_measure(study, 0, "length", [(10, 20), (40, 60)]).as_dict()]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    assert main(["export", "sr", str(tmp_path / "s"), "--measurements", str(tmp_path / "m.json"),
                 "--out", str(tmp_path / "out.dcm")]) == 0
    assert "1 measurement(s) on 2D images" in capsys.readouterr().out
    sr = pydicom.dcmread(tmp_path / "out.dcm")
    assert sr.Modality == "SR" and sr.CurrentRequestedProcedureEvidenceSequence
    assert main(["export", "sr", str(tmp_path / "s"), "--measurements", str(tmp_path / "m.json"),
                 "--out", str(tmp_path / "out.json")]) == 0
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["measurements"][0]["image"]["calibration"] == "ImagerPixelSpacing"
    assert np.allclose(written["measurements"][0]["points_image"], [[10, 20], [40, 60]])
