"""radview-cli export seg | sr | deid: real files in and out, one-line refusals (exit 2, no traceback)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from reference import data_path

from radview_base.geometry import Geometry
from viewer.export import AI_NOT_REVIEWED
from viewer.io.image_io import read_label_map, write_image
from viewer.io.seg_file import read_seg
from viewer.io.volume import LabelMap

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def assert_refused(done, *words):
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("radview-cli: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_export_lists_its_subcommands():
    done = cli("export", "--help")
    assert done.returncode == 0
    for name in ("seg", "sr", "deid"):
        assert name in done.stdout


# ------------------------------------------------------------------------------------------------- seg
def test_export_seg_of_an_ai_run(ai_run, demo_paths, demo_volume, tmp_path):
    out = tmp_path / "seg.dcm"
    done = cli("export", "seg", demo_paths.dicom_dir, "--series", demo_paths.ct_series_uid,
               "--labels", ai_run / "labels.nii.gz", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}") and AI_NOT_REVIEWED in done.stdout
    prov = json.loads((ai_run / "findings.json").read_text())["provenance"]
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    algo = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algo.AlgorithmName, algo.AlgorithmVersion) == (prov["model_name"], prov["model_version"])
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    labels = read_label_map(str(ai_run / "labels.nii.gz"))
    back = read_seg(str(out), demo_volume)
    assert np.array_equal(back.array, labels.array) and back.labels == labels.labels


def test_export_seg_without_a_series_takes_the_largest_volume(ai_run, demo_paths, tmp_path):
    done = cli("export", "seg", demo_paths.dicom_dir, "--labels", ai_run / "labels.nii.gz", "--out",
               tmp_path / "seg.dcm")
    assert done.returncode == 0, done.stderr
    assert demo_paths.ct_series_uid in done.stdout


def _write_labels(folder: Path, geometry: Geometry) -> Path:
    folder.mkdir()
    array = np.zeros(geometry.shape_zyx, np.uint8)
    array[geometry.shape_zyx[0] // 2, 100:120, 100:120] = 1
    return Path(write_image(LabelMap(array, geometry, {1: "nodule"}), str(folder / "labels.nii.gz")))


@pytest.mark.parametrize("change,word", [
    (lambda g: g.with_shape((g.shape_zyx[0] - 10,) + g.shape_zyx[1:]), "shape"),
    (lambda g: Geometry(g.shape_zyx, (2.5,) + g.spacing_zyx[1:], g.origin_lps, g.direction), "spacing"),
    (lambda g: Geometry(g.shape_zyx, g.spacing_zyx, np.add(g.origin_lps, (0, 0, 1.0)), g.direction), "origin"),
    (lambda g: Geometry(g.shape_zyx, g.spacing_zyx, g.origin_lps,
                        np.diag([1.0, -1.0, 1.0]) @ g.direction_matrix), "axes"),
])
def test_export_seg_refuses_labels_off_the_series_grid(demo_paths, demo_volume, tmp_path, change, word):
    labels = _write_labels(tmp_path / "labels", change(demo_volume.geometry))
    out = tmp_path / "seg.dcm"
    done = cli("export", "seg", demo_paths.dicom_dir, "--series", demo_paths.ct_series_uid, "--labels", labels,
               "--out", out)
    assert_refused(done, "labels.nii.gz is not on the grid of series", word)
    assert not out.exists()


def test_export_seg_refuses_findings_of_another_series(ai_run, demo_paths, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(ai_run / "labels.nii.gz", folder)
    shutil.copy(ai_run / "labels.json", folder)
    findings = json.loads((ai_run / "findings.json").read_text())
    findings["input"]["series_uid"] = "1.2.3.4.5"
    (folder / "findings.json").write_text(json.dumps(findings))
    done = cli("export", "seg", demo_paths.dicom_dir, "--series", demo_paths.ct_series_uid,
               "--labels", folder / "labels.nii.gz", "--out", tmp_path / "seg.dcm")
    assert_refused(done, "was made on series 1.2.3.4.5")


def test_export_seg_user_errors(ai_run, demo_paths, tmp_path):
    labels = ai_run / "labels.nii.gz"
    assert_refused(cli("export", "seg", demo_paths.dicom_dir, "--labels", tmp_path / "none.nii.gz", "--out",
                       tmp_path / "a.dcm"), "no such file")
    assert_refused(cli("export", "seg", tmp_path / "nowhere", "--labels", labels, "--out", tmp_path / "a.dcm"),
                   "no such file or folder")
    assert_refused(cli("export", "seg", labels, "--labels", labels, "--out", tmp_path / "a.dcm"),
                   "is an image file")
    assert_refused(cli("export", "seg", demo_paths.dicom_dir, "--series", "1.2.3", "--labels", labels,
                       "--out", tmp_path / "a.dcm"), "no series 1.2.3")
    assert_refused(cli("export", "seg", demo_paths.dicom_dir, "--labels", labels, "--out", tmp_path),
                   "is a folder")
    assert sorted(os.listdir(tmp_path)) == []


# -------------------------------------------------------------------------------------------------- sr
@pytest.fixture(scope="module")
def measurements_file(demo_volume, demo_paths, tmp_path_factory):
    g = demo_volume.geometry
    a, b = g.index_to_world((70, 250, 250)), g.index_to_world((70, 250, 290))
    doc = {"measurements": [{"id": "1", "kind": "length", "points_lps": [list(a), list(b)],
                             "series_uid": demo_paths.ct_series_uid, "label": "width",
                             "value": float(np.linalg.norm(b - a)), "unit": "mm", "created_by": "alice",
                             "created_at": "2024-03-15T11:00:00+00:00"}], "review": {}}
    path = tmp_path_factory.mktemp("measurements") / "measurements.json"
    path.write_text(json.dumps(doc))
    return path


def test_export_sr_as_dicom_and_as_json(ai_run, demo_paths, demo_volume, measurements_file, tmp_path, dciodvfy):
    import highdicom as hd

    seg = tmp_path / "seg.dcm"
    assert cli("export", "seg", demo_paths.dicom_dir, "--labels", ai_run / "labels.nii.gz", "--out",
               seg).returncode == 0
    out = tmp_path / "sr.dcm"
    done = cli("export", "sr", demo_paths.dicom_dir, "--series", demo_paths.ct_series_uid, "--findings",
               ai_run / "findings.json", "--measurements", measurements_file, "--seg", seg, "--out", out)
    assert done.returncode == 0, done.stderr
    findings = json.loads((ai_run / "findings.json").read_text())
    n = len(findings["detections"])
    assert f"{n} detection(s)" in done.stdout and "1 measurement(s)" in done.stdout
    assert "not reviewed" in done.stdout
    sr = hd.sr.srread(str(out))
    planar = sr.content.get_planar_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in planar] == ["width"]
    length = planar[0].get_measurements()[0]
    assert length.value == pytest.approx(40 * demo_volume.geometry.spacing_zyx[2])
    assert dciodvfy(out) == []
    out_json = tmp_path / "findings.json"
    done = cli("export", "sr", demo_paths.dicom_dir, "--findings", ai_run / "findings.json", "--measurements",
               measurements_file, "--out", out_json)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out_json.read_text())
    assert doc["provenance"] == findings["provenance"] and len(doc["detections"]) == n
    assert doc["measurements"][0]["label"] == "width"


def test_export_sr_user_errors(ai_run, demo_paths, measurements_file, tmp_path):
    folder = demo_paths.dicom_dir
    assert_refused(cli("export", "sr", folder, "--out", tmp_path / "a.dcm"), "nothing to export")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_refused(cli("export", "sr", folder, "--findings", broken, "--out", tmp_path / "a.dcm"),
                   "not readable JSON")
    other = json.loads(measurements_file.read_text())
    other["measurements"][0]["series_uid"] = "1.2.3.4"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(other))
    assert_refused(cli("export", "sr", folder, "--measurements", elsewhere, "--out", tmp_path / "a.dcm"),
                   "series 1.2.3.4 is not in")
    bad = json.loads(measurements_file.read_text())
    bad["measurements"][0]["kind"] = "circle"
    badfile = tmp_path / "bad.json"
    badfile.write_text(json.dumps(bad))
    assert_refused(cli("export", "sr", folder, "--measurements", badfile, "--out", tmp_path / "a.dcm"),
                   "unknown kind 'circle'")
    assert_refused(cli("export", "sr", folder, "--findings", ai_run / "findings.json", "--seg",
                       ai_run / "labels.nii.gz", "--out", tmp_path / "a.dcm"), "--seg", "not a DICOM")
    assert sorted(os.listdir(tmp_path)) == ["bad.json", "broken.json", "elsewhere.json"]


# ------------------------------------------------------------------------------------------------ deid
def test_export_deid_runs_the_deidentifier(tmp_path):
    pytest.importorskip("viewer.export.deid", reason="viewer.export.deid is written by the de-identification work")
    ct = data_path("seg-dcmqi", "ct-3slice")
    src = tmp_path / "src"
    src.mkdir()
    for f in sorted(ct.iterdir()):
        os.symlink(f, src / f.name)  # the shared files themselves, never copied
    out = tmp_path / "out"
    done = cli("export", "deid", src, "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote a de-identified copy of {src} to {out}")
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 3
    originals = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in ct.iterdir()}
    copies = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in written}
    assert not originals & copies
    assert_refused(cli("export", "deid", src, "--out", src / "inside"))
    assert_refused(cli("export", "deid", tmp_path / "nowhere", "--out", out), "no such file or folder")
