"""A model described as data: the :class:`ModelManifest`, parsed and checked from a TOML table (no torch).

The lowest room of the model description: :mod:`ai.registry` (the list of known models), the folder readers
(:mod:`ai.nnunet_folder`, :mod:`ai.totalseg`) and the runners all build on it; it imports none of them.

Security rule: a manifest is untrusted input. Its ``runner`` is a registered name (:mod:`ai.runner_names`), never
a module to import, and every file it names stays inside its folder (:mod:`ai.model_paths`); both are checked here,
when the manifest is parsed, before anything is imported or opened. A model whose weights are TorchScript
:attr:`~ModelManifest.contains_code`: it runs only where the user allowed it (see :func:`ai.code_consent.check`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import tomllib

from ai.api import CLASSICAL_NOTE, frozen_mapping
from ai.classification import ClassificationSpec, check_task, is_classification, parse_classification
from ai.model_paths import inside
from ai.network_spec import NetworkSpec, SpecError, parse_network
from ai.runner_names import UnknownRunner, runner_name

OUTPUTS = ("labels", "detections", "classification")
DEVICES = ("cuda", "mps", "cpu")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: manifest parameters that name a file or folder (relative to the model folder, checked like network.file)
PATH_PARAMETERS = ("folder",)


@dataclass(frozen=True)
class ModelManifest:
    id: str
    name: str
    version: str
    modality: str  # "CT"; several as "DX,CR" (see :attr:`modalities`)
    method: str  # e.g. ai.api.CLASSICAL_NOTE
    description: str
    runner: str  # a registered runner's name (see ai.runner_names), e.g. "network"
    labels: Mapping[int, str]
    outputs: tuple[str, ...]
    spacing_mm: Optional[tuple[float, float, float]] = None  # z, y, x
    intensity: str = ""
    patch_size: Optional[tuple[int, int, int]] = None  # z, y, x
    overlap: Optional[float] = None
    supports: tuple[str, ...] = DEVICES
    mixed_precision: bool = False
    min_gpu_memory_gb: float = 0.0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""
    network: Optional[NetworkSpec] = None  # learned models from a model folder (see ai.network_spec)
    classification: Optional[ClassificationSpec] = None  # task = "classification" (see ai.classification)


    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the model takes, upper case: ``modality`` split at commas or slashes ("DX,CR" → ``("DX",
        "CR")``); empty, ``ANY`` or ``*`` → ``()`` (any)."""
        found = tuple(m.strip().upper() for m in re.split(r"[,/]", self.modality or "") if m.strip())
        return () if set(found) & {"ANY", "*"} else found
    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", frozen_mapping({int(k): str(v) for k, v in self.labels.items()}))
        object.__setattr__(self, "parameters", frozen_mapping(self.parameters))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "supports", tuple(self.supports))

    @property
    def is_classical(self) -> bool:
        return self.method == CLASSICAL_NOTE

    @property
    def task(self) -> str:
        """"classification" for a classifier, else "segmentation" (labels and/or detections)."""
        return "classification" if self.classification is not None else "segmentation"

    @property
    def contains_code(self) -> bool:
        """TorchScript weights: the model contains code that runs with the user's permissions."""
        return self.network is not None and self.network.format == "torchscript"

    @property
    def folder(self) -> str:
        """The model folder (the manifest file's folder, or the folder a reader described); "" for built-ins."""
        if not self.path:
            return ""
        p = Path(self.path)
        return str(p.parent if p.suffix == ".toml" else p)

    def resolve_parameters(self, options: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The manifest's default parameters updated by a request's options."""
        return {**self.parameters, **(options or {})}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (label ids become strings, tuples lists)."""
        d = self._as_dict()
        if self.classification is not None:
            d["task"] = self.task
            d["classification"] = self.classification.as_dict()
        return d

    def _as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "version": self.version, "modality": self.modality,
            "method": self.method, "description": self.description, "runner": self.runner,
            "labels": {str(k): v for k, v in sorted(self.labels.items())}, "outputs": list(self.outputs),
            "input": {"spacing_mm": list(self.spacing_mm) if self.spacing_mm else None, "intensity": self.intensity,
                      "patch_size": list(self.patch_size) if self.patch_size else None, "overlap": self.overlap},
            "device": {"supports": list(self.supports), "mixed_precision": self.mixed_precision,
                       "min_gpu_memory_gb": self.min_gpu_memory_gb},
            "parameters": dict(self.parameters), "path": self.path,
            "contains_code": self.contains_code,
        }


class ManifestError(ValueError):
    """A manifest file is unreadable or incomplete; the message says why."""


def _need(table: Mapping, key: str, kind: type, where: str = ""):
    if key not in table:
        raise ManifestError(f"missing field '{where}{key}'")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ManifestError(f"field '{where}{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _triple(value, kind: type, key: str) -> tuple:
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ManifestError(f"field 'input.{key}' must be a list of three numbers (z, y, x)")
    if any(v <= 0 for v in value):
        raise ManifestError(f"field 'input.{key}' must be positive")
    return tuple(kind(v) for v in value)


def parse_manifest(data: Mapping[str, Any], path: str = "") -> ModelManifest:
    """Validate a parsed TOML table; raise :class:`ManifestError` naming the first problem.

    A manifest with a ``[network]`` table is a learned model in a model folder: its runner defaults to
    :class:`ai.runners.network.NetworkModel` (runner "network") and its method to "learned network (<format>)".
    """
    network = None
    classification = None
    try:
        check_task(data)
    except SpecError as exc:
        raise ManifestError(str(exc)) from None
    if is_classification(data):
        try:
            classification, network = parse_classification(data, Path(path).parent if path else Path.cwd())
        except SpecError as exc:
            raise ManifestError(str(exc)) from None
        data = {"runner": "classifier", "method": network.method, "outputs": ["classification"], **data}
    elif "network" in data:
        try:
            network = parse_network(data["network"], data.get("input", {}) if isinstance(data.get("input"), dict)
                                    else {}, Path(path).parent if path else Path.cwd())
        except SpecError as exc:
            raise ManifestError(str(exc)) from None
        data = {"runner": "network", "method": network.method, "outputs": ["labels"], **data}
    text = {k: _need(data, k, str).strip() for k in ("id", "name", "version", "modality", "method", "runner")}
    if not _ID.match(text["id"]):
        raise ManifestError(f"id {text['id']!r}: use letters, digits, '.', '_' and '-'")
    try:
        text["runner"] = runner_name(text["runner"])
    except UnknownRunner as exc:
        raise ManifestError(str(exc)) from None
    outputs = _need(data, "outputs", list)
    if not outputs or any(o not in OUTPUTS for o in outputs):
        raise ManifestError(f"outputs {outputs!r} must be a non-empty list of {', '.join(OUTPUTS)}")
    labels_table = data.get("labels", {})
    if not isinstance(labels_table, dict):
        raise ManifestError("[labels] must be a table of id = \"name\"")
    labels = {}
    for k, v in labels_table.items():
        if not str(k).isdigit() or int(k) < 1 or int(k) > 65535 or not isinstance(v, str):
            raise ManifestError(f"label {k!r} = {v!r}: ids are integers 1..65535, names are text")
        labels[int(k)] = v
    if "labels" in outputs and not labels:
        raise ManifestError("a model with a 'labels' output needs a [labels] table")
    inp = data.get("input", {})
    dev = data.get("device", {})
    params = data.get("parameters", {})
    if not all(isinstance(t, dict) for t in (inp, dev, params)):
        raise ManifestError("[input], [device] and [parameters] must be tables")
    supports = tuple(dev.get("supports", DEVICES))
    if not supports or any(d not in DEVICES for d in supports):
        raise ManifestError(f"device.supports {list(supports)!r} must name some of {', '.join(DEVICES)}")
    overlap = _need(inp, "overlap", float, "input.") if "overlap" in inp else None
    if overlap is not None and not 0.0 <= overlap < 1.0:
        raise ManifestError("input.overlap must be in [0, 1)")
    return ModelManifest(
        **text,
        description=str(data.get("description", "")).strip(),
        labels=labels,
        outputs=tuple(outputs),
        spacing_mm=_triple(inp["spacing_mm"], float, "spacing_mm") if "spacing_mm" in inp else None,
        intensity=(_need(inp, "intensity", str, "input.") if "intensity" in inp
                   else network.normalization.describe() if network else ""),
        patch_size=_triple(inp["patch_size"], int, "patch_size") if "patch_size" in inp else None,
        overlap=overlap,
        supports=supports,
        mixed_precision=_need(dev, "mixed_precision", bool, "device.") if "mixed_precision" in dev else False,
        min_gpu_memory_gb=_need(dev, "min_gpu_memory_gb", float, "device.") if "min_gpu_memory_gb" in dev else 0.0,
        parameters=params,
        path=path,
        network=network,
        classification=classification,
    )


def _folder_parameters(data: dict, folder: Path) -> dict:
    """A manifest file's path parameters, checked to lie inside its folder and made absolute."""
    params = data.get("parameters")
    if not isinstance(params, dict) or not any(k in params for k in PATH_PARAMETERS):
        return data
    params = dict(params)
    for key in PATH_PARAMETERS:
        if key in params:
            if not isinstance(params[key], str):
                raise ManifestError(f"field 'parameters.{key}' must be a path inside the model folder")
            params[key] = str(inside(folder, params[key], f"parameters.{key}", ManifestError))
    return {**data, "parameters": params}


def load_manifest(path: str | os.PathLike) -> ModelManifest:
    """Read and check a manifest file (a regular file: a FIFO or a device is refused unopened)."""
    if not Path(path).is_file():
        raise ManifestError("not a regular file" if Path(path).exists() else "no such file")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}") from exc
    return parse_manifest(_folder_parameters(data, Path(path).parent), str(path))
