"""TotalSegmentator tasks: listed when their weights are here (or the package can download them), run through
the same nnU-Net runner with TotalSegmentator's input handling, refused without the user's consent to download.

TotalSegmentator itself is not installed here (it would change the environment), so:
* the weights are a tiny real nnU-Net folder laid out under the real task folder name;
* the reference is TotalSegmentator's pipeline for a task (``nnUNet_predict_image``) written out with nibabel
  images as TotalSegmentator writes it, around nnunetv2's own predictor;
* "installed" is a stand-in ``totalsegmentator`` package on sys.path whose ``libs.download_pretrained_weights``
  unpacks a prepared folder where TotalSegmentator would (no network in tests).
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tiny_nnunet as tiny
import torch
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from scipy import ndimage

from ai import totalseg
from ai.api import InferenceRequest, ModelError
from ai.engine import Engine
from ai.registry import Registry
from ai.runners.nnunet import RasCanonical, body_cleanup
from radview_base.geometry import Geometry

BODY_FAST = totalseg.task("body_fast")
BODY_LABELS = {"background": 0, "body_trunc": 1, "body_extremities": 2}
# a coronal-like grid: x to the patient's left, y downwards (inferior), z toward the back
DIRECTION = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
SPACING = (5.0, 3.0, 3.2)


@pytest.fixture(autouse=True)
def no_totalseg_anywhere(monkeypatch, tmp_path):
    """No weights and no package unless a test adds them (the real ~/.totalsegmentator is never looked at)."""
    for var in ("RADVIEW_TOTALSEG_WEIGHTS", "TOTALSEG_WEIGHTS_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "totalseg_home"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster on a small shared CPU; both sides run the same way
    yield
    torch.set_num_threads(before)
    for name in [m for m in sys.modules if m.split(".")[0] == "totalsegmentator"]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def body_fast_weights(tmp_path_factory) -> Path:
    """A TotalSegmentator-like weights folder holding a tiny model under the body_fast task's real folder name."""
    root = tmp_path_factory.mktemp("totalseg_weights")
    tiny.write_folder(root, dataset=BODY_FAST.dataset, trainer=BODY_FAST.trainer, labels=BODY_LABELS,
                      spacing=(6.0, 6.0, 6.0), patch=(16, 16, 16))
    return root


def registry_with_totalseg() -> Registry:
    registry = Registry(extra_dirs=[], builtin=False)
    for m in totalseg.totalseg_manifests():  # the hook the registry gets
        registry._models.setdefault(m.id, m)
    return registry


def request(volume, **options) -> InferenceRequest:
    grid = Geometry(volume.shape, SPACING, (100.0, -50.0, 20.0), DIRECTION)
    return InferenceRequest(array=volume, grid=grid, model_id=BODY_FAST.model_id, device="cpu", options=options)


def totalseg_reference(folder: Path, req: InferenceRequest, t) -> np.ndarray:
    """TotalSegmentator's nnUNet_predict_image for a single-model task, with nibabel images as it does it."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    img_in_orig = nib.Nifti1Image(req.array.transpose(2, 1, 0).astype(np.float64), tiny.nifti_affine(req.grid))
    img_in = nib.as_closest_canonical(img_in_orig)
    r = t.resample_mm
    zoom = np.array(img_in.header.get_zooms()) / r
    data = ndimage.zoom(img_in.get_fdata(), zoom, order=3).astype(np.int32)  # change_spacing(order=3, int32)
    predictor = nnUNetPredictor(tile_step_size=t.step_size, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    # nnU-Net reads the saved NIfTI as (z, y, x) with spacing (z, y, x)
    seg = predictor.predict_single_npy_array(data.transpose(2, 1, 0)[None].astype(np.float32), {"spacing": [r] * 3},
                                             None, None, False).transpose(2, 1, 0)
    # body post-processing: largest trunk blob; extremity blobs of 50000 mm³ or less removed
    blobs, _ = ndimage.label(seg == 1)
    if blobs.max() > 1:
        largest = np.argmax(np.bincount(blobs.ravel())[1:]) + 1
        seg[(blobs > 0) & (blobs != largest)] = 0
    blobs, _ = ndimage.label(seg == 2)
    counts = np.bincount(blobs.ravel())
    small = np.nonzero(counts <= 50000 / r ** 3)[0]
    seg[np.isin(blobs, small[small > 0])] = 0
    back = ndimage.zoom(seg.astype(np.float64), np.array(img_in.shape) / np.array(seg.shape), order=0)
    img_pred = nib.Nifti1Image(back.astype(np.uint8), img_in.affine)
    undo = ornt_transform(axcodes2ornt("RAS"), io_orientation(img_in_orig.affine))  # undo_canonical
    out = img_pred.as_reoriented(undo)
    assert np.allclose(out.affine, img_in_orig.affine)
    return np.asarray(out.dataobj).astype(np.uint8).transpose(2, 1, 0)


# --- orientation and clean-up ---------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [np.eye(3), DIRECTION, ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
                                       ((0.96, 0.28, 0), (-0.28, 0.96, 0), (0, 0, 1))])  # the last one oblique
def test_the_canonical_orientation_is_nibabels_and_is_exactly_undone(direction):
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    grid = Geometry(vol.shape, (2.0, 0.7, 0.9), (3.0, -4.0, 5.0), direction)
    canonical = RasCanonical(grid)
    expected = nib.as_closest_canonical(nib.Nifti1Image(vol.transpose(2, 1, 0), tiny.nifti_affine(grid)))
    assert np.array_equal(canonical.forward(vol), np.asarray(expected.dataobj).transpose(2, 1, 0))
    assert np.allclose(canonical.spacing_zyx, expected.header.get_zooms()[::-1])
    assert np.array_equal(canonical.backward(canonical.forward(vol)), vol)


def test_body_clean_up_keeps_the_largest_trunk_and_drops_small_limb_blobs():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[2:20, 2:20, 2:20] = 1  # the trunk
    labels[25:28, 25:28, 25:28] = 1  # a stray trunk blob
    labels[2:20, 24:29, 2:10] = 2  # an arm: 18 * 5 * 8 = 720 voxels
    labels[25:28, 2:5, 25:28] = 2  # 27 voxels
    out = body_cleanup(labels, voxel_mm3=1.5 ** 3, trunk=1, extremities=2)  # 50 ml = 14815 voxels of 1.5 mm
    assert (out[2:20, 2:20, 2:20] == 1).all() and not out[25:28, 25:28, 25:28].any()
    assert not (out == 2).any()
    out = body_cleanup(labels, voxel_mm3=6.0 ** 3, trunk=1, extremities=2)  # 50 ml = 231 voxels of 6 mm
    assert (out[2:20, 24:29, 2:10] == 2).all() and not out[25:28, 2:5, 25:28].any()


# --- listing and running ---------------------------------------------------------------------------------------
def test_without_weights_and_without_the_package_no_task_is_listed():
    assert not totalseg.package_installed()
    assert totalseg.totalseg_manifests() == []


def test_a_task_whose_weights_are_here_is_listed_and_runs_like_totalsegmentator(monkeypatch, body_fast_weights):
    monkeypatch.setenv("RADVIEW_TOTALSEG_WEIGHTS", str(body_fast_weights))
    manifests = totalseg.totalseg_manifests()
    assert [m.id for m in manifests] == ["totalseg-body-fast"]
    m = manifests[0]
    assert m.name == "TotalSegmentator body, fast (6 mm)" and m.runner == "totalseg"
    assert m.labels == {1: "body_trunc", 2: "body_extremities"} and m.modality == "CT"
    assert m.parameters["needs_download"] is False and m.parameters["folds"] == [0]
    folder = body_fast_weights / BODY_FAST.dataset / BODY_FAST.folder_name
    assert m.path == str(folder.resolve()) and "Wasserthal" in m.description

    volume = tiny.ct_volume()
    req = request(volume)
    result = Engine(registry_with_totalseg()).run(req)
    expected = totalseg_reference(folder, req, BODY_FAST)
    assert result.labels.shape == volume.shape and np.array_equal(result.labels, expected)
    assert len(np.unique(result.labels)) >= 2  # not a trivially empty comparison
    p = result.provenance.parameters
    assert p["task"] == "body_fast" and p["task_id"] == 300 and p["resample_mm"] == 6.0
    assert p["orientation"].startswith("RAS") and p["weights"] == str(folder.resolve())


STAND_IN = '''
"""Stand-in for TotalSegmentator's libs.download_pretrained_weights (tests have no network): it unpacks a
prepared weights folder where TotalSegmentator's config.get_weights_dir() says."""
import os
import shutil
from pathlib import Path


def download_pretrained_weights(task_id):
    dst = Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    with open(dst.parent / "downloads.txt", "a") as fh:
        fh.write(f"{task_id}\\n")
    for src in Path(os.environ["STAND_IN_SOURCE"]).glob(f"Dataset{task_id:03d}_*"):
        shutil.copytree(src, dst / src.name)
'''


@pytest.fixture
def totalseg_package(tmp_path, monkeypatch, body_fast_weights):
    package = tmp_path / "site" / "totalsegmentator"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "libs.py").write_text(textwrap.dedent(STAND_IN))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    weights = tmp_path / "downloaded" / "nnunet" / "results"
    weights.mkdir(parents=True)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(weights))
    monkeypatch.setenv("STAND_IN_SOURCE", str(body_fast_weights))
    return weights


def test_with_the_package_tasks_are_listed_and_download_only_with_consent(totalseg_package):
    weights = totalseg_package
    assert totalseg.package_installed()
    manifests = {m.id: m for m in totalseg.totalseg_manifests()}
    assert sorted(manifests) == ["totalseg-body", "totalseg-body-fast", "totalseg-total-fast", "totalseg-total-fastest"]
    m = manifests["totalseg-body-fast"]
    assert m.parameters["needs_download"] is True and m.version == "weights not downloaded"
    assert m.parameters["download_note"].startswith("The weights of TotalSegmentator's 'body_fast' model "
                                                   "(nnU-Net task 300) are not on this computer.")
    assert str(weights) in m.parameters["download_note"]
    assert len(manifests["totalseg-total-fast"].labels) == 117
    assert manifests["totalseg-total-fast"].labels[1] == "spleen"
    assert manifests["totalseg-total-fast"].labels[117] == "costal_cartilages"

    engine = Engine(registry_with_totalseg())
    volume = tiny.ct_volume()
    with pytest.raises(ModelError, match=r"TotalSegmentator body, fast \(6 mm\): The weights of TotalSegmentator's "
                                         r"'body_fast' model .* are not on this computer\. .*Agree to the download"):
        engine.run(request(volume))
    assert not (weights.parent / "downloads.txt").exists()  # nothing was fetched without consent

    result = engine.run(request(volume, allow_download=True))
    assert (weights.parent / "downloads.txt").read_text() == "300\n"
    folder = weights / BODY_FAST.dataset / BODY_FAST.folder_name
    assert result.messages == (f"TotalSegmentator downloaded the weights into {folder}",)
    assert np.array_equal(result.labels, totalseg_reference(folder, request(volume), BODY_FAST))
    again = engine.run(request(volume))  # the weights are here now: no consent needed, no second download
    assert np.array_equal(again.labels, result.labels) and again.messages == ()
    assert (weights.parent / "downloads.txt").read_text() == "300\n"
    listed = {m.id: m for m in totalseg.totalseg_manifests()}["totalseg-body-fast"]
    assert listed.parameters["needs_download"] is False
