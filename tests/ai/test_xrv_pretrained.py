"""TorchXRayVision's pretrained chest radiograph models (ai/xrv_models.py, ai/runners/xrv_pretrained.py): listed when
the package is installed, without importing it; weights absent → a download the user must agree to, never made
here (no network: tests replace TorchXRayVision's download and check it is not called); weights present → run
offline through the registry and engine on a real radiograph, the same probabilities as TorchXRayVision's own
pretrained model; a weights file that would run code is refused before any of it runs.

The weights are made here as TorchXRayVision's files are: ``torch.save`` of a whole DenseNet module (untrained, its
classifier scaled so the probabilities spread), under the exact cache file name in a temporary ``$HOME``.
"""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from reference import data_path

from ai import xrv_models
from ai.api import ModelError
from ai.engine import Engine
from ai.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
ALL = "densenet121-res224-all"

if importlib.util.find_spec("torchxrayvision") is None:
    pytest.skip("the xrv extra is not installed (pip install 'radview[xrv]')", allow_module_level=True)


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    """A fresh home: TorchXRayVision's cache (~/.torchxrayvision/models_data) starts empty; downloads fail loudly."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    from ai.runners import xrv_adapter
    from ai.runners.xrv_pretrained import XrvPretrainedModel

    xrv = xrv_adapter.import_xrv()
    calls: list = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(xrv.models, "get_weights", no_network)
    monkeypatch.setattr(xrv.utils, "download", no_network)
    monkeypatch.setattr(XrvPretrainedModel, "download", staticmethod(no_network))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster on a small shared CPU (measured 0.09 s against 5 s a forward pass)
    yield SimpleNamespace(path=home, download_calls=calls)
    torch.set_num_threads(threads)


def xrv():
    from ai.runners.xrv_adapter import import_xrv

    return import_xrv()


def save_weights(weights: str, seed: int = 0, legacy: bool = False) -> Path:
    """A weights file as TorchXRayVision's: the whole (untrained) DenseNet pickled, at its cache file name; ``legacy``:
    in torch < 1.6's format (not a zip), as TorchXRayVision's 2020 files are (its loader patches them for
    pytorch/pytorch#42242, a torch 1.6 change)."""
    m = xrv_models.model(weights)
    torch.manual_seed(seed)
    net = xrv().models.DenseNet(weights=None, num_classes=len(m.labels)).eval()
    with torch.no_grad():  # untrained logits are huge: scale the classifier so the probabilities are not all 0 or 1
        net.classifier.weight.mul_(0.002)
        net.classifier.bias.normal_(0.0, 1.0)
    path = xrv_models.weights_path(m)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture(scope="module")
def radiograph(tmp_path_factory):
    """RG1_J2KI.dcm (a CR chest radiograph, MONOCHROME1) as the viewer hands a 2D image to the AI."""
    import shutil

    from viewer.core.ai_bridge import volume_from_image
    from viewer.io.dicom_index import scan
    from viewer.io.planar import load_planar

    src = data_path("dicom-objects", "RG1_J2KI.dcm")
    folder = tmp_path_factory.mktemp("rg1")
    shutil.copy(src, folder / src.name)
    entries = [e for e in scan(str(folder)).series if e.planar]
    assert entries, "RG1_J2KI.dcm is not read as a 2D series"
    return volume_from_image(load_planar(entries[0]))


def run(volume, weights=ALL, **options):
    from viewer.core.ai_bridge import request_from_volume

    engine = Engine(Registry(extra_dirs=[]))
    return engine.run(request_from_volume(volume, xrv_models.model(weights).model_id, "cpu", options))


# --- the tables and the cache, against the installed package --------------------------------------------------------
def test_the_models_are_torchxrayvisions_own():
    model_urls = xrv().models.model_urls
    densenets = {k for k, v in model_urls.items() if k.startswith("densenet")}
    assert {m.weights for m in xrv_models.MODELS} == densenets and len(densenets) == 7
    for m in xrv_models.MODELS:
        entry = model_urls[m.weights]
        assert m.labels == tuple(entry["labels"]), m.weights
        assert m.url == entry["weights_url"] and m.file == os.path.basename(entry["weights_url"])
        assert len(m.op_threshs) == len(entry["op_threshs"]) == 18
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(m.op_threshs, entry["op_threshs"]))
        assert entry["input_resolution"] == xrv_models.SIZE
        assert m.classes == tuple(n for n in entry["labels"] if n)
    assert xrv_models.model("densenet121-res224-rsna").classes == ("Pneumonia", "Lung Opacity")
    assert xrv_models.cache_dir() == Path(xrv().utils.get_cache_dir())


# --- (a) no weights: listed, refused without consent, nothing downloaded ---------------------------------------------
def test_without_weights_each_model_is_listed_as_needing_a_download(home, radiograph):
    registry = Registry(extra_dirs=[])
    listed = {m.id: m for m in registry.models() if m.runner == xrv_models.RUNNER}
    assert sorted(listed) == sorted(m.model_id for m in xrv_models.MODELS)
    m = listed["xrv-densenet121-res224-all"]
    assert m.task == "classification" and m.outputs == ("classification",) and m.modalities == ("DX", "CR")
    assert m.classification.classes == xrv_models.model(ALL).classes and len(m.classification.classes) == 18
    assert m.classification.activation == "sigmoid" and m.classification.size == (224, 224)
    assert "Cohen et al." in m.description and "(MIDL) 2022" in m.description and "not a diagnosis" in m.description
    p = m.parameters
    assert p["needs_download"] is True and p["download_by"] == "TorchXRayVision" and p["download_mb"] > 20
    assert xrv_models.model(ALL).url in p["download_note"] and "28 MB" in p["download_note"]
    assert str(home.path / ".torchxrayvision" / "models_data") in p["download_note"]
    assert m.version.endswith("weights not downloaded")

    with pytest.raises(ModelError, match="Agree to the download in the Run AI dialog") as refused:
        run(radiograph)
    assert xrv_models.model(ALL).url in str(refused.value)
    with pytest.raises(ModelError, match="Agree to the download"):
        run(radiograph, allow_download="yes")  # only True is consent
    assert home.download_calls == []
    assert not (home.path / ".torchxrayvision").exists()


def test_with_consent_torchxrayvisions_download_is_what_fetches_the_weights(home, radiograph, monkeypatch):
    """The consent path: radview's download calls TorchXRayVision's ``models.get_weights``, replaced here by one that
    writes the file where TorchXRayVision would (no network)."""
    from ai.runners import xrv_pretrained

    fetched = []

    def get_weights(weights, cache_dir=None):
        fetched.append((weights, cache_dir))
        return str(save_weights(weights))

    monkeypatch.setattr(xrv_pretrained.XrvPretrainedModel, "download", staticmethod(xrv_pretrained.download_weights))
    monkeypatch.setattr(xrv().models, "get_weights", get_weights)
    result = run(radiograph, "densenet121-res224-rsna", allow_download=True)
    assert fetched == [("densenet121-res224-rsna", None)]  # TorchXRayVision's own cache
    assert result.classification.classes == ("Pneumonia", "Lung Opacity")
    assert any("TorchXRayVision downloaded the weights" in msg for msg in result.messages)
    assert home.download_calls == []


# --- (b) weights here: listed as ready, run end to end, TorchXRayVision's own answer ---------------------------------
@pytest.mark.parametrize("weights, legacy", [(ALL, False), (ALL, True), ("densenet121-res224-rsna", False)],
                         ids=["all-zip", "all-legacy", "rsna-zip"])
def test_weights_in_the_cache_run_offline_as_torchxrayvisions_own_model(home, radiograph, weights, legacy,
                                                                        monkeypatch):
    from ai.api import NOT_A_DIAGNOSIS
    from ai.runners import xrv_adapter
    from ai.runners.xrv_pretrained import allowed_globals

    path = save_weights(weights, legacy=legacy)
    m = xrv_models.model(weights)
    if not legacy:  # the allowlist is exactly what a TorchXRayVision DenseNet file names beyond torch's own safe set
        named = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        assert sorted(named) == sorted(f"{c.__module__}.{c.__qualname__}" for c in allowed_globals(xrv())) and named
    manifest = Registry(extra_dirs=[]).get(m.model_id)
    assert manifest.parameters["needs_download"] is False and "download_note" not in manifest.parameters
    assert "not downloaded" not in manifest.version and str(path) in manifest.description

    result = run(radiograph, weights)
    c = result.classification
    assert c.classes == m.classes and len(c.probabilities) == len(m.classes)
    assert all(0.0 <= p <= 1.0 for p in c.probabilities)
    assert len(set(c.probabilities)) > 1  # not a constant answer
    assert c.note == NOT_A_DIAGNOSIS and c.input_size == (224, 224) and "never flipped" in c.preprocessing
    assert result.provenance.model_id == m.model_id and result.provenance.parameters["weights"] == weights
    assert home.download_calls == []

    # the reference: TorchXRayVision's own pretrained model, loading the same file with its own (trusting) loader,
    # on the preprocessed image the runner made (the viewer's window and MONOCHROME1 of RG1)
    monkeypatch.undo()  # TorchXRayVision's get_weights finds the file in the cache: no download
    monkeypatch.setenv("HOME", str(home.path))
    reference = xrv().models.DenseNet(weights=weights).eval()
    assert Path(reference.weights_filename_local) == path
    window, invert = xrv_adapter.display_options({"display": radiograph.meta["display"]})
    assert invert is True  # RG1 is MONOCHROME1
    display = xrv_adapter.display_from_values(radiograph.array[0], window, invert)
    x = torch.from_numpy(xrv_adapter.preprocess(display))[None]
    with torch.no_grad():
        theirs = reference(x)[0].numpy()
    expect = theirs[list(m.outputs)]
    assert np.allclose(c.probabilities, expect, atol=1e-5, rtol=0)


# --- (c) a pickle that would run code is refused, and nothing of it runs ---------------------------------------------
class Payload:
    """What a malicious weights file holds: unpickling it runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("scan_first, legacy", [(True, False), (False, False), (False, True)],
                         ids=["zip-opcode-scan", "zip-restricted-unpickler", "legacy-restricted-pickle"])
def test_a_weights_file_that_would_run_code_is_refused(home, radiograph, tmp_path, monkeypatch, scan_first, legacy):
    from ai.runners import xrv_pretrained

    if not scan_first:  # the second line of defence alone: the restricted unpickler with the allowlist
        monkeypatch.setattr(xrv_pretrained, "unsafe_globals", lambda *_: [])
    marker = tmp_path / "pwned"
    net = xrv().models.DenseNet(weights=None, num_classes=18)
    net.features.payload = Payload(marker)  # hidden inside an otherwise real DenseNet
    path = xrv_models.weights_path(xrv_models.model(ALL))
    path.parent.mkdir(parents=True)
    torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    assert Registry(extra_dirs=[]).get("xrv-densenet121-res224-all").parameters["needs_download"] is False

    with pytest.raises(ModelError, match=r"refused to load: the file names posix\.system") as refused:
        run(radiograph)
    assert "could run code" in str(refused.value)
    assert not marker.exists()
    # the test can fail: TorchXRayVision's own loader (weights_only=False) runs the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_file_of_allowed_parts_that_is_not_a_densenet_is_refused(home, radiograph):
    path = xrv_models.weights_path(xrv_models.model(ALL))
    path.parent.mkdir(parents=True)
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    with pytest.raises(ModelError, match="holds a Sequential, not a TorchXRayVision DenseNet"):
        run(radiograph)
    torch.save(xrv().models.DenseNet(weights=None, num_classes=14), path)  # a DenseNet of the wrong size
    with pytest.raises(ModelError, match="do not fit TorchXRayVision's DenseNet-121 of 18 outputs"):
        run(radiograph)


# --- (d) listing: cheap, and nothing without the package ------------------------------------------------------------
LISTING = """
import sys
{block}
from ai.registry import Registry
ids = [m.id for m in Registry(extra_dirs=[]).models() if m.id.startswith("xrv-")]
print(len(ids), "torch" in sys.modules, sys.modules.get("torchxrayvision") is not None)
"""


@pytest.mark.parametrize("blocked", [False, True], ids=["installed", "not-importable"])
def test_listing_imports_nothing_and_needs_the_package(tmp_path, blocked):
    block = "sys.modules['torchxrayvision'] = None  # import torchxrayvision fails" if blocked else ""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RADVIEW_MODELS_DIR", None)
    out = subprocess.run([sys.executable, "-c", LISTING.format(block=block)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0" if blocked else "7", "False", "False"]


# --- 4. the Run AI dialog asks before TorchXRayVision downloads ------------------------------------------------------
def test_the_run_ai_dialog_offers_the_model_with_the_download_consent(qtbot, tmp_path, radiograph):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QDialogButtonBox

    from viewer.qt.dialogs.ai_dialog import RunAiDialog

    manifests = Registry(extra_dirs=[]).models()
    dialog = RunAiDialog(manifests, radiograph, QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(dialog)
    dialog.show()
    model_id = "xrv-densenet121-res224-all"
    assert dialog.items[model_id].text(4) == "yes"  # enabled for a CR radiograph
    assert dialog.select_model(model_id)
    assert dialog.download_note.isVisible() and dialog.download_consent.isVisible()
    assert dialog.download_consent.text() == ("I agree that TorchXRayVision downloads the weights (about 28 MB) "
                                              "from its servers")
    assert not dialog.buttons.button(QDialogButtonBox.Ok).isEnabled()
    if os.environ.get("RADVIEW_SCREENSHOT_DIR"):
        dialog.grab().save(str(Path(os.environ["RADVIEW_SCREENSHOT_DIR"]) / "run_ai_xrv.png"))
    dialog.download_consent.setChecked(True)
    dialog.accept()
    assert dialog.model_id == model_id and dialog.options == {"allow_download": True}


def test_the_cli_refuses_without_allow_download_and_names_the_flag(home, tmp_path):
    """``radview-cli ai run`` on a radiograph with a model whose weights are absent: refused, the flag named, nothing
    fetched (the fresh HOME: TorchXRayVision's cache stays absent)."""
    src = data_path("dicom-objects", "RG1_J2KI.dcm")
    env = {**os.environ, "HOME": str(home.path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "viewer.cli.main", "ai", "run", str(src), "--model",
                           "xrv-densenet121-res224-all", "--out", str(tmp_path / "out"), "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "--allow-download" in done.stderr and "not on this computer" in done.stderr
    assert not (home.path / ".torchxrayvision").exists()
