"""Run one of TorchXRayVision's pretrained chest radiograph DenseNets (runner ``xrv-pretrained``, :mod:`ai.xrv_models`).

Loading, safely: TorchXRayVision's files are a whole ``nn.Module`` pickled with ``torch.save``, and its own loader
(``DenseNet(weights=...)``) reads them with ``torch.load(weights_only=False)``, which runs whatever code the pickle
names. radview never does that. :func:`load_weights` reads the file with ``torch.load(weights_only=True)`` and an
explicit allowlist (:func:`allowed_globals`: TorchXRayVision's ``DenseNet``, ``_DenseBlock``, ``_DenseLayer``,
``_Transition`` and the torch layer classes they are built of); any other global the pickle names is refused with a
ModelError naming it, before anything of it runs (:func:`unsafe_globals` reads the pickle's opcodes without running
it; torch's restricted unpickler refuses it again). TorchXRayVision's published files date from 2020, before torch
1.6's zip format (its loader patches them for pytorch/pytorch#42242): a whole module in that legacy format names its
classes as persistent ids, which torch's restricted unpickler refuses, so such a file is read by torch's legacy
loader with a restricted ``pickle_module`` (:func:`restricted_pickle`: ``find_class`` resolves only the same
allowlist and torch's tensor rebuilders, :data:`LEGACY_GLOBALS`). Of the object it rebuilds only the tensors are
kept: the parameters and persistent buffers, collected by walking its sub-modules (no hook or method of it is called),
every module's type checked against the allowlist. They are copied strictly into a freshly built
``DenseNet(weights=None)`` of 18 outputs, whose ``op_threshs`` are the model's operating points, as TorchXRayVision
sets them after loading.

Running: the radiograph becomes TorchXRayVision's input through :mod:`ai.runners.xrv_adapter` (the display from the
request's values and ``options["display"]``, [-1024, 1024], a centre-cropped square, 224 × 224, never flipped); the
network's 18 outputs (sigmoid, then TorchXRayVision's operating-point normalisation) are reduced to the pathologies
the model was trained on, as a :class:`ai.api.ClassificationResult` (``not a diagnosis``).

Weights absent from TorchXRayVision's cache are downloaded only when the request's options carry ``allow_download =
True`` (the user's consent; a manifest's parameters cannot give it), through TorchXRayVision's own
``models.get_weights`` (:func:`download_weights`; the class attribute :attr:`XrvPretrainedModel.download`).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ai import xrv_models
from ai.api import NOT_A_DIAGNOSIS, ClassificationResult, InferenceRequest, ModelError
from ai.runners import safe_load, xrv_adapter
from ai.runners.base import RunContext, RunOutput
from ai.runners.classifier import describe
from ai.weights_download import fetch_with_consent


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def allowed_globals(xrv) -> list[type]:
    """The classes a TorchXRayVision DenseNet file may name, besides what torch's restricted unpickler allows: those
    a DenseNet is built of (``DenseNet``, its ``_DenseBlock``, ``_DenseLayer``, ``_Transition``, and torch's
    ``Sequential``, ``Conv2d``, ``BatchNorm2d``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``, ``Linear``), read from a
    freshly built one (untrained: nothing is loaded)."""
    return sorted({type(m) for m in xrv.models.DenseNet(weights=None).modules()}, key=_name)


def unsafe_globals(path: Path, allowed: list[type]) -> list[str]:
    """The globals the file's pickle names that neither torch's restricted unpickler nor ``allowed`` admit (read
    from its opcodes, nothing run); ``[]`` where torch cannot list them (a legacy, non-zip file: the restricted
    load refuses them then)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint: the restricted load below still refuses
        return []
    names = {_name(c) for c in allowed}
    return sorted(g for g in found if g not in names)


#: how torch's restricted unpickler names a refused global ("Unsupported global: GLOBAL a.b was not ...",
#: "Trying to load unsupported GLOBAL a.b whose module a is blocked")
_REFUSED = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", re.IGNORECASE)


def _refused_global(exc: Exception) -> str:
    found = _REFUSED.search(str(exc))
    if found:
        return found.group(1)
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def module_tensors(obj: Any, allowed: list[type]) -> dict[str, torch.Tensor]:
    """A rebuilt module's parameters and persistent buffers by state_dict name, read from its sub-modules' own
    tables (no hook or method of it runs); every sub-module must be of an allowed type."""
    kinds = tuple(allowed)
    out: dict[str, torch.Tensor] = {}

    def walk(module: Any, prefix: str) -> None:
        if type(module) not in kinds:
            raise ModelError(f"the weights file holds a {type(module).__name__}, not a TorchXRayVision DenseNet part")
        state = vars(module)
        skip = state.get("_non_persistent_buffers_set") or set()
        for table in ("_parameters", "_buffers"):
            for key, value in (state.get(table) or {}).items():
                if value is None or (table == "_buffers" and key in skip):
                    continue
                if not isinstance(value, torch.Tensor):
                    raise ModelError(f"the weights file's {prefix}{key} is a {type(value).__name__}, not a tensor")
                out[prefix + key] = value.detach()
        for key, child in (state.get("_modules") or {}).items():
            if child is not None:
                walk(child, f"{prefix}{key}.")

    walk(obj, "")
    return out


#: what a file in torch < 1.6's format names besides its module classes: torch's own tensor rebuilders (tensors and
#: parameters from storages), the containers a module keeps; the storage classes torch's loader handles itself
LEGACY_GLOBALS = frozenset({"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                            "collections.OrderedDict", "builtins.set"})


def restricted_pickle(allowed: list[type]) -> SimpleNamespace:
    """A ``pickle_module`` for ``torch.load`` whose unpickler resolves only :data:`LEGACY_GLOBALS` and ``allowed``
    (Python's documented way of restricting globals: every global a pickle names goes through ``find_class``).
    What TorchXRayVision's files need where torch's restricted unpickler refuses them: torch < 1.6 saved a whole
    module's classes as persistent ids, which only the legacy loader reads (it compares, never runs, their source)."""
    names = LEGACY_GLOBALS | {_name(c) for c in allowed}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            module = "builtins" if module == "__builtin__" else module  # protocol 2's name
            if f"{module}.{name}" not in names:
                raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name}")
            return super().find_class(module, name)

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return SimpleNamespace(__name__="radview_restricted_pickle", Unpickler=Unpickler, load=load)


def load_weights(path: str | Path, xrv) -> dict[str, torch.Tensor]:
    """The tensors of a TorchXRayVision weights file, loaded without running pickled code (see the module doc)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p.name}: TorchXRayVision weights file not found ({p})")
    allowed = allowed_globals(xrv)
    refused = unsafe_globals(p, allowed)
    if refused:
        raise ModelError(f"{p.name}: refused to load: the file names {', '.join(refused[:5])}, which is not part of "
                         "a TorchXRayVision DenseNet and could run code on this computer")
    try:
        if zipfile.is_zipfile(p):
            with torch.serialization.safe_globals(allowed):
                obj = torch.load(p, map_location="cpu", weights_only=True)
        else:  # torch < 1.6's format, which torch's restricted unpickler does not read for a whole module
            obj = torch.load(p, map_location="cpu", weights_only=False, pickle_module=restricted_pickle(allowed))
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{p.name}: refused to load: the file names {_refused_global(exc)}, which is not part of a "
                         "TorchXRayVision DenseNet and could run code on this computer") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{p.name}: not a readable TorchXRayVision weights file: {first}") from None
    if not isinstance(obj, xrv.models.DenseNet):
        raise ModelError(f"{p.name}: holds a {type(obj).__name__}, not a TorchXRayVision DenseNet")
    return module_tensors(obj, allowed)


def build_network(m: xrv_models.XrvModel, state: Mapping[str, torch.Tensor], xrv) -> nn.Module:
    """A fresh ``DenseNet(weights=None)`` of the model's 18 outputs with ``state`` copied in strictly, and its
    operating points set as TorchXRayVision sets them after loading."""
    net = xrv.models.DenseNet(weights=None, num_classes=len(m.labels))
    state = {k: v for k, v in state.items() if k != "op_threshs"}  # set below, from the model's table
    safe_load.load_into(net, state, f"TorchXRayVision's DenseNet-121 of {len(m.labels)} outputs")
    net.op_threshs = torch.tensor(m.op_threshs, dtype=torch.float32)
    return net.eval()


def download_weights(m: xrv_models.XrvModel) -> Path:
    """TorchXRayVision's own download of ``m``'s weights into its cache (:func:`ai.xrv_models.download_weights`)."""
    return xrv_models.download_weights(m, xrv_adapter.import_xrv())


class XrvPretrainedModel:
    """Runner ``xrv-pretrained``: a model of :data:`ai.xrv_models.MODELS`."""

    #: TorchXRayVision's own download (replaceable by tests, which never download)
    download: Callable[[xrv_models.XrvModel], Path] = staticmethod(download_weights)

    def __init__(self, manifest, device):
        self.manifest = manifest
        self.device = torch.device(device)
        self.model = xrv_models.model(str(manifest.parameters.get("weights", "")))
        self.xrv = xrv_adapter.import_xrv()
        self.net: nn.Module | None = None
        self._once: list[str] = []
        path = xrv_models.find_weights(self.model)
        if path is not None:
            self.load(path)

    def load(self, path: Path) -> None:
        self.net = build_network(self.model, load_weights(path, self.xrv), self.xrv).to(self.device)

    def _ensure_weights(self, options: Mapping[str, Any], ctx: RunContext) -> None:
        """The consent comes from the request's options only: a manifest's parameters cannot give it."""
        if self.net is not None:
            return
        path = xrv_models.find_weights(self.model)
        if path is None:
            path = fetch_with_consent(options, ctx, title=self.model.title, note=xrv_models.download_note(self.model),
                                      by="TorchXRayVision", download=lambda: type(self).download(self.model),
                                      messages=self._once)
        self.load(path)

    def prepare(self, array: np.ndarray, options: Mapping[str, Any] | None) -> tuple[torch.Tensor, list[str]]:
        """The request's ``(z, y, x)`` values (its middle slice) as TorchXRayVision's ``(1, 1, 224, 224)`` input."""
        messages = []
        if array.shape[0] > 1:
            messages.append(f"{self.manifest.name} classifies 2D images: it saw the middle slice "
                            f"({array.shape[0] // 2 + 1} of {array.shape[0]})")
        window, invert = xrv_adapter.display_options(options)
        display = xrv_adapter.display_from_values(np.asarray(array[array.shape[0] // 2]), window, invert)
        return torch.from_numpy(xrv_adapter.preprocess(display, size=xrv_models.SIZE))[None], messages

    def run(self, request: InferenceRequest, ctx: RunContext) -> RunOutput:
        options = request.options or {}
        self._ensure_weights(options, ctx)
        ctx.step(0.1, "preparing the image")
        x, messages = self.prepare(request.array, options)
        ctx.check_cancel()
        ctx.step(0.3, "classifying")
        with torch.no_grad():
            out = self.net(x.to(self.device))
        scores = out.detach().float().reshape(-1).cpu().numpy().astype(np.float64)
        if scores.size != len(self.model.labels):
            raise ModelError(f"{self.manifest.name} returned {scores.size} scores, not {len(self.model.labels)}")
        probs = scores[list(self.model.outputs)]
        if not np.all(np.isfinite(probs)):
            raise ModelError(f"{self.manifest.name} returned non-finite scores")
        probs = np.clip(probs, 0.0, 1.0)
        classes = self.model.classes
        window, invert = xrv_adapter.display_options(options)
        rows, cols = request.array.shape[1:]
        result = ClassificationResult(
            classes=classes, probabilities=tuple(round(float(p), 6) for p in probs), activation="sigmoid",
            thresholds=(0.5,) * len(classes),
            preprocessing=xrv_adapter.preprocessing_text(window, invert) + "; probabilities calibrated by "
            "TorchXRayVision's operating points (each pathology's threshold maps to 0.5)",
            input_size=(xrv_models.SIZE, xrv_models.SIZE), image=f"radiograph {cols} × {rows}", note=NOT_A_DIAGNOSIS)
        used = {"weights": self.model.weights, "input_size": [xrv_models.SIZE, xrv_models.SIZE],
                "normalization": "TorchXRayVision ([-1024, 1024])",
                "display": {"window": list(window) if window is not None else "auto", "invert": invert}}
        messages = self._once + messages
        self._once = []
        messages.append(describe(classes, probs, "sigmoid"))
        ctx.step(1.0, "done")
        return RunOutput(parameters=used, messages=messages, classification=result)
