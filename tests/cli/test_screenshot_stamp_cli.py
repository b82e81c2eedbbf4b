"""``radview-cli screenshot``: AI labels bring the stamp band and the legend, other labels do not; the crosshair is
left out unless ``--crosshair``.

The label map is the demo's (lungs, airway, heart, …), written twice: into a folder as ``radview-cli ai run``
writes its output (``labels.nii.gz``, ``labels.json``, ``findings.json`` with the run's provenance, the format
of ``viewer/cli/ai.py``) and into a folder of its own (a plain segmentation file). Rendered for real, offscreen;
compared pixel by pixel.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BAND = (30, 32, 48)  # viewer.qt.capture.stamp.BAND_COLOR
AMBER = (255, 200, 80)  # viewer.qt.capture.stamp.WARNING_COLOR
PROVENANCE = {"model_id": "test-lungs", "model_name": "Test lungs", "model_version": "2.1",
              "method": "classical image analysis, not a learned network", "device": "cpu", "precision": "float32",
              "run_time_s": 1.5, "started_at": "2026-01-02T00:00:00+00:00", "parameters": {"threshold": -400},
              "software": "radview test", "note": "AI result for research use: not a diagnosis, not for clinical use"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", "screenshot", *args], capture_output=True,
                          text=True, env=env, timeout=180)


def read_png(path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[..., :3].astype(np.int16)


def near(img, rgb, tol: int) -> np.ndarray:
    return np.abs(img - np.array(rgb)).max(axis=-1) <= tol


def band_rows(img: np.ndarray) -> int:
    rows = near(img[:, :3], BAND, 1).all(axis=1) & near(img[:, -3:], BAND, 1).all(axis=1)
    n = 0
    while n < len(rows) and rows[len(rows) - 1 - n]:
        n += 1
    return n


@pytest.fixture(scope="module")
def demo():
    from viewer.demo import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="module")
def label_folders(demo, tmp_path_factory):
    """``(ai run folder, plain folder)``, each with the demo's labels.nii.gz and labels.json."""
    from viewer.io.image_io import read_label_map, write_image

    labels = read_label_map(str(demo.labels_nii))
    names = {str(k): v for k, v in sorted(labels.labels.items())}
    run, plain = tmp_path_factory.mktemp("ai-run"), tmp_path_factory.mktemp("segmentation")
    for folder in (run, plain):
        write_image(labels, str(folder / "labels.nii.gz"))
        (folder / "labels.json").write_text(json.dumps(names))
    findings = {"provenance": PROVENANCE,
                "input": {"path": str(demo.dicom_dir), "series_uid": demo.ct_series_uid,
                          "shape_zyx": list(labels.geometry.shape_zyx),
                          "spacing_zyx": list(labels.geometry.spacing_zyx)},
                "detections": [], "structures": [], "messages": [], "note": PROVENANCE["note"]}
    (run / "findings.json").write_text(json.dumps(findings))
    return run, plain


def shot(demo, tmp_path, name: str, *args: str) -> np.ndarray:
    out = tmp_path / f"{name}.png"
    result = run_cli(str(demo.dicom_dir), "--series", demo.ct_series_uid, "--preset", "lung", "--slice", "60",
                     "--size", "384x384", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return read_png(out)


def test_ai_labels_carry_the_stamp_and_legend_other_labels_do_not(demo, label_folders, tmp_path):
    from viewer.core.layers import default_color

    run, plain = label_folders
    ai = shot(demo, tmp_path, "ai", "--labels", str(run / "labels.nii.gz"))
    seg = shot(demo, tmp_path, "seg", "--labels", str(plain / "labels.nii.gz"))
    assert seg.shape == (384, 384, 3) and band_rows(seg) == 0  # not AI: no band
    assert ai.shape[1] == 384 and ai.shape[0] > 384 + 30
    assert band_rows(ai) == ai.shape[0] - 384  # the band is added below ...
    assert np.array_equal(ai[:384], seg)  # ... and covers nothing: the picture is the same
    band = ai[384:]
    assert near(band, AMBER, 25).sum() > 100  # "AI result, not reviewed — not a diagnosis (Test lungs …)"
    for label, name in ((2, "lung_left"), (3, "lung_right")):  # the legend of the labels shown
        assert near(band, default_color(label, name), 3).sum() > 30, name
    nothing = shot(demo, tmp_path, "nothing")  # no labels at all
    assert nothing.shape == (384, 384, 3) and band_rows(nothing) == 0


def test_findings_of_another_series_are_refused(demo, label_folders, tmp_path):
    run, _ = label_folders
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.nii.gz").write_bytes((run / "labels.nii.gz").read_bytes())
    doc = json.loads((run / "findings.json").read_text())
    doc["input"]["series_uid"] = "1.2.3.4"
    (other / "findings.json").write_text(json.dumps(doc))
    result = run_cli(str(demo.dicom_dir), "--series", demo.ct_series_uid, "--labels", str(other / "labels.nii.gz"),
                     "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "1.2.3.4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_crosshair_only_with_the_flag(demo, tmp_path):
    without = shot(demo, tmp_path, "plain")
    with_lines = shot(demo, tmp_path, "cross", "--crosshair")
    assert without.shape == with_lines.shape == (384, 384, 3)
    differ = np.abs(with_lines - without).max(axis=-1) > 8
    rows, cols = np.flatnonzero(differ.mean(axis=1) > 0.5), np.flatnonzero(differ.mean(axis=0) > 0.5)
    assert 1 <= len(rows) <= 3 and 1 <= len(cols) <= 3  # one horizontal and one vertical line
    assert differ.sum() < 3 * (384 + 384)  # and nothing else


def test_radviews_own_seg_of_ai_labels_carries_the_stamp(demo, label_folders, tmp_path):
    run, plain = label_folders
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    for folder in (run, plain):  # radview's SEG writer: the AI run's provenance, or none
        written = subprocess.run([sys.executable, "-m", "viewer.cli.main", "export", "seg", str(demo.dicom_dir),
                                  "--series", demo.ct_series_uid, "--labels", str(folder / "labels.nii.gz"),
                                  "--out", str(tmp_path / f"{folder.name}.dcm")], capture_output=True, text=True,
                                 env=env, timeout=180)
        assert written.returncode == 0, written.stderr
    ai = shot(demo, tmp_path, "ai-seg", "--labels", str(tmp_path / f"{run.name}.dcm"))
    seg = shot(demo, tmp_path, "plain-seg", "--labels", str(tmp_path / f"{plain.name}.dcm"))
    assert seg.shape == (384, 384, 3) and band_rows(seg) == 0
    assert ai.shape[0] > 384 and band_rows(ai) == ai.shape[0] - 384
    assert near(ai[384:], AMBER, 25).sum() > 100
