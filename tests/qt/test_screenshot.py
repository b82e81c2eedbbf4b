"""``radview-cli screenshot`` renders the real widgets offscreen; compared with stored reference images.

The references were rendered by this command and looked at by a person; set
``RADVIEW_UPDATE_REFERENCES=1`` to write them anew (then look at them again
before committing). The comparison tolerates small font-rendering differences
between machines, not a moved, missing or differently coloured image.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).resolve().parent / "reference"
UPDATE = os.environ.get("RADVIEW_UPDATE_REFERENCES") == "1"

CASES = {
    "axial_lung_labels": ["--view", "axial", "--preset", "lung", "--slice", "60", "--labels", "{labels}",
                          "--size", "384x384"],
    "coronal_bone": ["--view", "coronal", "--preset", "bone", "--size", "384x320"],
    "sagittal_soft_tissue_patient": ["--view", "sagittal", "--preset", "soft tissue", "--size", "320x320",
                                     "--show-patient-data"],
    "layout_mediastinum_labels": ["--view", "layout", "--preset", "mediastinum", "--labels", "{labels}",
                                  "--size", "900x320"],
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", "screenshot", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def read_png(path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[..., :3].astype(np.int16)


@pytest.mark.parametrize("case", sorted(CASES))
def test_screenshot_matches_reference(case, demo_paths, tmp_path):
    args = [a.replace("{labels}", str(demo_paths.labels_nii)) for a in CASES[case]]
    out = tmp_path / f"{case}.png"
    result = run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    got = read_png(out)
    ref_path = REFERENCE / f"{case}.png"
    if UPDATE:
        ref_path.write_bytes(out.read_bytes())
    assert ref_path.exists(), f"no reference image {ref_path.name}: run with RADVIEW_UPDATE_REFERENCES=1"
    ref = read_png(ref_path)
    assert got.shape == ref.shape
    diff = np.abs(got - ref).max(axis=-1)
    assert diff.mean() < 2.0, f"mean difference {diff.mean():.2f}"
    assert (diff > 48).mean() < 0.01, f"{(diff > 48).mean():.2%} of pixels differ strongly"


def test_patient_data_is_hidden_unless_asked(demo_paths, tmp_path):
    common = [str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--size", "400x300"]
    hidden, shown = tmp_path / "hidden.png", tmp_path / "shown.png"
    assert run_cli(*common, "--out", str(hidden)).returncode == 0
    assert run_cli(*common, "--show-patient-data", "--out", str(shown)).returncode == 0
    h, s = read_png(hidden), read_png(shown)
    top_right = (slice(0, 80), slice(240, 400))
    assert (s[top_right].max(axis=-1) > 200).sum() > 50  # the patient's name and ID are drawn
    assert (h[top_right].max(axis=-1) > 200).sum() < 5  # ... and absent by default
    rest = np.ones(h.shape[:2], bool)
    rest[:100, :] = False
    rest[200:, 200:] = False  # bottom right: the acquisition date and time, shown with patient data too
    assert np.array_equal(h[rest], s[rest])


def test_screenshot_errors_are_one_clear_line(demo_paths, tmp_path):
    bad = run_cli(str(demo_paths.dicom_dir), "--preset", "bnoe", "--out", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and "unknown window preset 'bnoe'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--slice", "999",
                  "--out", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and "out of range" in bad.stderr
    bad = run_cli(str(demo_paths.dicom_dir), "--out", str(tmp_path / "x.tif"))
    assert bad.returncode == 2 and "PNG or JPEG" in bad.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_3d_screenshot_shows_the_left_lung_on_the_screen_right_from_the_front(demo_paths, tmp_path):
    out = tmp_path / "3d.png"
    result = run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--view", "3d", "--preset",
                     "bone", "--camera", "anterior", "--labels", str(demo_paths.labels_nii), "--size", "240x240",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    img = read_png(out)
    assert img.shape == (240, 240, 3)
    from viewer.core.layers import default_color

    def share(rgb) -> np.ndarray:
        near = np.abs(img - np.array(rgb)).max(axis=-1) < 60
        cols = np.nonzero(near)[1]
        return cols

    left_cols, right_cols = share(default_color(2, "lung_left")), share(default_color(3, "lung_right"))
    assert len(left_cols) > 200 and len(right_cols) > 200
    assert np.median(left_cols) > 120 > np.median(right_cols)  # patient's left on the screen's right
