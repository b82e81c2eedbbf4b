"""TorchXRayVision's pretrained chest radiograph classifiers as radview models (no torch, no torchxrayvision here).

TorchXRayVision (Cohen et al., MIDL 2022; github.com/mlmed/torchxrayvision) ships DenseNet-121 models trained on
public chest radiograph datasets (``torchxrayvision.models.model_urls``). radview lists them when the package is
installed (``pip install 'radview[xrv]'``; found with ``importlib.util.find_spec``, not imported) and runs them with
its own runner, :class:`ai.runners.xrv_pretrained.XrvPretrainedModel`: TorchXRayVision's preprocessing
(:mod:`ai.runners.xrv_adapter`), the weights loaded without running pickled code, the answer one probability per
pathology the model was trained on (its empty ``""`` outputs are left out), calibrated as TorchXRayVision's own
model gives them (sigmoid, then its operating-point normalisation: each pathology's threshold maps to 0.5).

Where the weights are: TorchXRayVision's cache, ``~/.torchxrayvision/models_data/<file>`` (``utils.get_cache_dir``;
the file is the last part of the model's ``weights_url``, as ``models.get_weights`` names it; ``~`` is the user's
home, ``$HOME``). TorchXRayVision has no environment setting for that folder, so neither has radview. A model whose
file is there runs offline; otherwise it is listed with ``parameters["needs_download"] = True`` and a
``download_note`` (size and source), and running it is refused unless the request's options carry
``allow_download = True`` (the user agreed in the Run AI dialog); then TorchXRayVision's own
``models.get_weights`` fetches the file.

The tables below are copied from the installed torchxrayvision 1.5.7 (``model_urls``); a test checks them against
the package.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

from ai import weights_download
from ai.api import NOT_A_DIAGNOSIS, ModelError
from ai.classification import ClassificationSpec
from ai.manifest import ModelManifest

RUNNER = "xrv-pretrained"  # ai.runners.xrv_pretrained:XrvPretrainedModel (see ai.runner_names)
CITATION = ("Cohen et al., TorchXRayVision: A library of chest X-ray datasets and models, "
            "Medical Imaging with Deep Learning (MIDL) 2022")
#: chest radiographs, digital or computed (ai.engine and the Run AI dialog accept either)
MODALITY = "DX,CR"
SIZE = 224
RELEASE = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
#: a DenseNet-121 of 18 outputs pickled whole (torch.save of the module): 28,465,623 bytes measured here
DOWNLOAD_MB = 28.5

_ALL = ("Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion",
        "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
        "Lung Opacity", "Enlarged Cardiomediastinum")
_NAN = float("nan")


def _only(*names: str) -> tuple[str, ...]:
    """The 18 outputs with only ``names`` kept (the others are TorchXRayVision's empty ``""``)."""
    return tuple(n if n in names else "" for n in _ALL)


_CHEX = _only("Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia", "Cardiomegaly",
              "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum")


@dataclass(frozen=True)
class XrvModel:
    """One of TorchXRayVision's pretrained DenseNets (``model_urls[weights]``)."""

    weights: str  # TorchXRayVision's name, e.g. "densenet121-res224-all"
    file: str  # the weights_url's last part: the file name in the cache
    trained_on: str
    labels: tuple[str, ...]  # the 18 outputs, "" where the model was not trained
    op_threshs: tuple[float, ...]

    @property
    def model_id(self) -> str:
        return "xrv-" + self.weights.replace("_", "-")

    @property
    def url(self) -> str:
        return RELEASE + self.file

    @property
    def classes(self) -> tuple[str, ...]:
        """The pathologies it answers (its non-empty outputs, in order)."""
        return tuple(n for n in self.labels if n)

    @property
    def outputs(self) -> tuple[int, ...]:
        """Which of the network's 18 outputs are :attr:`classes`."""
        return tuple(i for i, n in enumerate(self.labels) if n)

    @property
    def title(self) -> str:
        return f"TorchXRayVision DenseNet-121 ({self.trained_on})"


MODELS = (
    XrvModel("densenet121-res224-all",
             "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "All datasets", _ALL,
             (0.07422872, 0.038290843, 0.09814756, 0.0098118475, 0.023601074, 0.0022490358, 0.010060724, 0.103246614,
              0.056810737, 0.026791653, 0.050318155, 0.023985857, 0.01939503, 0.042889766, 0.053369623, 0.035975814,
              0.20204692, 0.05015312)),
    XrvModel("densenet121-res224-nih", "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "NIH ChestX-ray14", _ALL[:14] + ("",) * 4,
             (0.039117552, 0.0034529066, 0.11396341, 0.0057298196, 0.00045666535, 0.0018880932, 0.012037827,
              0.038744126, 0.0037213727, 0.014730946, 0.016149804, 0.054241467, 0.037198864, 0.0004403434,
              _NAN, _NAN, _NAN, _NAN)),
    XrvModel("densenet121-res224-pc", "pc-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "PadChest", _ALL[:14] + ("", "Fracture", "", ""),
             (0.031012505, 0.013347598, 0.081435576, 0.001262615, 0.002587246, 0.0035944257, 0.0023071, 0.055412333,
              0.044385884, 0.042766232, 0.043258056, 0.037629247, 0.005658899, 0.0091741895, _NAN, 0.026507627,
              _NAN, _NAN)),
    XrvModel("densenet121-res224-chex", "chex-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "CheXpert", _CHEX,
             (0.1988969, 0.05710573, _NAN, 0.0531293, 0.1435217, _NAN, _NAN, 0.27212676, 0.07749717, _NAN,
              0.19712369, _NAN, _NAN, _NAN, 0.09932402, 0.09273402, 0.3270967, 0.10888247)),
    XrvModel("densenet121-res224-rsna", "kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "RSNA Pneumonia Challenge", _only("Pneumonia", "Lung Opacity"),
             (_NAN,) * 8 + (0.13486601,) + (_NAN,) * 7 + (0.13511065, _NAN)),
    XrvModel("densenet121-res224-mimic_nb", "mimic_nb-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "MIMIC-CXR, NegBio labels", _CHEX,
             (0.08558747, 0.011884617, _NAN, 0.0040595434, 0.010733786, _NAN, _NAN, 0.118761964, 0.022924708, _NAN,
              0.06358637, _NAN, _NAN, _NAN, 0.022143636, 0.017476924, 0.1258702, 0.014020768)),
    XrvModel("densenet121-res224-mimic_ch", "mimic_ch-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
             "MIMIC-CXR, CheXpert labels", _CHEX,
             (0.09121389, 0.010573786, _NAN, 0.005023008, 0.003698257, _NAN, _NAN, 0.08001232, 0.037242252, _NAN,
              0.05006329, _NAN, _NAN, _NAN, 0.019866971, 0.03823637, 0.11303808, 0.0069147074)),
)


def model(weights: str) -> XrvModel:
    for m in MODELS:
        if m.weights == weights:
            return m
    raise ModelError(f"unknown TorchXRayVision model '{weights}' (known: {', '.join(m.weights for m in MODELS)})")


# --- where the weights are ------------------------------------------------------------------------------------
def package_installed() -> bool:
    return weights_download.package_installed("torchxrayvision")


def package_version() -> str:
    try:
        return metadata.version("torchxrayvision")
    except metadata.PackageNotFoundError:
        return ""


def cache_dir() -> Path:
    """TorchXRayVision's ``utils.get_cache_dir()``: ``~/.torchxrayvision/models_data``."""
    return Path(os.path.expanduser(os.path.join("~", ".torchxrayvision", "models_data")))


def weights_path(m: XrvModel) -> Path:
    """Where ``models.get_weights(m.weights)`` keeps the file (present or not)."""
    return cache_dir() / m.file


def find_weights(m: XrvModel) -> Optional[Path]:
    path = weights_path(m)
    return path if path.is_file() else None


def download_note(m: XrvModel) -> str:
    return (f"The weights of TorchXRayVision's '{m.weights}' model are not on this computer. TorchXRayVision "
            f"downloads them (about {DOWNLOAD_MB:.0f} MB) from {m.url} into {cache_dir()}.")


def download_weights(m: XrvModel, xrv) -> Path:
    """TorchXRayVision's own download (``xrv.models.get_weights``, into its cache; ``xrv`` the imported
    ``torchxrayvision``, which only a runner imports); the file."""
    try:
        xrv.models.get_weights(m.weights)
    except Exception as exc:  # noqa: BLE001 - network, disk or TorchXRayVision errors: one line for the user
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelError(f"TorchXRayVision could not download the weights of '{m.weights}': "
                         f"{type(exc).__name__}: {first}") from None
    path = find_weights(m)
    if path is None:
        raise ModelError(f"TorchXRayVision's download of '{m.weights}' finished, but {weights_path(m)} is not there")
    return path


# --- manifests -------------------------------------------------------------------------------------------------
def manifest_for(m: XrvModel, path: Optional[Path]) -> ModelManifest:
    """The model's manifest: ready when its weights file is in the cache, else one that needs a download."""
    where = f" Weights: {path}." if path is not None else ""
    description = (f"TorchXRayVision's pretrained DenseNet-121 '{m.weights}' (training data: {m.trained_on}): one "
                   f"probability per pathology ({', '.join(m.classes)}), as TorchXRayVision calibrates them (each "
                   f"pathology's operating point maps to 0.5). Chest radiographs, frontal views. Cite: {CITATION}. "
                   f"{NOT_A_DIAGNOSIS}.{where}")
    parameters = {"weights": m.weights, "file": str(weights_path(m)), "source": m.url, "needs_download": path is None,
                  "calibration": "TorchXRayVision op_norm (operating point -> 0.5)"}
    if path is None:
        parameters.update(download_note=download_note(m), download_by="TorchXRayVision", download_mb=DOWNLOAD_MB)
    version = package_version()
    return ModelManifest(
        id=m.model_id, name=m.title,
        version=(f"torchxrayvision {version}" if version else "torchxrayvision")
        + ("" if path is not None else ", weights not downloaded"),
        modality=MODALITY, method="learned network (TorchXRayVision DenseNet-121, pretrained)",
        description=description, runner=RUNNER, labels={}, outputs=("classification",),
        parameters=parameters,
        classification=ClassificationSpec(m.classes, "sigmoid", (SIZE, SIZE), thresholds=(0.5,) * len(m.classes)),
    )


def xrv_manifests(problems: Optional[list] = None) -> list[ModelManifest]:
    """The pretrained TorchXRayVision models, when the package is installed (nothing else is imported)."""
    if not package_installed():
        return []
    return [manifest_for(m, find_weights(m)) for m in MODELS]
