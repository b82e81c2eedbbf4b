"""A TorchXRayVision-architecture model folder goes through the adapter's preprocessing in the classifier runner
(ai.runners.classifier → ai.runners.xrv_adapter), not the generic resize and normalisation: the display made from the
request's values (its window and MONOCHROME1 inversion from ``options["display"]``, else the image's own range),
[-1024, 1024], a centre-cropped square of the manifest's size, never flipped. Most tests replace TorchXRayVision's
DenseNet by radview's small convnet, so the runner's path is what is tested; the last runs a folder of the real
(untrained) DenseNet-121 end to end, where the xrv extra is installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ai.api import InferenceRequest, ModelError
from ai.registry import load_model_folder
from ai.runners import xrv_adapter
from ai.runners.base import RunContext
from ai.runners.classifier import ClassifierModel, ConvNetClassifier
from radview_base.geometry import Geometry

CLASSES = ("Atelectasis", "Effusion", "Nodule")
MANIFEST = """\
task = "classification"
id = "xrv-test"
name = "XRV test"
version = "0.1"
modality = "DX"
[classification]
classes = [{classes}]
activation = "sigmoid"
[input]
size = [{size}]
[input.normalization]
kind = "scale"
clip = [0.0, 4095.0]
[network]
format = "safetensors"
file = "model.safetensors"
architecture = "xrv-densenet121"
"""


@pytest.fixture
def xrv_folder(tmp_path, monkeypatch):
    """An xrv-architecture folder whose "DenseNet" is radview's convnet (weights of that shape)."""
    from safetensors.torch import save_file

    monkeypatch.setattr(xrv_adapter, "build_densenet",
                        lambda k, **args: ConvNetClassifier(k, dims=2, features=(2,)).eval())

    def make(size=(224, 224)) -> Path:
        folder = tmp_path / f"xrv-{size[0]}x{size[1]}"
        folder.mkdir()
        torch.manual_seed(0)
        save_file(ConvNetClassifier(len(CLASSES), dims=2, features=(2,)).state_dict(),
                  str(folder / "model.safetensors"))
        (folder / "model.toml").write_text(MANIFEST.format(classes=", ".join(f'"{c}"' for c in CLASSES),
                                                           size=", ".join(map(str, size))))
        return folder

    return make


def radiograph_values(rows=300, cols=256) -> np.ndarray:
    """Stored values of a radiograph: brighter towards the bottom, a bright blob in the left third."""
    y, x = np.mgrid[0:rows, 0:cols]
    return (1200 + 4 * y + 1500 * np.exp(-((y - rows / 2) ** 2 + (x - cols / 3) ** 2) / 800.0)).astype(np.uint16)


def request(values, options=None) -> InferenceRequest:
    g = Geometry((1, *values.shape), (1.0, 0.2, 0.2), (0.0, 0.0, 0.0))
    return InferenceRequest(values[None], g, "xrv-test", "cpu", options=options or {}, modality="DX")


def test_display_from_values_windows_inverts_and_keeps_orientation():
    values = radiograph_values()
    auto = xrv_adapter.display_from_values(values)
    assert auto.dtype == np.uint8 and auto.shape == values.shape
    assert auto.min() == 0 and auto.max() == 255  # the image's own range fills the display
    assert auto[-10:].mean() > auto[:10].mean()  # the bottom stays at the bottom
    c, w = 2000.0, 1000.0
    windowed = xrv_adapter.display_from_values(values, (c, w))
    expect = np.rint(np.clip((values.astype(float) - (c - w / 2)) / w * 255, 0, 255)).astype(np.uint8)
    assert np.array_equal(windowed, expect)
    assert np.array_equal(xrv_adapter.display_from_values(values, (c, w), invert=True), 255 - expect)
    assert xrv_adapter.display_options({"display": {"window": [c, w], "invert": True}}) == ((c, w), True)
    for bad in ({"display": "MONOCHROME1"}, {"display": {"invert": "yes"}}, {"display": {"window": [1.0]}},
                {"display": {"window": [10.0, 0.0]}}):
        with pytest.raises(ModelError):
            xrv_adapter.display_options(bad)


def test_the_runner_uses_the_adapters_preprocessing_for_an_xrv_folder(xrv_folder):
    model = ClassifierModel(load_model_folder(xrv_folder()), "cpu")
    assert model.xrv
    values = radiograph_values()
    x, messages = model.prepare(values[None])
    assert messages == []
    # exactly the adapter's preprocessing of the display made from the values (not the manifest's "scale" clip)
    expect = xrv_adapter.preprocess(xrv_adapter.display_from_values(values))
    assert tuple(x.shape) == (1, 1, 224, 224) and x.dtype == torch.float32
    assert np.array_equal(x[0].numpy(), expect)
    assert -1024.0 <= float(x.min()) and float(x.max()) <= 1024.0 and float(x.max() - x.min()) > 1500
    # orientation: never flipped — the bottom stays brighter, the blob stays left of centre
    img = x[0, 0].numpy()
    assert img[-20:].mean() > img[:20].mean()
    assert img[:, :112].mean() > img[:, 112:].mean()
    # a window and MONOCHROME1 from the viewer are what the display uses
    options = {"display": {"window": [2000.0, 1000.0], "invert": True}}
    x_inv, _ = model.prepare(values[None], options)
    shown = xrv_adapter.display_from_values(values, (2000.0, 1000.0), invert=True)
    assert np.array_equal(x_inv[0].numpy(), xrv_adapter.preprocess(shown))

    out = model.run(request(values, options), RunContext(torch.device("cpu"), lambda *_: None))
    c = out.classification
    assert c.classes == CLASSES and c.input_size == (224, 224) and c.activation == "sigmoid"
    assert "TorchXRayVision preprocessing" in c.preprocessing and "inverted (MONOCHROME1)" in c.preprocessing
    assert "window centre 2000, width 1000" in c.preprocessing and "never flipped" in c.preprocessing
    assert out.parameters["display"] == {"window": [2000.0, 1000.0], "invert": True}
    # the same answer as the adapter's own classification() on that display, with the same network
    direct = xrv_adapter.classification(model.net, shown, list(CLASSES))
    assert c.probabilities == pytest.approx(direct.probabilities, abs=1e-6)
    auto = model.run(request(values), RunContext(torch.device("cpu"), lambda *_: None)).classification
    assert "percentile range (no window given)" in auto.preprocessing


def test_an_xrv_folder_must_take_a_square_2d_image(xrv_folder):
    with pytest.raises(ModelError, match="square 2D image"):
        ClassifierModel(load_model_folder(xrv_folder(size=(224, 200))), "cpu")


def test_a_convnet_folder_keeps_the_generic_preprocessing(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from classifier_folders import write_radiograph_classifier

    model = ClassifierModel(load_model_folder(write_radiograph_classifier(tmp_path / "tiny")), "cpu")
    assert not model.xrv and model.preprocessing().startswith("resized as a whole to 32 × 32")


def test_a_torchxrayvision_densenet_folder_runs_end_to_end(tmp_path):
    """The runner with TorchXRayVision's own DenseNet-121, not replaced: untrained weights (``weights=None``, nothing
    downloaded) saved as safetensors in an ``xrv-densenet121`` folder, loaded strictly, run on a radiograph. The saved
    classifier layer answers its bias alone (zero weights: an untrained DenseNet's probabilities are all 0 or 1), so
    the expected probabilities are known without another forward pass; every saved tensor is what the runner holds.
    The folder's input is 64 × 64 to keep the runner's two passes (its load-time probe, the run) light; DenseNet-121
    at 224 × 224 on a real radiograph is tests/ai/test_classifier.py's."""
    import importlib.util

    from safetensors.torch import save_file

    if importlib.util.find_spec("torchxrayvision") is None:
        pytest.skip("the xrv extra is not installed (pip install 'radview[xrv]')")
    xrv = xrv_adapter.import_xrv()
    torch.manual_seed(0)
    net = xrv.models.DenseNet(weights=None, num_classes=len(CLASSES)).eval()
    logits = torch.tensor([-1.5, 0.25, 2.0])
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(logits)
    folder = tmp_path / "xrv-densenet121"
    folder.mkdir()
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    (folder / "model.toml").write_text(MANIFEST.format(classes=", ".join(f'"{c}"' for c in CLASSES),
                                                       size="64, 64"))

    model = ClassifierModel(load_model_folder(folder), "cpu")
    assert model.xrv and type(model.net) is xrv.models.DenseNet and model.net.weights is None
    held = model.net.state_dict()
    assert held.keys() == net.state_dict().keys()
    assert all(torch.equal(held[k], v) for k, v in net.state_dict().items())
    seen = []
    model.net.features.conv0.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    values = radiograph_values()
    c = model.run(request(values), RunContext(torch.device("cpu"), lambda *_: None)).classification
    assert seen == [(1, 1, 64, 64)]  # the whole DenseNet ran on the adapter's input of the folder's size
    assert c.classes == CLASSES and c.input_size == (64, 64) and "resized to 64 × 64" in c.preprocessing
    assert "TorchXRayVision preprocessing" in c.preprocessing
    assert c.probabilities == pytest.approx(torch.sigmoid(logits).tolist(), abs=1e-5)
