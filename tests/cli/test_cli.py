"""radview-cli: index, convert, demo; user errors exit non-zero with one line and no traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import compare_in_physical_space, data_path, sitk_geometry_arrays

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def test_index_json_lists_series_and_skipped_files():
    folder = data_path("odd-dicom", "failing")
    out = run_cli("index", folder, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    series = data["series"]
    assert {"series_uid", "study_uid", "modality", "description", "n_images", "shape_zyx", "spacing_zyx",
            "warnings"} <= set(series[0])
    refused = [s for s in series if not s["loadable"]]
    assert refused and all(s["refusal"] for s in refused)
    assert any("gantry tilt" in w for s in series for w in s["warnings"])
    assert all(k["reason"] for k in data["skipped"])
    split = [s for s in series if "#" in s["key"]]
    assert len(split) == 2 and split[0]["series_uid"] == split[1]["series_uid"]


def test_convert_writes_nifti_matching_simpleitk(tmp_path):
    import SimpleITK as sitk

    folder = data_path("ct-pancreas-tcia")
    out_file = tmp_path / "ct.nii.gz"
    out = run_cli("convert", folder, "--out", out_file)
    assert out.returncode == 0, out.stderr
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkInt16)
    ref = reader.Execute()
    from viewer.io.image_io import geometry_from_sitk

    ours, our_geom = sitk_geometry_arrays(out_file)
    pos_err, max_diff, n = compare_in_physical_space(ours[0], our_geom, sitk.GetArrayFromImage(ref),
                                                     geometry_from_sitk(ref), tol_mm=0.01)
    assert max_diff == 0 and n == 134 * 512 * 512
    import nibabel as nib

    img = nib.load(out_file)
    assert img.get_data_dtype() == np.int16
    # the NIfTI affine is RAS: x and y flip sign relative to LPS
    assert np.allclose(img.affine, our_geom.affine_ras(), atol=1e-3)


def test_convert_a_split_series_by_key(tmp_path):
    folder = data_path("odd-dicom", "failing", "sliceorientation")
    listing = json.loads(run_cli("index", folder, "--json").stdout)
    uid = listing["series"][0]["series_uid"]
    ambiguous = run_cli("convert", folder, "--series", uid, "--out", tmp_path / "a.nii")
    assert ambiguous.returncode == 2 and "split into 2 volumes" in ambiguous.stderr
    ok = run_cli("convert", folder, "--series", f"{uid}#2", "--out", tmp_path / "b.nrrd")
    assert ok.returncode == 0 and (tmp_path / "b.nrrd").exists()


@pytest.mark.parametrize("args, message", [
    (("index", "/no/such/folder"), "no such file or folder"),
    (("convert", "/no/such/folder", "--out", "/tmp/x.nii"), "no such file or folder"),
    (("convert", ".", "--out", "/tmp/x.png"), "unknown format"),
])
def test_user_errors_are_one_line_without_traceback(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


def test_convert_refused_series_gives_reason(tmp_path):
    out = run_cli("convert", data_path("odd-dicom", "failing", "notavolume"), "--out", tmp_path / "x.nii")
    assert out.returncode == 2 and "not a volume" in out.stderr and "Traceback" not in out.stderr


def test_convert_image_file_round_trip(tmp_path):
    folder = data_path("odd-dicom", "generic", "anatomical", "001_implicit")
    first = tmp_path / "a.nii.gz"
    assert run_cli("convert", folder, "--out", first).returncode == 0
    second = tmp_path / "b.mha"
    assert run_cli("convert", first, "--out", second).returncode == 0
    a, ga = sitk_geometry_arrays(first)
    b, gb = sitk_geometry_arrays(second)
    assert ga.is_close(gb, 1e-4) and np.array_equal(a[0], b[0])


def test_demo_command_writes_a_study_the_loader_places_on_the_truth_grid(tmp_path):
    from viewer.io.dicom_index import scan
    from viewer.io.image_io import read_label_map
    from viewer.io.series_loader import load_series

    out = run_cli("demo", tmp_path / "demo")
    assert out.returncode == 0, out.stderr
    truth = tmp_path / "demo" / "truth"
    labels = json.loads((truth / "labels.json").read_text())
    assert set(labels.values()) == {"body", "lung_left", "lung_right", "airway", "heart", "aorta", "bone", "nodule"}
    index = scan(str(tmp_path / "demo" / "dicom"))
    kinds = sorted(s.kind for s in index.series)
    assert kinds == ["localizer", "volume", "volume"]
    ct = index.largest_volume()
    assert ct.shape_zyx[1:] == (512, 512) and ct.shape_zyx[0] >= 150 and 1.25 <= ct.spacing_zyx[0] <= 2.5
    vol = load_series(ct)
    label_map = read_label_map(str(truth / "labels.nii.gz"))
    label_map.check_fits(vol)  # same grid within 0.01 mm
    nodules = json.loads((truth / "nodules.json").read_text())
    lung_hu = vol.array[(label_map.array == 2) | (label_map.array == 3)]
    assert -950 < np.median(lung_hu) < -750
    for n in nodules:
        assert label_map.array[tuple(np.rint(vol.geometry.world_to_index(n["center_lps_mm"])).astype(int))] == 8


def _imported_modules(*args) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime -m viewer.cli.main ARGS`` in a fresh interpreter: its result and every module
    it imported (``-X importtime`` names each on stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "viewer.cli.main", *map(str, args)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    mods = {ln.rsplit("|", 1)[1].strip() for ln in out.stderr.splitlines() if ln.startswith("import time:")}
    return out, mods


@pytest.mark.parametrize("args", [("index", "DICOM"), ("ai", "models")])
def test_commands_without_widgets_load_neither_qt_nor_vtk_nor_torch(args):
    """Only screenshot and export report render widgets; index and ai models must start without Qt, VTK or torch."""
    args = tuple(str(data_path("odd-dicom", "generic", "anatomical", "001_implicit")) if a == "DICOM" else a
                 for a in args)
    out, mods = _imported_modules(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()  # the command really ran: a series list, a model table
    assert "viewer.cli.main" in mods or "viewer.cli.index" in mods  # importtime really listed the modules
    heavy = sorted(m for m in mods if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "vtk", "vtkmodules",
                                                           "torch") or m.startswith("viewer.qt"))
    assert not heavy, heavy
