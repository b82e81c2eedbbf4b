"""TorchXRayVision's chest radiograph classifiers (the optional extra ``radview[xrv]``).

:func:`preprocess` does what TorchXRayVision's models expect, in radview's own code: the radiograph as
displayed (8-bit display values after the Modality LUT, VOI and MONOCHROME1 inversion, see
``viewer.core.grayscale.render``), scaled from [0, 255] to [-1024, 1024] (``xrv.utils.normalize(img, 255)``),
centre-cropped to a square on its long side (``xrv.datasets.XRayCenterCrop``) and resized to 224 × 224
(``XRayResizer``), never flipped: row 0 stays the top of the image. :func:`build_densenet` builds the DenseNet
architecture with *untrained* weights (``weights=None``); pretrained weights are fetched by TorchXRayVision
only after the user's consent, as for TotalSegmentator, and never in tests. A model folder uses it with
``architecture = "xrv-densenet121"`` and its weights saved as safetensors. :func:`classification` gives the
answer as the typed :class:`ai.api.ClassificationResult` (sigmoid, with :data:`PREPROCESSING` in words).

The runner (:mod:`ai.runners.classifier`) uses this preprocessing, not its generic resize and normalisation, for a
model folder whose ``network.architecture`` is an xrv one (:func:`is_xrv`). What it is given is the request's
pixels, not the display: :func:`display_from_values` makes the 8-bit display from them — with the window and
inversion the viewer sends (``InferenceRequest.options["display"]``: ``{"window": [centre, width], "invert":
bool}``, the window in the request's values, ``invert`` for MONOCHROME1), else the image's own 0.5–99.5 percentile
range, not inverted — and says which in the result's ``preprocessing`` (:func:`preprocessing_text`).

:func:`import_xrv` imports torchvision through :mod:`ai.runners.xrv_import` first: where torchvision's C++ operators
cannot load for this torch (measured: the pinned CPU torch beside the only torchvision wheels, CUDA builds), its
``import`` fails on ``operator torchvision::nms does not exist``; that module defines the operators' schemas (no
working kernels) so that torchvision's Python part, and TorchXRayVision with its plain-PyTorch DenseNet, import. A
torchvision that matches its torch never takes that path.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ai.api import ClassificationResult, ModelError
from ai.runners.xrv_import import import_torchvision

SIZE = 224
RANGE = (-1024.0, 1024.0)
#: what :func:`preprocess` does, in words (a ClassificationResult's ``preprocessing``)
PREPROCESSING = (f"the radiograph as displayed (8-bit: Modality LUT, VOI, MONOCHROME1 inverted), scaled from "
                 f"[0, 255] to [{RANGE[0]:g}, {RANGE[1]:g}], centre-cropped to a square, resized to {SIZE} × {SIZE} "
                 "(bilinear, antialiased), never flipped")


#: the percentiles of the image's values that bound its display when no window is given
AUTO_PERCENTILES = (0.5, 99.5)


def is_xrv(architecture: str) -> bool:
    """A model folder's ``network.architecture`` that names TorchXRayVision's preprocessing (``xrv-...``)."""
    return str(architecture or "").lower().startswith("xrv")


def display_options(options: Mapping[str, Any] | None) -> tuple[tuple[float, float] | None, bool]:
    """``(window (centre, width) or None, invert)`` from a request's ``options["display"]``; ModelError when it is
    malformed."""
    display = (options or {}).get("display")
    if display is None:
        return None, False
    if not isinstance(display, Mapping):
        raise ModelError("options['display'] must be a table: {'window': [centre, width], 'invert': bool}")
    invert = display.get("invert", False)
    if not isinstance(invert, bool):
        raise ModelError("options['display']['invert'] must be true or false")
    window = display.get("window")
    if window is None:
        return None, invert
    try:
        centre, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ModelError("options['display']['window'] must be [centre, width]") from None
    if not (np.isfinite(centre) and np.isfinite(width) and width > 0):
        raise ModelError(f"options['display']['window'] must be finite with a positive width, got {window!r}")
    return (centre, width), invert


def display_from_values(image: np.ndarray, window: tuple[float, float] | None = None,
                        invert: bool = False) -> np.ndarray:
    """A radiograph's values ``(rows, cols)`` as the 8-bit display :func:`preprocess` takes: ``window``
    ``(centre, width)`` mapped linearly onto [0, 255] (clipped), else the values' own 0.5–99.5 percentile range;
    ``invert`` (MONOCHROME1) turns it over. Rows and columns stay where they are."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ModelError(f"a radiograph is one grayscale plane, got shape {img.shape}")
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        raise ModelError("the radiograph holds no finite value")
    if window is not None:
        low, high = window[0] - window[1] / 2.0, window[0] + window[1] / 2.0
    else:
        low, high = (float(v) for v in np.percentile(finite, AUTO_PERCENTILES))
    if high <= low:
        high = low + 1.0
    img = np.nan_to_num(img, nan=low, posinf=high, neginf=low)
    out = np.rint(np.clip((img - low) / (high - low) * 255.0, 0.0, 255.0)).astype(np.uint8)
    return 255 - out if invert else out


def preprocessing_text(window: tuple[float, float] | None, invert: bool, size: int = SIZE) -> str:
    """What the runner's xrv preprocessing did, in words (a ClassificationResult's ``preprocessing``)."""
    shown = (f"window centre {window[0]:g}, width {window[1]:g}" if window is not None else
             f"the image's own {AUTO_PERCENTILES[0]:g}-{AUTO_PERCENTILES[1]:g} percentile range (no window given)")
    return (f"TorchXRayVision preprocessing: the radiograph as 8-bit display values ({shown}"
            f"{', inverted (MONOCHROME1)' if invert else ''}), scaled from [0, 255] to [{RANGE[0]:g}, {RANGE[1]:g}], "
            f"centre-cropped to a square, resized to {size} × {size} (bilinear, antialiased), never flipped")


def import_xrv():
    """The ``torchxrayvision`` module, or a ModelError saying why it cannot be used. torchvision is imported first
    through :func:`ai.runners.xrv_import.import_torchvision`: where its C++ operators cannot load for this torch
    (a CUDA torchvision beside the CPU torch), their schemas are defined, with kernels that only raise, so that its
    Python part, and so TorchXRayVision, imports; the DenseNet needs none of them."""
    try:
        import_torchvision()
        import torchxrayvision as xrv
    except ImportError as exc:
        if exc.name in ("torchxrayvision", "torchvision"):
            raise ModelError("TorchXRayVision models need the package: pip install 'radview[xrv]'") from None
        raise ModelError(f"torchxrayvision does not import: {type(exc).__name__}: {exc}"[:300]) from None
    except Exception as exc:  # e.g. a torchvision built for another torch, failing otherwise
        raise ModelError(f"torchxrayvision does not import: {type(exc).__name__}: {exc}"[:300]) from None
    return xrv


def preprocess(display: np.ndarray, size: int = SIZE, maxval: float = 255.0) -> np.ndarray:
    """Display values ``(rows, cols)`` in [0, maxval] → ``(1, size, size)`` float32 in [-1024, 1024]."""
    img = np.asarray(display)
    if img.ndim != 2:
        raise ModelError(f"a radiograph is one grayscale plane, got shape {img.shape}")
    if img.size == 0 or float(img.max()) > maxval or float(img.min()) < 0:
        raise ModelError(f"display values must lie in [0, {maxval:g}]")
    img = (2.0 * (img.astype(np.float32) / maxval) - 1.0) * 1024.0
    rows, cols = img.shape
    crop = min(rows, cols)
    y0, x0 = rows // 2 - crop // 2, cols // 2 - crop // 2
    img = img[y0:y0 + crop, x0:x0 + crop]
    t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    if crop != size:
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
    return t[0].clamp_(*RANGE).numpy()


def build_densenet(classes: int, **args) -> torch.nn.Module:
    """TorchXRayVision's DenseNet-121 architecture with untrained weights (``weights=None``: nothing downloaded)."""
    xrv = import_xrv()
    args.pop("weights", None)
    net = xrv.models.DenseNet(weights=None, num_classes=classes, **args)
    return net.eval()


def default_pathologies() -> list[str]:
    return list(import_xrv().datasets.default_pathologies)


def classify(net: torch.nn.Module, display: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Sigmoid probabilities of ``net`` on one displayed radiograph, by class name."""
    x = torch.from_numpy(preprocess(display))[None]
    with torch.no_grad():
        out = net(x)
    probs = torch.sigmoid(out.float().reshape(-1)).tolist()
    if len(probs) != len(classes):
        raise ModelError(f"the network returns {len(probs)} scores for {len(classes)} classes")
    return dict(zip(classes, probs))


def classification(net: torch.nn.Module, display: np.ndarray, classes: Sequence[str],
                   thresholds: Sequence[float] = ()) -> ClassificationResult:
    """:func:`classify` as the typed result: sigmoid (multi-label) probabilities, what the network saw."""
    probs = classify(net, display, classes)
    rows, cols = np.asarray(display).shape
    return ClassificationResult(tuple(classes), tuple(round(float(p), 6) for p in probs.values()), "sigmoid",
                                thresholds=tuple(thresholds), preprocessing=PREPROCESSING, input_size=(SIZE, SIZE),
                                image=f"radiograph {cols} × {rows}")
