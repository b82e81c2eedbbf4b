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

    def __post_init__(self) -> None:
        object.__setattr__(self, "structures", tuple(self.structures))
        object.__setattr__(self, "label_names", frozen_mapping({int(k): str(v) for k, v in self.label_names.items()}))
        object.__setattr__(self, "detections", tuple(self.detections))
        object.__setattr__(self, "messages", tuple(self.messages))
        if self.labels is not None:
            if tuple(self.labels.shape) != self.grid.shape_zyx:
                raise ValueError(f"label array {self.labels.shape} is not on the request grid {self.grid.shape_zyx}")
            if not np.issubdtype(self.labels.dtype, np.integer):
                raise ValueError(f"labels must be integers, got {self.labels.dtype}")
