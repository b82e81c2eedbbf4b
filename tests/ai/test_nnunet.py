"""nnU-Net v2 results folders: recognised, described, run through nnunetv2's own predictor with safely loaded
weights, and giving exactly what nnunetv2's own loader and predictor give on the same array."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_nnunet as tiny
import torch

from ai.api import Cancelled, InferenceRequest, ModelError
from ai.engine import Engine
from ai.nnunet_folder import is_nnunet_folder, manifest_from_folder
from ai.registry import ManifestError, Registry
from radview_base.geometry import Geometry

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "nnunet-Dataset999_Tiny-3d_fullres"
SPACING = (2.5, 0.8, 0.9)  # anisotropic: nnU-Net resamples z separately (2.5 / 0.8 > 3)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Both sides run the same way either way; one thread is much faster on a small, shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny.write_folder(tmp_path_factory.mktemp("results"), folds=(0, 1))


@pytest.fixture(scope="module")
def engine(folder):
    registry = Registry(extra_dirs=[folder.parent], builtin=False)
    assert registry.ids() == [MODEL_ID] and registry.problems == []
    return Engine(registry)


@pytest.fixture(scope="module")
def volume():
    return tiny.ct_volume()


def request(volume, **options) -> InferenceRequest:
    grid = Geometry(volume.shape, SPACING, (-30.0, 12.0, 40.0))
    return InferenceRequest(array=volume, grid=grid, model_id=MODEL_ID, device="cpu", options=options)


def nnunet_reference(folder, volume, folds, use_mirroring=False) -> np.ndarray:
    """nnunetv2's own loader (unsafe torch.load: fine here, the test wrote the file) and predictor."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds),
                                                   checkpoint_name="checkpoint_final.pth")
    return predictor.predict_single_npy_array(volume[None].astype(np.float32), {"spacing": list(SPACING)}, None,
                                              None, False)


# --- the folder as a manifest (JSON only) ---------------------------------------------------------------------
def test_an_nnunet_results_folder_is_recognised_and_described(folder):
    assert is_nnunet_folder(folder)
    m = manifest_from_folder(folder)
    assert m.id == MODEL_ID and m.name == "nnU-Net Dataset999_Tiny (3d_fullres)"
    assert m.modality == "CT" and m.method == "learned network (nnU-Net v2)"
    assert m.runner == "nnunet" and m.outputs == ("labels",)
    assert m.labels == {1: "lung", 2: "vessel"}
    assert m.spacing_mm == (2.0, 1.0, 1.0) and m.patch_size == (16, 32, 32) and m.overlap == 0.5
    assert m.intensity == "nnU-Net CT normalisation: clip to [-1000, 900] HU, then (HU - -300.0) / 400.0"
    assert dict(m.parameters) == {"folder": str(folder), "folds": [0, 1], "use_mirroring": False,
                                  "checkpoint": "checkpoint_final.pth", "tile_step_size": 0.5,
                                  "trainer": "nnUNetTrainer", "plans": "nnUNetPlans", "configuration": "3d_fullres"}
    assert m.path == str(folder) and m.version.startswith("final checkpoint of ")
    assert not is_nnunet_folder(folder.parent) and not is_nnunet_folder(folder / "fold_0")


def test_folders_that_cannot_run_are_refused_with_a_reason(tmp_path, folder):
    def variant(name, dataset=None, plans=None, folder_name=None):
        target = tmp_path / name / (folder_name or folder.name)
        target.mkdir(parents=True)
        (target / "fold_0").mkdir()
        (target / "fold_0" / "checkpoint_best.pth").write_bytes(b"not read for the manifest")
        d = json.loads((folder / "dataset.json").read_text())
        p = json.loads((folder / "plans.json").read_text())
        (target / "dataset.json").write_text(json.dumps({**d, **(dataset or {})}))
        (target / "plans.json").write_text(json.dumps({**p, **(plans or {})}))
        return target

    best = manifest_from_folder(variant("best"))
    assert best.parameters["checkpoint"] == "checkpoint_best.pth" and best.parameters["folds"] == [0]
    with pytest.raises(ManifestError, match=r"needs 2 input channels \(0: CT, 1: PET\); radview feeds one series"):
        manifest_from_folder(variant("two", {"channel_names": {"0": "CT", "1": "PET"}}))
    with pytest.raises(ManifestError, match=r"label 'tumor' is a region \(\[1, 2\]\); region-based"):
        manifest_from_folder(variant("regions", {"labels": {"background": 0, "lung": 1, "tumor": [1, 2]}}))
    with pytest.raises(ManifestError, match=r"labels must be consecutive \(1..2\), got \[1, 3\]"):
        manifest_from_folder(variant("gap", {"labels": {"background": 0, "a": 1, "b": 3}}))
    cascade = json.loads((folder / "plans.json").read_text())["configurations"]
    cascade["3d_fullres"]["previous_stage"] = "3d_lowres"
    with pytest.raises(ManifestError, match="is a cascade stage"):
        manifest_from_folder(variant("cascade", plans={"configurations": cascade}))
    assert not is_nnunet_folder(variant("name", folder_name="my_model"))
    zscore = {**cascade["3d_fullres"], "previous_stage": None, "normalization_schemes": ["ZScoreNormalization"]}
    mr = manifest_from_folder(variant("mr", {"channel_names": {"0": "T2"}}, {"configurations": {"3d_fullres": zscore}}))
    assert mr.modality == "MR" and mr.intensity == "nnU-Net z-score normalisation (per image)"
    # nnU-Net keeps spacing and patch size in its transposed axis order; the manifest gives them as (z, y, x)
    p = json.loads((folder / "plans.json").read_text())
    p["configurations"]["3d_fullres"].update(spacing=[1.0, 2.0, 1.5], patch_size=[32, 16, 24])
    transposed = manifest_from_folder(variant("transposed", plans={**p, "transpose_forward": [2, 0, 1]}))
    assert transposed.spacing_mm == (2.0, 1.5, 1.0) and transposed.patch_size == (16, 24, 32)


# --- running: identical to nnunetv2's own predictor -----------------------------------------------------------
def test_a_run_gives_exactly_what_nnunetv2_gives_on_the_input_grid(engine, folder, volume):
    calls = []
    result = engine.run(request(volume, folds=[0]), progress=lambda f, m: calls.append((f, m)))
    expected = nnunet_reference(folder, volume, [0])
    assert result.labels.shape == volume.shape == expected.shape and result.labels.dtype == np.uint8
    assert np.array_equal(result.labels, expected)
    counts = np.bincount(result.labels.ravel(), minlength=3)
    assert (counts > 100).all(), counts  # every class is there: the comparison is not trivially all-background
    assert result.label_names == {1: "lung", 2: "vessel"}
    p = result.provenance
    assert p.method == "learned network (nnU-Net v2)" and p.model_id == MODEL_ID
    assert p.parameters["folds"] == [0] and p.parameters["use_mirroring"] is False
    assert p.parameters["windows"] == 6 and p.parameters["trainer"] == "nnUNetTrainer"
    windows = [m for _, m in calls if m.startswith("window ")]
    assert windows == [f"window {i}/6" for i in range(1, 7)]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and calls[-1] == (1.0, "done")


def test_folds_and_mirroring_come_from_the_options(engine, folder, volume):
    both = engine.run(request(volume)).labels  # the manifest's default: every available fold
    assert np.array_equal(both, nnunet_reference(folder, volume, [0, 1]))
    second = engine.run(request(volume, folds=[1])).labels
    assert np.array_equal(second, nnunet_reference(folder, volume, [1]))
    assert not np.array_equal(second, nnunet_reference(folder, volume, [0]))  # fold 1 is another network
    mirrored = engine.run(request(volume, folds=[1], use_mirroring=True))
    assert np.array_equal(mirrored.labels, nnunet_reference(folder, volume, [1], use_mirroring=True))
    assert mirrored.provenance.parameters["mirror_axes"] == [0, 1, 2]
    with pytest.raises(ModelError, match=r"fold 3 of this nnU-Net model has no checkpoint_final.pth "
                                         r"\(available folds: 0, 1\)"):
        engine.run(request(volume, folds=[3]))
    with pytest.raises(ModelError, match="tile_step_size must be a number in"):
        engine.run(request(volume, tile_step_size=0))


def test_cancel_after_the_first_window_stops_the_run_and_leaves_no_thread(engine, volume):
    cancel = threading.Event()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if message.startswith("window 1/"):
            cancel.set()

    with pytest.raises(Cancelled):
        engine.run(request(volume, folds=[0]), progress=progress, cancel=cancel)
    assert [m for m in seen if m.startswith("window")] == ["window 1/6"]
    deadline = time.monotonic() + 5
    while any("producer" in t.name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any("producer" in t.name for t in threading.enumerate())  # nnunetv2's window feeder finished
    again = engine.run(request(volume, folds=[0]))  # the cached model still runs
    assert again.labels.shape == volume.shape


def test_a_model_read_with_nibabel_reorientation_gets_the_image_as_that_reader_gives_it(tmp_path, volume):
    """plans.json's image_reader_writer NibabelIOWithReorient: compared with nnunetv2's own reader and writer on a
    NIfTI file of the same (flipped, permuted) grid."""
    import nibabel as nib
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIOWithReorient
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folder = tiny.write_folder(tmp_path / "results", reader="NibabelIOWithReorient")
    grid = Geometry(volume.shape, SPACING, (10.0, 20.0, -30.0), ((0, 0, 1), (-1, 0, 0), (0, -1, 0)))
    result = Engine(Registry(extra_dirs=[folder.parent], builtin=False)).run(
        InferenceRequest(array=volume, grid=grid, model_id=MODEL_ID, device="cpu"))
    assert result.provenance.parameters["orientation"].startswith("nibabel closest canonical")

    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), tiny.nifti_affine(grid)), tmp_path / "case_0000.nii.gz")
    io = NibabelIOWithReorient()
    data, props = io.read_images([str(tmp_path / "case_0000.nii.gz")])
    predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=False, device=torch.device("cpu"),
                                allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    seg = predictor.predict_single_npy_array(data, props, None, None, False)
    io.write_seg(seg, str(tmp_path / "case.nii.gz"), props)
    expected = np.asarray(nib.load(tmp_path / "case.nii.gz").dataobj).transpose(2, 1, 0)
    assert not np.array_equal(seg, expected)  # the orientation really differs from the image's
    assert np.array_equal(result.labels, expected)


# --- safety -----------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch "{self.marker}"',)


def test_a_checkpoint_with_a_pickled_payload_is_refused_and_never_runs(tmp_path, volume):
    marker = tmp_path / "MARKER"
    folder = tiny.write_folder(tmp_path / "evil", extra={"payload": Payload(marker)})
    registry = Registry(extra_dirs=[folder.parent], builtin=False)
    with pytest.raises(ModelError, match=r"checkpoint_final.pth: refused to load: the file asks to unpickle Python "
                                         r"objects \(.*system.*\), which could run code on this computer"):
        Engine(registry).run(request(volume))
    assert not marker.exists()
    torch.load(folder / "fold_0" / "checkpoint_final.pth", weights_only=False)  # what nnunetv2's loader does
    assert marker.exists()  # the payload was real


@pytest.mark.parametrize("where, value", [
    ("network_class_name", "subprocess.Popen"),
    ("network_class_name", "dynamic_network_architectures.architectures.unet.torch.load"),  # inside, not a network
    ("nonlin", "os.system"),
    ("nonlin", "torch.nn.functional.leaky_relu"),  # a function, not a building block
])
def test_plans_naming_code_outside_the_network_library_are_refused(tmp_path, volume, where, value):
    folder = tiny.write_folder(tmp_path / where)
    plans = json.loads((folder / "plans.json").read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    if where == "network_class_name":
        arch[where] = value
    else:
        arch["arch_kwargs"][where] = value
    (folder / "plans.json").write_text(json.dumps(plans))
    registry = Registry(extra_dirs=[folder.parent], builtin=False)
    with pytest.raises(ModelError, match=rf"{value!r}; radview only builds networks from"):
        Engine(registry).run(request(volume))


def test_the_manifest_side_imports_neither_torch_nor_nnunetv2(folder):
    code = ("import sys, ai.nnunet_folder as nf, ai.totalseg as ts\n"
            f"m = nf.manifest_from_folder({str(folder)!r}); ts.totalseg_manifests()\n"
            "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'nnunetv2', 'viewer'))\n"
            "print(m.id, bad)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [MODEL_ID, "[]"]
