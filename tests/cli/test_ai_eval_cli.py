"""radview-cli ai eval: label maps and findings against a reference, through the real CLI entry point."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from ai.metrics import detection_metrics, segmentation_metrics
from radview_base.geometry import Geometry
from viewer.cli.main import main
from viewer.io.image_io import read_label_map, write_image
from viewer.io.volume import LabelMap

ROOT = Path(__file__).resolve().parents[2]
NOTE = "These are agreement figures against the given reference, not a clinical validation."


@pytest.fixture(scope="module")
def demo():
    from viewer.demo import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="module")
def truth(demo):
    return read_label_map(str(demo.labels_nii))


def run(capsys, *args):
    code = main(["ai", "eval", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_truth_against_itself_is_perfect(capsys, demo):
    code, out, err = run(capsys, "--pred", demo.labels_nii, "--ref", demo.labels_nii, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["note"] == NOTE and result["detection"] is None
    labels = result["labels"]
    assert [m["label"] for m in labels] == list(range(1, 9))
    assert [m["name"] for m in labels] == ["body", "lung_left", "lung_right", "airway", "heart", "aorta", "bone",
                                           "nodule"]  # from truth/labels.json beside the files
    for m in labels:
        assert m["dice"] == 1.0 and m["iou"] == 1.0 and m["hd95_mm"] == 0.0 and m["asd_mm"] == 0.0, m
        assert m["volume_diff_ml"] == 0.0 and m["volume_pred_ml"] > 0

    code, out, err = run(capsys, "--pred", demo.labels_nii, "--ref", demo.labels_nii)
    assert code == 0, err
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.lstrip().startswith("LABEL"))
    assert header.split()[:4] == ["LABEL", "NAME", "DICE", "IOU"] and "HD95 mm" in header and "ΔVOL %" in header
    row = next(ln for ln in lines if " lung_left " in ln)
    assert row.split()[:6] == ["2", "lung_left", "1.0000", "1.0000", "0.00", "0.00"]
    # the table's columns line up: every value ends where its header ends
    assert row.index("1.0000") + len("1.0000") == header.index("DICE") + len("DICE")
    assert lines[-1] == NOTE


def test_an_eroded_shifted_copy_matches_segmentation_metrics(capsys, tmp_path, truth):
    changed = np.zeros_like(truth.array)
    changed[:, :, 1:] = truth.array[:, :, :-1]  # one voxel toward patient left
    lungs = ndimage.binary_erosion(changed == 2, iterations=2)
    changed[(changed == 2) & ~lungs] = 0  # left lung eroded by two voxels
    path = tmp_path / "pred.nii.gz"  # no labels.json beside it: names come from the reference's
    write_image(LabelMap(changed, truth.geometry), str(path))
    code, out, err = run(capsys, "--pred", path, "--ref", truth.meta["path"], "--json")
    assert code == 0, err
    got = {m["label"]: m for m in json.loads(out)["labels"]}
    expected = segmentation_metrics(changed, truth.array, truth.geometry.spacing_zyx)
    assert sorted(got) == [m.label for m in expected] == list(range(1, 9))
    for m in expected:
        g = got[m.label]
        for key in ("dice", "iou", "hd95_mm", "asd_mm", "hd_mm", "volume_pred_ml", "volume_ref_ml", "tp_voxels",
                    "fp_voxels", "fn_voxels"):
            assert g[key] == pytest.approx(getattr(m, key), rel=1e-12), (m.label, key)
    assert got[2]["name"] == "lung_left" and got[2]["dice"] < got[3]["dice"] < 1.0
    assert got[2]["hd95_mm"] > 0 and got[2]["volume_diff_pct"] < 0


def _write(path, array, spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    if direction is None:
        direction = np.eye(3)
    write_image(LabelMap(np.asarray(array, np.uint8), Geometry(np.shape(array), spacing, origin, direction)),
                str(path))
    return path


@pytest.mark.parametrize("other, what", [
    (dict(shape=(4, 6, 7)), "shape (z, y, x) 4×6×6 vs 4×6×7"),
    (dict(spacing=(2.0, 1.0, 1.05)), "spacing (z, y, x) (2, 1, 1) vs (2, 1, 1.05) mm"),
    (dict(origin=(0.0, 0.5, 0.0)), "origin (LPS) (0, 0, 0) vs (0, 0.5, 0) mm"),
    (dict(direction=np.diag([-1.0, -1.0, 1.0])), "direction"),
])
def test_label_maps_on_different_grids_are_refused_in_one_line(capsys, tmp_path, other, what):
    a = np.zeros((4, 6, 6), np.uint8)
    a[1:3, 2:4, 2:4] = 1
    pred = _write(tmp_path / "pred.nii.gz", a)
    shape = other.pop("shape", a.shape)
    ref = _write(tmp_path / "ref.nrrd", np.zeros(shape, np.uint8), **other)
    code, out, err = run(capsys, "--pred", pred, "--ref", ref)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("radview-cli: error: the label maps lie on different voxel grids: ") and what in err


def test_within_tolerance_grids_are_accepted_and_labels_json_names(capsys, tmp_path):
    a = np.zeros((4, 6, 6), np.uint8)
    a[1:3, 2:4, 2:4] = 1
    b = a.copy()
    b[1:3, 2:4, 4] = 1  # 8 voxels vs 12 (2 mm³ each): Dice 2·8/(8+12) = 0.8, volume (8 - 12)/12 = -1/3
    pred = _write(tmp_path / "pred.mha", a, origin=(0.0, 0.005, 0.0))
    ref = _write(tmp_path / "ref.nii.gz", b)
    (tmp_path / "names.json").write_text(json.dumps({"1": "tumour"}))
    code, out, err = run(capsys, "--pred", pred, "--ref", ref, "--labels", tmp_path / "names.json", "--json")
    assert code == 0, err
    (m,) = json.loads(out)["labels"]
    assert m["name"] == "tumour" and m["dice"] == pytest.approx(0.8)
    assert m["volume_pred_ml"] == pytest.approx(0.016) and m["volume_diff_pct"] == pytest.approx(-100 / 3)


def test_demo_nodules_against_themselves_and_a_findings_json(capsys, tmp_path, demo):
    code, out, err = run(capsys, "--pred-findings", demo.nodules_json, "--ref-findings", demo.nodules_json, "--json")
    assert code == 0, err
    d = json.loads(out)["detection"]
    assert (d["tp"], d["fp"], d["fn"], d["precision"], d["recall"], d["f1"]) == (6, 0, 0, 1.0, 1.0, 1.0)
    assert d["froc"]["sensitivity_at"] == [1.0] * 7 and d["froc"]["cpm"] == 1.0

    nodules = json.loads(demo.nodules_json.read_text())
    first = nodules[0]  # 25 mm: a detection 12 mm off its centre still hits it, 13 mm off does not
    c = first["center_lps_mm"]
    dets = [{"center_lps_mm": [c[0] + 12.0, c[1], c[2]], "diameter_mm": 20.0, "score": 0.9},
            {"center_lps_mm": [c[0], c[1], c[2] + 13.0], "diameter_mm": 5.0, "score": 0.8},
            {"center_lps_mm": c, "diameter_mm": 25.0, "score": 0.4}]  # a second hit on the same nodule
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps({"provenance": {}, "detections": dets, "messages": []}))
    code, out, err = run(capsys, "--pred-findings", findings, "--ref-findings", demo.nodules_json, "--json")
    assert code == 0, err
    d = json.loads(out)["detection"]
    assert (d["tp"], d["fp"], d["fn"], d["ignored"]) == (1, 1, 5, 1)
    assert d["precision"] == 0.5 and d["recall"] == pytest.approx(1 / 6)
    assert d["matches"] == [{"detection": 0, "reference": 0, "distance_mm": pytest.approx(12.0), "score": 0.9}]
    ref = detection_metrics(dets, nodules)
    assert (ref.tp, ref.fp, ref.fn) == (d["tp"], d["fp"], d["fn"])
    # FROC on one scan: the FP scores 0.8; at FP/scan < 1 only the 0.9 threshold counts (1 of 6)
    assert d["froc"]["sensitivity_at"] == pytest.approx([1 / 6] * 7)

    code, out, err = run(capsys, "--pred-findings", findings, "--ref-findings", demo.nodules_json, "--min-score",
                         "0.95")
    assert code == 0, err
    assert "precision 1.000  recall 0.000  F1 0.000" in out and out.rstrip().endswith(NOTE)


@pytest.mark.parametrize("args, message", [
    ((), "nothing to compare"),
    (("--pred", "x.nii.gz"), "--pred and --ref go together"),
    (("--ref-findings", "x.json"), "--pred-findings and --ref-findings go together"),
    (("--pred", "missing.nii.gz", "--ref", "missing.nii.gz"), "--pred missing.nii.gz: no such file"),
])
def test_user_errors(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_findings_file(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"detections": [{"diameter_mm": 4}]}))
    code, _, err = run(capsys, "--pred-findings", bad, "--ref-findings", bad)
    assert code == 2 and "entry 1 is not a finding with center_lps_mm" in err


def test_the_installed_command_exits_non_zero_with_one_line(tmp_path):
    a = np.zeros((3, 4, 4), np.uint8)
    pred = _write(tmp_path / "pred.nii.gz", a)
    ref = _write(tmp_path / "ref.nii.gz", a, spacing=(3.0, 1.0, 1.0))
    out = subprocess.run([sys.executable, "-m", "viewer.cli.main", "ai", "eval",
                          "--pred", str(pred), "--ref", str(ref)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "radview-cli: error: the label maps lie on different voxel grids: spacing (z, y, x) (2, 1, 1) vs (3, 1, 1) mm "
        "(pred vs ref); resample the prediction onto the reference's grid first"]
