"""Pixel arrays that carry their geometry: :class:`Volume` and :class:`LabelMap`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radview_base.geometry import Geometry, require_same_grid


@dataclass(eq=False)
class Volume:
    """A scalar (``(z, y, x)``) or colour (``(z, y, x, c)``) image on a geometry.

    ``array`` holds modality values (CT: HU after rescale slope/intercept).
    ``meta`` carries descriptive DICOM attributes (modality, series UID,
    window centre/width, ...); ``warnings`` what the loader found odd.

    A 4D series loaded with all its time points keeps them in ``meta["timepoints"]`` (``(t, z, y, x)``); ``array``
    is the time point shown (``timepoint``), a view of it: :meth:`show_timepoint` moves it, without a copy.
    """

    array: np.ndarray
    geometry: Geometry
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timepoint: int = 0

    def __post_init__(self) -> None:
        if self.array.ndim not in (3, 4):
            raise ValueError(f"a volume array is (z, y, x) or (z, y, x, c), got shape {self.array.shape}")
        if tuple(self.array.shape[:3]) != self.geometry.shape_zyx:
            raise ValueError(f"array shape {self.array.shape[:3]} does not match geometry {self.geometry.shape_zyx}")

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.geometry.shape_zyx

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return self.geometry.spacing_zyx

    @property
    def is_color(self) -> bool:
        return self.array.ndim == 4

    @property
    def modality(self) -> str:
        return str(self.meta.get("modality", ""))

    @property
    def n_timepoints(self) -> int:
        """Time points held (1 for a 3D volume, or a 4D series loaded one time point at a time)."""
        held = self.meta.get("timepoints")
        return 1 if held is None else len(held)

    def show_timepoint(self, t: int) -> None:
        """Make ``array`` time point ``t`` of the time points held (and ``meta["instance_numbers"]`` its images'
        numbers, when the loader gave them per time point)."""
        t = int(t)
        if not 0 <= t < self.n_timepoints:
            raise IndexError(f"time point {t} out of range (the volume holds {self.n_timepoints})")
        if self.n_timepoints > 1:
            self.array = self.meta["timepoints"][t]
            numbers = self.meta.get("instance_numbers_by_timepoint")
            if numbers is not None and t < len(numbers):
                self.meta["instance_numbers"] = numbers[t]
        self.timepoint = t

    def value_at(self, point_lps) -> float | None:
        """Nearest-voxel value at an LPS point, or None outside the grid."""
        idx = np.rint(self.geometry.world_to_index(point_lps)).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.shape_zyx)):
            return None
        return self.array[tuple(idx)]


@dataclass(eq=False)
class LabelMap:
    """An integer label image with a table ``{label id: name}``; 0 is background."""

    array: np.ndarray
    geometry: Geometry
    labels: dict[int, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a label map is (z, y, x), got shape {self.array.shape}")
        if not np.issubdtype(self.array.dtype, np.integer):
            raise ValueError(f"a label map holds integers, got {self.array.dtype}")
        if tuple(self.array.shape) != self.geometry.shape_zyx:
            raise ValueError(f"array shape {self.array.shape} does not match geometry {self.geometry.shape_zyx}")
        self.labels = {int(k): str(v) for k, v in self.labels.items()}

    def check_fits(self, volume: Volume, tol_mm: float = 0.01) -> None:
        """Raise GeometryMismatchError unless this label map lies on ``volume``'s grid."""
        require_same_grid(volume.geometry, self.geometry, tol_mm, what="label map")

    def present_labels(self) -> list[int]:
        return [int(v) for v in np.unique(self.array) if v != 0]
