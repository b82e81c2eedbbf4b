"""What goes into and comes out of an AI run: plain, frozen data (no torch, no viewer).

``ai`` never imports ``viewer``; both share the base package ``radview_base``: a request's
and a result's grid is its :class:`~radview_base.geometry.Geometry` (the one grid class, the
viewer's too), the pixels a ``(z, y, x)`` array.  Positions are DICOM patient coordinates
(LPS, millimetres).  ``Geometry.direction`` uses the ITK convention: a 3×3 matrix whose
*columns* are the LPS unit vectors of the array's x (column), y (row) and z (slice) axes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from radview_base.cancel import Cancelled  # noqa: F401 - re-exported: the one Cancelled, for the engine
from radview_base.geometry import Geometry

#: ``progress(fraction in [0, 1], message)``
ProgressFn = Callable[[float, str], None]

CLASSICAL_NOTE = "classical image analysis, not a learned network"
NOT_A_DIAGNOSIS = "AI result for research use: not a diagnosis, not for clinical use"
#: what a model listing says of a model whose weights are TorchScript (``ModelManifest.contains_code``)
CONTAINS_CODE_NOTE = "contains code (TorchScript) that runs with your permissions"


class ModelError(Exception):
    """A model could not be found, loaded or run; the message is for the user."""


class FrozenDict(dict):
    """A read-only dict that still pickles (results cross a process boundary)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("this mapping is frozen")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __hash__(self):  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=repr)))


def frozen_mapping(m: Optional[Mapping]) -> Mapping:
    return FrozenDict(m or {})


@dataclass(frozen=True)
class InferenceRequest:
    """A frozen job: the pixels (HU for CT), their grid, the model and the options."""

    array: np.ndarray
    grid: Geometry
    model_id: str
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    options: Mapping[str, Any] = field(default_factory=dict)
    modality: str = "CT"
    series_uid: str = ""
    series_description: str = ""
    #: model folders whose code-containing (TorchScript) models the user allowed to run (see ai.code_consent)
    allow_code_in: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        folders = self.allow_code_in
        folders = [folders] if isinstance(folders, (str, os.PathLike)) else folders
        object.__setattr__(self, "allow_code_in", frozenset(os.fspath(p) for p in folders))
        if self.array.ndim != 3:
            raise ValueError(f"an AI request holds a (z, y, x) array, got shape {self.array.shape}")
        if tuple(self.array.shape) != self.grid.shape_zyx:
            raise ValueError(f"array shape {self.array.shape} does not match grid {self.grid.shape_zyx}")
        object.__setattr__(self, "options", frozen_mapping(self.options))


@dataclass(frozen=True)
class Detection:
    """One finding (e.g. a nodule candidate) in LPS mm."""

    center_lps: tuple[float, float, float]
    diameter_mm: float
    volume_ml: float
    mean_hu: float
    kind: str  # e.g. "solid" | "subsolid"
    score: float  # 0..1, higher = more likely
    label: str = "nodule"
    location: str = ""  # e.g. "lung_left"
    features: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_lps", tuple(float(v) for v in self.center_lps))
        object.__setattr__(self, "features", frozen_mapping(self.features))

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["center_lps_mm"] = list(d.pop("center_lps"))
        d["features"] = dict(self.features)
        return d


@dataclass(frozen=True)
class StructureFeatures:
    """Shape and intensity features of one segmented structure (SimpleITK label statistics), LPS mm."""

    label: int
    name: str
    voxels: int
    volume_ml: float
    centroid_lps: tuple[float, float, float]
    axial_diameter_mm: float  # longest diameter within one axial (transverse) plane
    diameter_3d_mm: float  # longest diameter in 3D (Feret diameter)
    sphericity: float  # 1 for a sphere, smaller for less compact shapes
    mean_hu: float
    sd_hu: float
    min_hu: float = float("nan")
    max_hu: float = float("nan")
    component: int = 0  # 0: the whole label; n >= 1: its n-th connected component (largest first)

    def __post_init__(self) -> None:
        object.__setattr__(self, "centroid_lps", tuple(float(v) for v in self.centroid_lps))

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["centroid_lps_mm"] = list(d.pop("centroid_lps"))
        return d


#: how a classifier turns its K scores into probabilities
ACTIVATIONS = ("sigmoid", "softmax")
#: the default decision threshold of a multi-label (sigmoid) class
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassificationResult:
    """One image's class probabilities from a classification model (``task = "classification"``).

    ``activation``: ``"sigmoid"`` (multi-label: each class on its own, flagged at or above its threshold) or
    ``"softmax"`` (single-label: the probabilities sum to 1, the most probable class is the answer; no
    thresholds). ``preprocessing`` says in words what the network saw (size, resampling, normalisation),
    ``input_size`` the network's input (``(y, x)`` or ``(z, y, x)``), ``image`` which image or slice was
    classified. Plain, frozen and picklable: it crosses the engine's process boundary as it is.
    """

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    activation: str
    thresholds: tuple[float, ...] = ()  # sigmoid: one per class (default 0.5 each); softmax: none
    preprocessing: str = ""
    input_size: tuple[int, ...] = ()
    image: str = ""
    note: str = NOT_A_DIAGNOSIS

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        probs = tuple(float(p) for p in self.probabilities)
        if not classes or len(classes) != len(probs):
            raise ValueError(f"a classification holds one probability per class: {len(classes)} classes, "
                             f"{len(probs)} probabilities")
        if len(set(classes)) != len(classes):
            raise ValueError("a classification names a class twice")
        if not all(np.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
            raise ValueError("class probabilities must be finite and in [0, 1]")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: one of {', '.join(ACTIVATIONS)}")
        thresholds = tuple(float(t) for t in self.thresholds)
        if self.activation == "softmax":
            thresholds = ()
        elif not thresholds:
            thresholds = (DEFAULT_THRESHOLD,) * len(classes)
        elif len(thresholds) == 1:
            thresholds = thresholds * len(classes)
        if thresholds and (len(thresholds) != len(classes) or
                           not all(np.isfinite(t) and 0.0 <= t <= 1.0 for t in thresholds)):
            raise ValueError("thresholds: one per class (or one for all), each in [0, 1]")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "probabilities", probs)
        object.__setattr__(self, "thresholds", thresholds)
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def multi_label(self) -> bool:
        return self.activation == "sigmoid"

    @property
    def kind(self) -> str:
        return "multi-label, sigmoid" if self.multi_label else "single-label, softmax"

    def probability(self, name: str) -> float:
        return self.probabilities[self.classes.index(name)]

    def threshold(self, name: str) -> float | None:
        return self.thresholds[self.classes.index(name)] if self.thresholds else None

    def ranked(self) -> tuple[tuple[str, float], ...]:
        """``(class, probability)`` from the most to the least probable (ties: in the manifest's order)."""
        order = sorted(range(len(self.classes)), key=lambda i: (-self.probabilities[i], i))
        return tuple((self.classes[i], self.probabilities[i]) for i in order)

    def flagged(self) -> tuple[str, ...]:
        """The classes the model answers with: at or above their threshold (sigmoid), the most probable (softmax)."""
        if not self.multi_label:
            return (self.ranked()[0][0],)
        return tuple(c for c, p, t in zip(self.classes, self.probabilities, self.thresholds) if p >= t)

    def summary(self, top: int = 3) -> str:
        """E.g. ``"effusion 0.91, nodule 0.40, … (multi-label, sigmoid)"``."""
        pairs = self.ranked()
        text = ", ".join(f"{c} {p:.3f}" for c, p in pairs[:top])
        return f"{text}{', …' if len(pairs) > top else ''} ({self.kind})"

    def as_dict(self) -> dict:
        """findings.json's ``classification``."""
        return {"classes": list(self.classes), "probabilities": [round(p, 6) for p in self.probabilities],
                "activation": self.activation, "thresholds": list(self.thresholds),
                "preprocessing": self.preprocessing, "input_size": list(self.input_size), "image": self.image,
                "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClassificationResult":
        """From :meth:`as_dict` (also the stopgap dict of older findings: classes, probabilities, activation)."""
        if not isinstance(d, Mapping):
            raise ValueError("a classification is a JSON object")
        try:
            return cls(classes=tuple(d["classes"]), probabilities=tuple(d["probabilities"]),
                       activation=str(d["activation"]), thresholds=tuple(d.get("thresholds") or ()),
                       preprocessing=str(d.get("preprocessing") or ""), input_size=tuple(d.get("input_size") or ()),
                       image=str(d.get("image") or ""), note=str(d.get("note") or NOT_A_DIAGNOSIS))
        except KeyError as exc:
            raise ValueError(f"a classification needs {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"not a classification: {exc}") from None

    @classmethod
    def from_findings(cls, findings: Mapping[str, Any] | None) -> "ClassificationResult | None":
        """The classification of a findings.json document: its ``classification``, else (results written before
        it had its own field) ``provenance.parameters.classification``; None when it has none."""
        if not isinstance(findings, Mapping):
            return None
        found = findings.get("classification")
        if found is not None:
            return cls.from_dict(found)
        params = (findings.get("provenance") or {}).get("parameters") or {}
        old = params.get("classification") if isinstance(params, Mapping) else None
        if old is None:
            return None
        d = dict(old)
        d.setdefault("input_size", params.get("input_size") or ())
        if params.get("normalization") and not d.get("preprocessing"):
            d["preprocessing"] = f"normalisation: {params['normalization']}"
        return cls.from_dict(d)


@dataclass(frozen=True)
class Provenance:
    model_id: str
    model_name: str
    model_version: str
    method: str  # e.g. CLASSICAL_NOTE, or "learned network (TorchScript)"
    device: str
    precision: str  # "float32" | "float16 (autocast)" | ...
    run_time_s: float
    started_at: str  # ISO 8601, UTC
    parameters: Mapping[str, Any] = field(default_factory=dict)
    software: str = ""  # e.g. "radview 0.1.0, torch 2.13.0"
    note: str = NOT_A_DIAGNOSIS

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", frozen_mapping(self.parameters))

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["parameters"] = dict(self.parameters)
        return d

    def summary(self) -> str:
        return (f"{self.model_name} {self.model_version} ({self.method}) on {self.device}, "
                f"{self.run_time_s:.1f} s")


@dataclass(frozen=True)
class InferenceResult:
    grid: Geometry
    provenance: Provenance
    labels: Optional[np.ndarray] = None  # integer (z, y, x) on ``grid``; 0 = background
    label_names: Mapping[int, str] = field(default_factory=dict)
    detections: tuple[Detection, ...] = ()
    messages: tuple[str, ...] = ()  # warnings for the user (e.g. "GPU out of memory, ran on CPU")
    structures: tuple[StructureFeatures, ...] = ()  # features of each segmented structure (see ai.features)
    classification: Optional[ClassificationResult] = None  # a classification model's class probabilities

    def __post_init__(self) -> None:
        if self.classification is not None and not isinstance(self.classification, ClassificationResult):
            raise ValueError(f"classification must be a ClassificationResult, got {type(self.classification).__name__}")
        object.__setattr__(self, "structures", tuple(self.structures))
        object.__setattr__(self, "label_names", frozen_mapping({int(k): str(v) for k, v in self.label_names.items()}))
        object.__setattr__(self, "detections", tuple(self.detections))
        object.__setattr__(self, "messages", tuple(self.messages))
        if self.labels is not None:
            if tuple(self.labels.shape) != self.grid.shape_zyx:
                raise ValueError(f"label array {self.labels.shape} is not on the request grid {self.grid.shape_zyx}")
            if not np.issubdtype(self.labels.dtype, np.integer):
                raise ValueError(f"labels must be integers, got {self.labels.dtype}")
