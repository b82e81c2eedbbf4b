"""Classification model folders: manifest, runner end to end through ``radview-cli ai run``, TorchXRayVision."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ai.api import NOT_A_DIAGNOSIS, ClassificationResult
from ai.registry import ManifestError, load_model_folder
from ai.runners.classifier import ConvNetClassifier

ROOT = Path(__file__).resolve().parents[2]
DICOM_OBJECTS = ROOT.parent / "shared" / "data" / "dicom-objects"

MANIFEST = """\
task = "classification"
id = "tiny-classifier"
name = "Tiny classifier"
version = "0.1"
modality = "{modality}"
[classification]
classes = ["bright", "dark"]
activation = "{activation}"
[input]
size = [{size}]
[input.normalization]
kind = "ct"
clip = [-1000, 1000]
mean = 0.0
std = 1000.0
[network]
format = "{fmt}"
file = "{file}"
{extra}
"""


def write_classifier(folder: Path, fmt="safetensors", activation="softmax", size=(4, 8, 8), modality="CT") -> Path:
    """A folder whose convnet says "bright" for a mean intensity above 0 (1x1 kernels: pooling keeps the mean)."""
    folder.mkdir(parents=True)
    net = ConvNetClassifier(2, dims=len(size), features=(2,))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.features[0].weight.view(2, -1)[:, 0] = torch.tensor([1.0, -1.0])  # centre of the 3x3(x3) kernel
        centre = tuple(1 for _ in size)
        net.features[0].weight.zero_()
        net.features[0].weight[(0, 0, *centre)] = 1.0
        net.features[0].weight[(1, 0, *centre)] = -1.0
        net.head.weight.copy_(torch.tensor([[10.0, -10.0], [-10.0, 10.0]]))
    extra = ""
    if fmt == "safetensors":
        from safetensors.torch import save_file

        name = "model.safetensors"
        save_file(net.state_dict(), str(folder / name))
        extra = 'architecture = "convnet"\n[network.args]\nfeatures = [2]\n'
    else:
        name = "model.pt"
        torch.jit.script(net.eval()).save(str(folder / name))
    (folder / "model.toml").write_text(MANIFEST.format(modality=modality, activation=activation,
                                                       size=", ".join(map(str, size)), fmt=fmt, file=name,
                                                       extra=extra))
    return folder


@pytest.fixture
def volume_file(tmp_path) -> Path:
    import SimpleITK as sitk

    array = np.full((6, 20, 18), 400, dtype=np.int16)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((0.8, 0.9, 2.5))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def cli(*args):
    env = dict(os.environ, RADVIEW_MODELS_DIR="")
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=180, env=env)


def test_classification_manifest_is_parsed_and_checked(tmp_path):
    m = load_model_folder(write_classifier(tmp_path / "m"))
    assert m.task == "classification" and m.runner == "classifier" and m.outputs == ("classification",)
    assert m.classification.classes == ("bright", "dark") and m.classification.size == (4, 8, 8)
    assert m.as_dict()["classification"]["activation"] == "softmax" and not m.contains_code
    bad = tmp_path / "bad"
    write_classifier(bad)
    text = (bad / "model.toml").read_text()
    for old, new, reason in [('activation = "softmax"', 'activation = "relu"', "classification.activation"),
                             ('size = [4, 8, 8]', 'size = [4]', "input.size"),
                             ('architecture = "convnet"', 'architecture = "evil.module"', "network.architecture"),
                             ('file = "model.safetensors"', 'file = "../x.safetensors"', "'..'"),
                             ('task = "classification"', 'task = "regression"', "field 'task'")]:
        (bad / "model.toml").write_text(text.replace(old, new))
        with pytest.raises(ManifestError, match=None) as exc:
            load_model_folder(bad)
        assert reason in str(exc.value)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_ai_run_classifies_a_volume_end_to_end(tmp_path, volume_file, activation):
    folder = write_classifier(tmp_path / "model", activation=activation)
    out = cli("ai", "run", volume_file, "--model-dir", folder, "--out", tmp_path / "out", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "class probabilities" in out.stderr and "bright" in out.stderr and NOT_A_DIAGNOSIS in out.stdout
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert "classification" not in findings["provenance"]["parameters"]  # the typed field, not the stopgap place
    c = findings["classification"]
    assert c["classes"] == ["bright", "dark"] and c["activation"] == activation
    assert ClassificationResult.from_findings(findings).classes == ("bright", "dark")
    p = c["probabilities"]
    assert p[0] > 0.95 and p[1] < 0.05  # mean 400 HU: "bright"
    if activation == "softmax":
        assert sum(p) == pytest.approx(1.0, abs=1e-5)
    assert findings["provenance"]["method"] == "learned network (safetensors)"
    assert findings["note"] == NOT_A_DIAGNOSIS and not (tmp_path / "out" / "labels.nii.gz").exists()


def test_torchscript_classifier_needs_consent(tmp_path, volume_file):
    folder = write_classifier(tmp_path / "ts", fmt="torchscript")
    refused = cli("ai", "run", volume_file, "--model-dir", folder, "--out", tmp_path / "o1", "--device", "cpu")
    assert refused.returncode != 0 and "TorchScript" in refused.stderr
    ok = cli("ai", "run", volume_file, "--model-dir", folder, "--out", tmp_path / "o2", "--device", "cpu",
             "--allow-torchscript")
    assert ok.returncode == 0, ok.stderr


def _radiograph_display(tmp_path):
    import shutil

    from viewer.core import grayscale
    from viewer.io.dicom_index import scan
    from viewer.io.planar import load_planar

    path = DICOM_OBJECTS / "RG1_J2KI.dcm"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    shutil.copy(path, tmp_path / path.name)
    entries = [e for e in scan(str(tmp_path)).series if e.planar]
    if not entries:
        pytest.skip("RG1_J2KI.dcm is not read as a 2D series here")
    series = load_planar(entries[0])
    image = series.images[0]
    return image, grayscale.render(image, 0)


def test_xrv_preprocessing_size_range_and_orientation(tmp_path):
    from ai.runners import xrv_adapter

    image, display = _radiograph_display(tmp_path)
    assert display.dtype == np.uint8 and display.ndim == 2
    x = xrv_adapter.preprocess(display)
    assert x.shape == (1, 224, 224) and x.dtype == np.float32
    assert -1024.0 <= x.min() and x.max() <= 1024.0 and x.max() - x.min() > 500
    # not flipped: the preprocessed image matches the centre-cropped display, not its mirror images
    rows, cols = display.shape
    crop = min(rows, cols)
    sq = display[rows // 2 - crop // 2:rows // 2 - crop // 2 + crop, cols // 2 - crop // 2:cols // 2 - crop // 2 + crop]
    idx = (np.arange(224) * crop / 224 + crop / 448).astype(int)
    small = sq[np.ix_(idx, idx)].astype(float)
    ref = x[0].astype(float)

    def corr(a):
        return np.corrcoef(a.ravel(), ref.ravel())[0, 1]

    assert corr(small) > 0.9
    assert corr(small) > max(corr(small[::-1]), corr(small[:, ::-1]))
    # MONOCHROME1 is respected: the display (dark = low X-ray attenuation) is what the network sees
    if image.display.inverted:
        assert x[0].mean() == pytest.approx((display.mean() / 255 * 2 - 1) * 1024, abs=40)


def _xrv():
    """``(xrv_adapter, torchxrayvision)``; a skip only where the xrv extra is not installed (once it is, TorchXRayVision
    must import: a ModelError fails the test)."""
    import importlib.util

    from ai.runners import xrv_adapter

    if importlib.util.find_spec("torchxrayvision") is None:
        pytest.skip("the xrv extra is not installed (pip install 'radview[xrv]')")
    return xrv_adapter, xrv_adapter.import_xrv()


def test_xrv_preprocessing_matches_torchxrayvisions_own(tmp_path):
    """radview's preprocessing against TorchXRayVision's own transforms on the radiograph: ``xrv.utils.normalize``
    (255), ``XRayCenterCrop``, ``XRayResizer(224)`` (skimage): the same size, range and orientation."""
    xrv_adapter, xrv = _xrv()
    _, display = _radiograph_display(tmp_path)
    ours = xrv_adapter.preprocess(display)
    theirs = xrv.utils.normalize(display, 255)[None]
    theirs = xrv.datasets.XRayResizer(224)(xrv.datasets.XRayCenterCrop()(theirs))
    assert ours.shape == theirs.shape == (1, 224, 224)
    assert -1024.0 <= theirs.min() and theirs.max() <= 1024.0
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.995
    assert np.abs(ours - theirs).mean() < 8.0  # of 2048 (measured 1.9): only the two resamplers differ
    assert np.abs(ours - theirs[:, ::-1]).mean() > 10 * np.abs(ours - theirs).mean()  # not flipped
    assert np.abs(ours - theirs[:, :, ::-1]).mean() > 10 * np.abs(ours - theirs).mean()


def test_xrv_densenet_runs_with_untrained_weights(tmp_path):
    """TorchXRayVision's own DenseNet-121 (``weights=None``: nothing downloaded) on a radiograph from dicom-objects,
    through radview's preprocessing: one probability per default pathology, and the network sees 224 × 224 in
    [-1024, 1024], exactly the adapter's preprocessing of the display."""
    xrv_adapter, xrv = _xrv()
    _, display = _radiograph_display(tmp_path)
    classes = xrv_adapter.default_pathologies()
    assert classes == list(xrv.datasets.default_pathologies) and len(classes) == 18
    net = xrv_adapter.build_densenet(len(classes))
    assert type(net) is xrv.models.DenseNet and net.weights is None and not net.training
    assert net.classifier.out_features == len(classes)
    seen = []
    hook = net.features.conv0.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        probs = xrv_adapter.classify(net, display, classes)
    finally:
        hook.remove()
    assert list(probs) == classes
    assert all(np.isfinite(p) and 0.0 <= p <= 1.0 for p in probs.values())
    (x,) = seen
    assert tuple(x.shape) == (1, 1, 224, 224)
    assert -1024.0 <= float(x.min()) and float(x.max()) <= 1024.0 and float(x.max() - x.min()) > 500
    assert np.array_equal(x[0].numpy(), xrv_adapter.preprocess(display))


def test_xrv_classification_is_the_typed_result(tmp_path):
    """The adapter's preprocessing and answer as an ``ai.api.ClassificationResult`` (any network of its input: here
    radview's small convnet, since TorchXRayVision's own may not import)."""
    from ai.api import ClassificationResult
    from ai.runners import xrv_adapter

    _, display = _radiograph_display(tmp_path)
    classes = ["Effusion", "Nodule", "Pneumothorax"]
    net = ConvNetClassifier(len(classes), dims=2, features=(2,)).eval()
    c = xrv_adapter.classification(net, display, classes)
    assert isinstance(c, ClassificationResult) and c.classes == tuple(classes) and c.activation == "sigmoid"
    assert c.input_size == (224, 224) and "224 × 224" in c.preprocessing and "never flipped" in c.preprocessing
    assert c.image == f"radiograph {display.shape[1]} × {display.shape[0]}"
    assert dict(zip(c.classes, c.probabilities)) == pytest.approx(xrv_adapter.classify(net, display, classes),
                                                                   abs=1e-6)
