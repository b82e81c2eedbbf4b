"""Learned models from a model folder: TorchScript, safetensors, state_dict and ONNX weights through the real runner.

The image grids are anisotropic with permuted and flipped axes, and the models run on their own
orientation and spacing, so every run exercises reorientation, resampling and the way back.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from learned_models import threshold_net, write_model  # noqa: E402

from ai.api import Cancelled, InferenceRequest, ModelError  # noqa: E402
from ai.engine import Engine  # noqa: E402
from ai.registry import Registry, load_model_folder  # noqa: E402
from ai.runners.architectures import UNet3D  # noqa: E402
from ai.runners.base import RunContext  # noqa: E402
from ai.runners.network import NetworkModel  # noqa: E402
from radview_base.geometry import Geometry  # noqa: E402

# x -> S, y -> R (flipped L), z -> A (flipped P): a sagittal-ish stack with two flips
DIRECTION = ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0))
GRID = Geometry((20, 36, 44), (2.5, 0.9, 0.7), (12.0, -40.0, 25.0), DIRECTION)
CENTER = np.array([-3.0, -62.0, 41.0])  # LPS mm, off the volume's centre on every axis
RADIUS = 9.0

def sphere_image(grid: Geometry = GRID) -> tuple[np.ndarray, np.ndarray]:
    k, j, i = np.indices(grid.shape_zyx)
    world = grid.index_to_world(np.stack([k, j, i], -1))
    inside = np.linalg.norm(world - CENTER, axis=-1) <= RADIUS
    return np.where(inside, 200.0, -800.0).astype(np.float32), inside


def request(array, model_id, models=None, **options) -> InferenceRequest:
    """``models``: the folder holding the model's folder, whose TorchScript the user allows to run."""
    allow = {str(models / model_id)} if models is not None else set()
    return InferenceRequest(array=array, grid=GRID, model_id=model_id, device="cpu", options=options,
                            allow_code_in=frozenset(allow))


def dice(a, b) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_threshold_network_lands_on_the_right_voxels_of_a_flipped_anisotropic_grid(tmp_path):
    write_model(tmp_path, "thr", threshold_net(), "torchscript", spacing=(1.5, 1.5, 1.5))
    manifest = load_model_folder(tmp_path / "thr")
    assert manifest.method == "learned network (TorchScript)" and manifest.runner == "network"
    assert manifest.contains_code and manifest.as_dict()["contains_code"] is True
    image, truth = sphere_image()
    result = Engine(Registry(extra_dirs=[tmp_path])).run(request(image, "thr", tmp_path))
    assert result.grid == GRID and result.labels.shape == GRID.shape_zyx
    pred = result.labels == 1
    assert dice(pred, truth) > 0.97, dice(pred, truth)
    centroid = GRID.index_to_world(np.argwhere(pred).mean(0))
    assert np.linalg.norm(centroid - CENTER) < 0.3, centroid
    p = result.provenance.parameters
    assert "reoriented" in p["model_grid"] and "resampled to 1.5 × 1.5 × 1.5 mm" in p["model_grid"]
    assert result.provenance.method == "learned network (TorchScript)"


def test_sliding_window_equals_the_whole_volume_on_a_translation_equivariant_network(tmp_path):
    torch.manual_seed(0)
    net = UNet3D(1, 3, features=(6,), kernel_size=1, norm="none").eval()  # pointwise: translation-equivariant
    write_model(tmp_path, "pw", net, "torchscript", labels={1: "a", 2: "b"}, spacing=(2.0, 1.1, 1.3),
                patch=(5, 11, 13))
    runner = NetworkModel(load_model_folder(tmp_path / "pw"), torch.device("cpu"))
    image, _ = sphere_image()
    image = image + np.random.default_rng(1).normal(0, 300, image.shape).astype(np.float32)
    req = request(image, "pw")
    grid = runner.plan(req)
    assert grid.model_shape != grid.oriented_shape  # resampled
    ctx = RunContext(torch.device("cpu"), lambda f, m: None)
    windows = runner.scores(req, ctx, grid, whole=False, overlap=0.5)
    whole = runner.scores(req, ctx, grid, whole=True)
    assert windows.shape == whole.shape == (3, *grid.model_shape)
    assert float((windows - whole).abs().max()) <= 1e-4
    a = runner.run(req, ctx).labels
    b = runner.run(request(image, "pw", whole_volume=True), ctx).labels
    assert a.shape == GRID.shape_zyx and np.array_equal(a, b)


def test_unet_as_torchscript_and_safetensors_gives_the_same_labels_on_the_input_grid(tmp_path):
    torch.manual_seed(3)
    args = {"in_channels": 1, "out_channels": 3, "features": [4, 8], "strides": [[1, 2, 2]]}
    net = UNet3D(**args).eval()
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor([0.0, 0.05, -0.05]))
    write_model(tmp_path, "ts", net, "torchscript", labels={1: "a", 2: "b"}, spacing=(2.0, 1.2, 1.2),
                patch=(8, 16, 16))
    write_model(tmp_path, "st", net, "safetensors", labels={1: "a", 2: "b"}, spacing=(2.0, 1.2, 1.2),
                patch=(8, 16, 16), args=args)
    write_model(tmp_path, "sd", net, "checkpoint", labels={1: "a", 2: "b"}, spacing=(2.0, 1.2, 1.2),
                patch=(8, 16, 16), args=args)
    engine = Engine(Registry(extra_dirs=[tmp_path]))
    image, _ = sphere_image()
    out = {m: engine.run(request(image, m, tmp_path)) for m in ("ts", "st", "sd")}
    for result in out.values():
        assert result.grid == GRID and result.labels.shape == GRID.shape_zyx and result.labels.dtype == np.uint8
    assert out["st"].provenance.method == "learned network (safetensors)"
    assert len(np.unique(out["ts"].labels)) >= 2
    assert np.mean(out["ts"].labels == out["st"].labels) > 0.999
    assert np.array_equal(out["st"].labels, out["sd"].labels)


def test_onnx_model_matches_torchscript(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    write_model(tmp_path, "ox", threshold_net(), "onnx")
    write_model(tmp_path, "ts", threshold_net(), "torchscript")
    engine = Engine(Registry(extra_dirs=[tmp_path]))
    image, _ = sphere_image()
    a, b = engine.run(request(image, "ox")), engine.run(request(image, "ts", tmp_path))
    assert a.provenance.method == "learned network (ONNX)"
    assert np.array_equal(a.labels, b.labels) and a.labels.any()


class Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_payload_never_runs_and_the_user_reads_why(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    args = {"in_channels": 1, "out_channels": 2, "features": [2]}
    folder = write_model(tmp_path, "evil", UNet3D(**args), "checkpoint", args=args)
    state = dict(UNet3D(**args).state_dict())
    state["extra"] = Payload(str(marker))
    torch.save(state, folder / "weights.pt")
    with pytest.raises(ModelError) as err:
        Engine(Registry(extra_dirs=[tmp_path])).run(request(sphere_image()[0], "evil"))
    text = str(err.value)
    assert "refused to load" in text and "could run code" in text and "safetensors" in text
    assert "\n" not in text
    assert not marker.exists()


def test_mismatched_networks_are_refused_before_inference(tmp_path):
    engine = Engine(Registry(extra_dirs=[tmp_path]))
    write_model(tmp_path, "chan", UNet3D(2, 2, features=(2,)), "torchscript")
    write_model(tmp_path, "labels", UNet3D(1, 2, features=(2,)), "torchscript", labels={1: "a", 2: "b"})
    args = {"in_channels": 1, "out_channels": 2, "features": [4, 8]}
    write_model(tmp_path, "args", UNet3D(**args), "safetensors", args={**args, "features": [4, 16]})
    engine = Engine(Registry(extra_dirs=[tmp_path]))
    seen = []
    image = sphere_image()[0]
    for model_id, words in (("chan", "1-channel patch"), ("labels", "has 2 output channels"),
                            ("args", "do not fit unet3d")):
        with pytest.raises(ModelError, match=words) as err:
            engine.run(request(image, model_id, tmp_path), progress=lambda f, m: seen.append(m))
        assert "\n" not in str(err.value)
    assert not any(m.startswith("window") for m in seen)  # nothing was run on the image


def test_broken_model_folders_are_listed_with_their_reason(tmp_path):
    folder = write_model(tmp_path, "gone", threshold_net(), "torchscript")
    (folder / "model.pt").unlink()
    bad = write_model(tmp_path, "orient", threshold_net(), "torchscript")
    text = (bad / "model.toml").read_text().replace('orientation = "LPS"', 'orientation = "LLS"')
    (bad / "model.toml").write_text(text)
    reg = Registry(extra_dirs=[tmp_path], builtin=False)
    assert reg.ids() == []
    problems = "\n".join(reg.problems)
    assert "weights file 'model.pt' not found" in problems and "orientation" in problems


def test_cancel_stops_between_window_batches(tmp_path):
    write_model(tmp_path, "thr", threshold_net(), "torchscript", patch=(4, 8, 8))
    cancel = threading.Event()
    windows = []

    def progress(fraction, message):
        if message.startswith("window"):
            windows.append(message)
            cancel.set()

    with pytest.raises(Cancelled):
        Engine(Registry(extra_dirs=[tmp_path])).run(request(sphere_image()[0], "thr", tmp_path), progress, cancel)
    total = int(windows[0].split("/")[1])
    assert len(windows) == 1 and total > 10


def test_cli_runs_a_model_folder_and_writes_labels_on_the_input_grid(tmp_path, capsys):
    import SimpleITK as sitk

    from viewer.cli.main import main

    folder = write_model(tmp_path / "models", "thr", threshold_net(), "torchscript")
    image, truth = sphere_image()
    img = sitk.GetImageFromArray(image.astype(np.int16))
    img.SetSpacing(GRID.spacing_zyx[::-1])
    img.SetOrigin(GRID.origin_lps)
    img.SetDirection(np.asarray(GRID.direction).ravel().tolist())
    sitk.WriteImage(img, str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "out"
    assert main(["ai", "run", str(tmp_path / "ct.nii.gz"), "--model-dir", str(folder), "--out", str(out),
                 "--device", "cpu", "--allow-torchscript"]) == 0
    labels = sitk.ReadImage(str(out / "labels.nii.gz"))
    assert np.allclose(labels.GetSpacing(), img.GetSpacing()) and np.allclose(labels.GetOrigin(), img.GetOrigin())
    assert np.allclose(labels.GetDirection(), img.GetDirection(), atol=1e-6)
    assert dice(sitk.GetArrayFromImage(labels) == 1, truth) > 0.97
    import json

    findings = json.loads((out / "findings.json").read_text())
    (blob,) = findings["structures"]
    assert blob["name"] == "blob" and blob["label"] == 1
    assert abs(blob["volume_ml"] - 4 / 3 * np.pi * RADIUS ** 3 / 1000) < 0.1 * 4 / 3 * np.pi * RADIUS ** 3 / 1000
    assert np.linalg.norm(np.array(blob["centroid_lps_mm"]) - CENTER) < 0.5
    mask = sitk.GetArrayFromImage(labels) == 1
    assert abs(blob["diameter_3d_mm"] - 2 * RADIUS) < 2.5
    assert blob["mean_hu"] == pytest.approx(float(image.astype(np.int16)[mask].mean()), abs=1e-3)
    capsys.readouterr()
    assert main(["ai", "run", str(tmp_path / "ct.nii.gz"), "--model-dir", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a model folder" in err and len(err.splitlines()) == 1


def test_channel_argmax_equals_torch_argmax_with_ties():
    from ai.runners.model_grid import channel_argmax

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (4, 5, 6, 7), generator=g).float()  # many ties: the first maximum wins
    assert torch.equal(channel_argmax(scores, 0).long(), scores.argmax(0))
    assert torch.equal(channel_argmax(scores.permute(1, 0, 2, 3), 1).long(), scores.permute(1, 0, 2, 3).argmax(1))


def test_labels_come_back_as_trilinear_resampling_then_argmax():
    import torch.nn.functional as F

    from ai.runners.model_grid import ModelGrid

    scores = torch.randn(3, 20, 30, 40, generator=torch.Generator().manual_seed(1))
    grid = ModelGrid.plan((47, 61, 83), (1.0, 1.0, 1.0), np.eye(3), "", (47 / 20, 61 / 30, 83 / 40))
    assert grid.model_shape == (20, 30, 40)
    full = F.interpolate(scores[None], size=(47, 61, 83), mode="trilinear", align_corners=False)[0].argmax(0)
    assert np.array_equal(grid.labels_to_image(scores), full.numpy())
