"""Run a classification model folder (``task = "classification"``; see :mod:`ai.classification`).

Steps per run: the image (a 2D radiograph is a one-slice volume) is resized as a whole to ``input.size``
(bilinear for 2D, trilinear for 3D; a 3D series given to a 2D model is represented by its middle slice,
and the result says so), normalised as the manifest says, and passed once through the network; the
``(1, K)`` output becomes probabilities (sigmoid for multi-label, softmax for single-label, unless the
network already returns probabilities). Loading checks the network on a zero image of ``input.size``.
A folder whose ``network.architecture`` is TorchXRayVision's (``xrv-densenet121``) is prepared as TorchXRayVision
prepares a radiograph instead (:mod:`ai.runners.xrv_adapter`: 8-bit display values — the window and inversion of
``request.options["display"]``, else the image's own range —, scaled to [-1024, 1024], centre-cropped to a square,
resized to its square ``input.size``, never flipped); the manifest's normalisation is not used then.

The probabilities travel as a typed :class:`ai.api.ClassificationResult` (``RunOutput.classification``, then
``InferenceResult.classification``: classes, probabilities, activation, thresholds and what the network saw),
and in a message that ``radview-cli ai run`` prints; the provenance parameters keep what was used (input size,
normalisation).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ai.api import NOT_A_DIAGNOSIS, ClassificationResult, InferenceRequest, ModelError
from ai.classification import ClassificationSpec
from ai.network_spec import NetworkSpec
from ai.runners import xrv_adapter
from ai.runners.base import RunContext, RunOutput
from ai.runners.network import normalize


class ConvNetClassifier(nn.Module):
    """radview's small classifier: (conv 3, ReLU, max-pool 2) per feature width, global average, linear."""

    def __init__(self, classes: int, dims: int = 2, in_channels: int = 1, features: Sequence[int] = (8, 16)):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if not features or any(int(f) < 1 for f in features):
            raise ValueError("features must be a non-empty list of positive widths")
        conv, pool, gap = ((nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d) if dims == 2
                           else (nn.Conv3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d))
        layers: list[nn.Module] = []
        c = in_channels
        for f in features:
            layers += [conv(c, int(f), 3, padding=1), nn.ReLU(inplace=True), pool(2, ceil_mode=True)]
            c = int(f)
        self.features = nn.Sequential(*layers)
        self.pool = gap(1)
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def build_classifier(name: str, args: Mapping[str, Any], spec: ClassificationSpec) -> nn.Module:
    """An architecture by name for ``spec``'s classes and dimensions; wrong arguments give a ModelError."""
    args = dict(args)
    try:
        if name == "convnet":
            unknown = set(args) - {"features", "in_channels"}
            if unknown:
                raise TypeError(f"unknown argument(s) {', '.join(sorted(unknown))}")
            return ConvNetClassifier(len(spec.classes), dims=spec.dims, **args)
        if name == "xrv-densenet121":
            from ai.runners.xrv_adapter import build_densenet

            return build_densenet(len(spec.classes), **args)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{name}: bad [network.args]: {exc}") from None
    raise ModelError(f"unknown classifier architecture {name!r}")


def load_classifier(spec: NetworkSpec, cls: ClassificationSpec, device: torch.device) -> Callable:
    """The network as a callable on ``(B, 1, *size)`` batches; weights loaded without unpickling objects."""
    from ai.runners import safe_load

    if spec.format == "torchscript":
        return safe_load.load_torchscript(spec.file, map_location=device)
    if spec.format == "onnx":
        return OnnxClassifier(spec.file)
    net = build_classifier(spec.architecture, spec.args, cls)
    state = safe_load.load_state_dict(spec.file, map_location="cpu")
    safe_load.load_into(net, state, f"{spec.architecture} with these [network.args]")
    return net.to(device).eval()


class OnnxClassifier:
    """An onnxruntime session (CPU) called like a torch module on ``(B, 1, *size)`` batches."""

    def __init__(self, path: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("ONNX models need onnxruntime: pip install 'radview[onnx]'") from None
        try:
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"not a loadable ONNX model: {str(exc).splitlines()[0][:200]}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"the ONNX model takes {len(inputs)} inputs; radview feeds one image")
        self.input_name = inputs[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: batch.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(batch.device)


def resize(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(y, x)`` or ``(z, y, x)`` float image → ``(1, 1, *size)``, resized as a whole (no crop, no flip)."""
    x = image[None, None].float()
    if tuple(x.shape[2:]) == tuple(size):
        return x
    mode = "bilinear" if image.ndim == 2 else "trilinear"
    return torch.nn.functional.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


def probabilities(out: torch.Tensor, activation: str, output: str) -> np.ndarray:
    """``(1, K)`` network output → K probabilities."""
    out = out.detach().float().reshape(-1)
    if output == "logits":
        out = torch.sigmoid(out) if activation == "sigmoid" else torch.softmax(out, dim=0)
    return out.clamp(0.0, 1.0).cpu().numpy().astype(np.float64)


def describe(classes: Sequence[str], probs: Sequence[float], activation: str) -> str:
    kind = "multi-label, sigmoid" if activation == "sigmoid" else "single-label, softmax"
    pairs = ", ".join(f"{c} {p:.3f}" for c, p in sorted(zip(classes, probs), key=lambda cp: -cp[1]))
    return f"class probabilities ({kind}): {pairs} ({NOT_A_DIAGNOSIS})"


class ClassifierModel:
    """Runner ``classifier``: manifests with ``task = "classification"``."""

    def __init__(self, manifest, device: torch.device):
        if manifest.classification is None or manifest.network is None:
            raise ModelError(f"{manifest.name}: its manifest is not a classification model (task, [network])")
        self.manifest = manifest
        self.cls: ClassificationSpec = manifest.classification
        self.spec: NetworkSpec = manifest.network
        self.device = torch.device(device)
        #: TorchXRayVision's own preprocessing (ai.runners.xrv_adapter), not the generic resize and normalisation
        self.xrv = xrv_adapter.is_xrv(self.spec.architecture)
        if self.xrv and (self.cls.dims != 2 or self.cls.size[0] != self.cls.size[1]):
            raise ModelError(f"{manifest.name}: a TorchXRayVision model takes a square 2D image; its manifest's "
                             f"input.size is {list(self.cls.size)} (use [224, 224])")
        self.net = load_classifier(self.spec, self.cls, self.device)
        self._check_on_a_test_image()

    def _check_on_a_test_image(self) -> None:
        probe = torch.zeros((1, 1, *self.cls.size), device=self.device)
        try:
            with torch.no_grad():
                out = self.net(probe)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.manifest.name}: the network does not accept a 1-channel image of "
                             f"{' × '.join(map(str, self.cls.size))}: {first}") from None
        k = len(self.cls.classes)
        if tuple(out.shape) != (1, k):
            raise ModelError(f"{self.manifest.name}: the network returns shape {tuple(out.shape)}; its manifest "
                             f"lists {k} classes, so (1, {k}) is expected")

    def prepare(self, array: np.ndarray, options: Mapping[str, Any] | None = None) -> tuple[torch.Tensor, list[str]]:
        """The request's ``(z, y, x)`` pixels as the network's normalised ``(1, 1, *size)`` input (an xrv model:
        TorchXRayVision's preprocessing, with the request's ``options["display"]``)."""
        messages = []
        if self.cls.dims == 2 and array.shape[0] > 1:
            messages.append(f"{self.manifest.name} classifies 2D images: it saw the middle slice "
                            f"({array.shape[0] // 2 + 1} of {array.shape[0]})")
        if self.xrv:
            window, invert = xrv_adapter.display_options(options)
            display = xrv_adapter.display_from_values(np.asarray(array[array.shape[0] // 2]), window, invert)
            x = torch.from_numpy(xrv_adapter.preprocess(display, size=self.cls.size[0]))[None].to(self.device)
            return x, messages
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.cls.dims == 2:
            image = image[image.shape[0] // 2]
        x = resize(image, self.cls.size).to(self.device)
        x[0] = normalize(x[0], self.spec.normalization)
        return x, messages

    def preprocessing(self, options: Mapping[str, Any] | None = None) -> str:
        """What the network sees, in words (the result and the SR say it); ``options``: the request's."""
        if self.xrv:
            return xrv_adapter.preprocessing_text(*xrv_adapter.display_options(options), size=self.cls.size[0])
        mode = "bilinear" if self.cls.dims == 2 else "trilinear"
        size = " × ".join(map(str, self.cls.size))
        return (f"resized as a whole to {size} ({mode}, no crop, no flip); "
                f"normalisation: {self.spec.normalization.describe()}")

    def image_text(self, shape: Sequence[int]) -> str:
        z, y, x = (int(v) for v in shape)
        if self.cls.dims == 2:
            return f"image {x} × {y}" if z == 1 else f"middle slice {z // 2 + 1} of {z} ({x} × {y})"
        return f"volume {x} × {y} × {z}"

    def run(self, request: InferenceRequest, ctx: RunContext) -> RunOutput:
        ctx.step(0.0, "preparing the image")
        x, messages = self.prepare(request.array, request.options)
        ctx.check_cancel()
        ctx.step(0.3, "classifying")
        with torch.no_grad():
            out = self.net(x)
        probs = probabilities(out, self.cls.activation, self.spec.output)
        if not np.all(np.isfinite(probs)):
            raise ModelError(f"{self.manifest.name} returned non-finite scores")
        result = ClassificationResult(
            classes=self.cls.classes, probabilities=tuple(round(float(p), 6) for p in probs),
            activation=self.cls.activation, thresholds=self.cls.thresholds,
            preprocessing=self.preprocessing(request.options), input_size=self.cls.size,
            image=self.image_text(request.array.shape), note=NOT_A_DIAGNOSIS)
        used = {"input_size": list(self.cls.size),
                "normalization": "TorchXRayVision ([-1024, 1024])" if self.xrv else self.spec.normalization.describe()}
        if self.xrv:
            window, invert = xrv_adapter.display_options(request.options)
            used["display"] = {"window": list(window) if window is not None else "auto", "invert": invert}
        if result.thresholds:
            used["thresholds"] = list(result.thresholds)
        messages.append(describe(self.cls.classes, probs, self.cls.activation))
        ctx.step(1.0, "done")
        return RunOutput(parameters=used, messages=messages, classification=result)
