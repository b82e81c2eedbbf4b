"""What a classification model folder declares (torch-free; checked when the folder is listed).

A classification model answers one image (a 2D radiograph or a 3D series) with one probability per class.
Its ``model.toml``::

    task = "classification"
    id = "chest-xr"
    name = "Chest radiograph findings"
    version = "1.0"
    modality = "DX"

    [classification]
    classes = ["effusion", "nodule", "pneumothorax"]
    activation = "sigmoid"           # "sigmoid": independent (multi-label) | "softmax": one class of many
    threshold = 0.5                  # sigmoid only, optional: one for all classes or a list, one per class

    [input]
    size = [224, 224]                # y, x (2D) or z, y, x (3D): the whole image is resized to this
    [input.normalization]            # as for segmentation networks (see ai.network_spec)
    kind = "scale"
    clip = [0.0, 4095.0]

    [network]
    format = "safetensors"           # "safetensors" | "checkpoint" | "onnx" | "torchscript" (needs consent)
    file = "model.safetensors"       # inside the folder
    architecture = "convnet"         # safetensors / checkpoint: "convnet" (radview's small CNN) or
                                     # "xrv-densenet121" (TorchXRayVision's DenseNet; the xrv extra)
    output = "logits"                # "logits" (the activation is applied) | "probabilities" (used as they are)
    [network.args]                   # the architecture's arguments, e.g. features = [8, 16]

The network takes ``(1, 1, *size)`` and returns ``(1, len(classes))``; that is checked when the model loads.
The runner is ``classifier`` (:mod:`ai.runners.classifier`); the result is the class probabilities as
``InferenceResult.classification`` (:class:`ai.api.ClassificationResult`; ``findings.json``'s ``classification``)
and in a message.

Security rule: as for every model folder, ``network.file`` stays inside the folder and TorchScript weights run
only with the user's consent (:mod:`ai.code_consent`, via :attr:`ai.manifest.ModelManifest.contains_code`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ai.model_paths import inside
from ai.network_spec import FORMATS, OUTPUTS, NetworkSpec, SpecError, parse_normalization

TASK = "classification"
TASKS = ("segmentation", "detection", TASK)
ACTIVATIONS = ("sigmoid", "softmax")
#: architectures radview builds for safetensors / state_dict weights
ARCHITECTURES = ("convnet", "xrv-densenet121")
MAX_CLASSES = 1000


@dataclass(frozen=True)
class ClassificationSpec:
    classes: tuple[str, ...]
    activation: str  # "sigmoid" (multi-label) | "softmax" (single-label)
    size: tuple[int, ...]  # (y, x) or (z, y, x)
    thresholds: tuple[float, ...] = ()  # sigmoid: one per class; softmax: none

    @property
    def dims(self) -> int:
        return len(self.size)

    @property
    def multi_label(self) -> bool:
        return self.activation == "sigmoid"

    def as_dict(self) -> dict[str, Any]:
        d = {"classes": list(self.classes), "activation": self.activation, "input_size": list(self.size)}
        if self.thresholds:
            d["thresholds"] = list(self.thresholds)
        return d


def is_classification(data: Mapping[str, Any]) -> bool:
    return data.get("task") == TASK


def check_task(data: Mapping[str, Any]) -> None:
    task = data.get("task")
    if task is not None and task not in TASKS:
        raise SpecError(f"field 'task' = {task!r}: use one of {', '.join(TASKS)}")


def parse_classification(data: Mapping[str, Any], folder: str | Path) -> tuple[ClassificationSpec, NetworkSpec]:
    """Check a classification manifest's [classification], [input] and [network] tables; resolve the weights."""
    table = data.get("classification")
    if not isinstance(table, dict):
        raise SpecError("a task = \"classification\" model needs a [classification] table (classes, activation)")
    classes = table.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c.strip() for c in classes)):
        raise SpecError("field 'classification.classes' must be a non-empty list of class names")
    classes = [c.strip() for c in classes]
    if len(set(classes)) != len(classes):
        raise SpecError("field 'classification.classes' names a class twice")
    if len(classes) > MAX_CLASSES:
        raise SpecError(f"field 'classification.classes': at most {MAX_CLASSES} classes")
    activation = table.get("activation")
    if activation not in ACTIVATIONS:
        raise SpecError(f"field 'classification.activation' = {activation!r}: use one of {', '.join(ACTIVATIONS)}")
    if activation == "softmax" and len(classes) < 2:
        raise SpecError("a softmax classifier needs at least two classes")
    thresholds = _thresholds(table.get("threshold"), activation, len(classes))
    inp = data.get("input", {})
    if not isinstance(inp, dict):
        raise SpecError("[input] must be a table")
    size = inp.get("size")
    if not (isinstance(size, list) and len(size) in (2, 3)
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in size)):
        raise SpecError("field 'input.size' must be two (y, x) or three (z, y, x) integers in 1..4096")
    network = data.get("network")
    if not isinstance(network, dict):
        raise SpecError("a classification model needs a [network] table (format, file)")
    fmt = network.get("format")
    if fmt not in FORMATS:
        raise SpecError(f"field 'network.format' = {fmt!r}: use one of {', '.join(FORMATS)}")
    name = network.get("file")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("missing field 'network.file' (the weights file, relative to the model folder)")
    path = inside(folder, name, "network.file", SpecError)  # before anything looks at the file
    if not path.is_file():
        raise SpecError(f"weights file '{name}' not found in {folder}")
    arch = network.get("architecture", "")
    if fmt in ("safetensors", "checkpoint") and arch not in ARCHITECTURES:
        raise SpecError(f"field 'network.architecture' = {arch!r}: use one of {', '.join(ARCHITECTURES)}")
    args = network.get("args", {})
    if not isinstance(args, dict):
        raise SpecError("[network.args] must be a table")
    output = network.get("output", "logits")
    if output not in OUTPUTS:
        raise SpecError(f"field 'network.output' = {output!r}: use one of {', '.join(OUTPUTS)}")
    spec = NetworkSpec(format=fmt, file=str(path), architecture=str(arch), args=dict(args), output=output,
                       normalization=parse_normalization(inp.get("normalization", {})))
    return ClassificationSpec(tuple(classes), activation, tuple(int(v) for v in size), thresholds), spec


def _thresholds(value: Any, activation: str, n: int) -> tuple[float, ...]:
    """``classification.threshold``: absent (0.5 for each sigmoid class), one number, or one per class."""
    if activation == "softmax":
        if value is not None:
            raise SpecError("field 'classification.threshold': a softmax classifier answers with its most "
                            "probable class; thresholds are for sigmoid (multi-label) models")
        return ()
    if value is None:
        return (0.5,) * n
    values = value if isinstance(value, list) else [value]
    if not (len(values) in (1, n) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and 0.0 <= v <= 1.0 for v in values)):
        raise SpecError(f"field 'classification.threshold' must be one number in [0, 1] or {n} of them "
                        "(one per class)")
    return tuple(float(v) for v in values) * (n if len(values) == 1 else 1)
