"""radview-cli ai: list the models; run one on an image file and write labels + findings on the input's grid."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fake_models
import numpy as np
import pytest
import torch

from ai.api import CLASSICAL_NOTE, NOT_A_DIAGNOSIS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return fake_models.write_manifests(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory) -> Path:
    """A small oblique CT-like NIfTI: values 0..300, one bright voxel."""
    import SimpleITK as sitk

    array = (np.arange(7 * 12 * 10) % 301).astype(np.int16).reshape(7, 12, 10)
    array[3, 4, 5] = 1500
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((0.8, 0.9, 2.5))
    img.SetOrigin((-12.0, 30.5, 100.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def cli(models_dir, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *map(str, args)], capture_output=True, text=True,
                          env=fake_models.subprocess_env(models_dir), cwd=ROOT, timeout=timeout)


def test_ai_models_table_and_json(models_dir):
    table = cli(models_dir, "ai", "models")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "VERSION", "MODALITY", "METHOD"]
    body = next(ln for ln in lines if ln.startswith("ct-body "))
    assert "CT body outline" in body and body.endswith(CLASSICAL_NOTE)
    assert any(ln.startswith("test-threshold ") for ln in lines)
    listing = json.loads(cli(models_dir, "ai", "models", "--json").stdout)
    by_id = {m["id"]: m for m in listing}
    assert by_id["ct-lung-nodules"]["input"]["patch_size"] == [96, 160, 160]
    assert by_id["ct-lungs"]["labels"] == {"2": "lung_left", "3": "lung_right", "4": "airway"}
    assert by_id["test-threshold"]["runner"] == "fake-ThresholdModel"
    assert by_id["test-threshold"]["contains_code"] is False


def test_ai_run_writes_labels_on_the_input_grid_and_findings(models_dir, ct_file, tmp_path):
    import nibabel as nib

    out_dir = tmp_path / "out"
    out = cli(models_dir, "ai", "run", ct_file, "--model", "test-threshold", "--out", out_dir, "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Test ThresholdModel: 100%" in out.stderr  # plain progress lines
    assert "note: the series' modality is unknown: assumed CT" in out.stderr
    assert NOT_A_DIAGNOSIS in out.stdout
    src, lab = nib.load(ct_file), nib.load(out_dir / "labels.nii.gz")
    assert np.allclose(lab.affine, src.affine, atol=1e-4) and lab.shape == src.shape
    assert np.array_equal(np.asarray(lab.dataobj), (np.asarray(src.dataobj) > 100).astype(np.uint8))
    assert json.loads((out_dir / "labels.json").read_text()) == {"1": "bright", "3": "other"}
    findings = json.loads((out_dir / "findings.json").read_text())
    assert findings["note"] == NOT_A_DIAGNOSIS and findings["messages"] == ["the series' modality is unknown: "
                                                                            "assumed CT"]
    prov = findings["provenance"]
    assert prov["model_id"] == "test-threshold" and prov["device"].startswith("cpu") and prov["run_time_s"] > 0
    (det,) = findings["detections"]
    assert det["mean_hu"] == 1500.0 and det["kind"] == "solid" and len(det["center_lps_mm"]) == 3
    # the detection's centre is the bright voxel's LPS position (index (z, y, x) = (3, 4, 5))
    expected_ras = src.affine @ np.array([5, 4, 3, 1.0])
    assert np.allclose(det["center_lps_mm"], expected_ras[:3] * [-1, -1, 1], atol=1e-3)
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".radview-")]  # no temporary files left


def test_a_model_without_a_labels_output_writes_findings_only(models_dir, ct_file, tmp_path):
    out = cli(models_dir, "ai", "run", ct_file, "--model", "test-detect", "--out", tmp_path / "o", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["findings.json"]
    assert len(json.loads((tmp_path / "o" / "findings.json").read_text())["detections"]) == 1


@pytest.mark.parametrize("args, message", [
    (("--model", "nope"), "unknown model 'nope' (known models: ct-body"),
    (("--model", "test-failing", "--device", "cpu"), "Test FailingModel failed: ValueError: boom"),
    pytest.param(("--model", "test-threshold", "--device", "cuda"), "a CUDA GPU was requested, but none is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
    (("--model", "test-threshold", "--device", "tpu"), "unknown device 'tpu'"),
])
def test_ai_run_user_errors_are_one_line(models_dir, ct_file, tmp_path, args, message):
    out = cli(models_dir, "ai", "run", ct_file, "--out", tmp_path / "o", *args)
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in out.stderr


def test_ai_run_on_a_missing_path(models_dir, tmp_path):
    out = cli(models_dir, "ai", "run", tmp_path / "missing.nii", "--model", "test-threshold", "--out", tmp_path)
    assert out.returncode == 2 and out.stderr.strip().endswith("no such file or folder")
