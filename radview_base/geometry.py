"""Voxel grid geometry in DICOM patient coordinates (LPS, millimetres).

Arrays are indexed ``(z, y, x)``; the geometry maps an index ``(k, j, i)`` to
the LPS position of that voxel's centre::

    world = origin + direction @ (spacing_xyz * (i, j, k))

``direction`` is a 3×3 matrix whose *columns* are the unit vectors (in LPS) of
the array's x (column), y (row) and z (slice) axes, as in ITK.

The one grid class of the project: the viewer's volumes and the AI requests/results (``ai.api``) both use it,
and it crosses the AI engine's process boundary by pickling (a frozen dataclass of tuples).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: NIfTI is RAS on disk; DICOM and this project are LPS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    origin_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape_zyx", tuple(int(v) for v in self.shape_zyx))
        object.__setattr__(self, "spacing_zyx", tuple(float(v) for v in self.spacing_zyx))
        object.__setattr__(self, "origin_lps", tuple(float(v) for v in self.origin_lps))
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in d))
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 1:
            raise ValueError(f"shape_zyx must be three positive sizes, got {self.shape_zyx}")
        if min(self.spacing_zyx) <= 0:
            raise ValueError(f"spacing_zyx must be positive, got {self.spacing_zyx}")
        if abs(np.linalg.det(d)) < 1e-6:
            raise ValueError("direction matrix is singular")

    # --- matrices -----------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float)

    @property
    def spacing_xyz(self) -> np.ndarray:
        return np.asarray(self.spacing_zyx[::-1], dtype=float)

    @property
    def voxel_volume_ml(self) -> float:
        """The volume of one voxel in millilitres (cm³)."""
        return float(np.prod(self.spacing_zyx)) / 1000.0

    @property
    def axes_lps(self) -> np.ndarray:
        """Rows are the LPS step vectors (mm) of one voxel along x, y, z."""
        return (self.direction_matrix * self.spacing_xyz).T

    def affine_lps(self) -> np.ndarray:
        """4×4 matrix mapping ``(i, j, k, 1)`` (x, y, z index) to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * self.spacing_xyz
        a[:3, 3] = self.origin_lps
        return a

    def affine_ras(self) -> np.ndarray:
        """The NIfTI-style affine: ``(i, j, k, 1)`` to RAS mm."""
        a = self.affine_lps()
        a[:3, :] = LPS_TO_RAS @ a[:3, :]
        return a

    @classmethod
    def from_affine_lps(cls, affine: np.ndarray, shape_zyx) -> "Geometry":
        m = np.asarray(affine, dtype=float)[:3, :3]
        spacing_xyz = np.linalg.norm(m, axis=0)
        return cls(shape_zyx, tuple(spacing_xyz[::-1]), tuple(np.asarray(affine)[:3, 3]), m / spacing_xyz)

    # --- mapping ------------------------------------------------------------
    def index_to_world(self, index_zyx) -> np.ndarray:
        """LPS position(s) of index/indices ``(..., 3)`` given as (k, j, i)."""
        idx = np.asarray(index_zyx, dtype=float)[..., ::-1]
        return idx @ (self.direction_matrix * self.spacing_xyz).T + np.asarray(self.origin_lps)

    def world_to_index(self, points_lps) -> np.ndarray:
        """Continuous (k, j, i) index of LPS point(s) ``(..., 3)``."""
        m = self.direction_matrix * self.spacing_xyz
        rel = np.asarray(points_lps, dtype=float) - np.asarray(self.origin_lps)
        ijk = rel @ np.linalg.inv(m).T
        return ijk[..., ::-1]

    def patient_left_axis(self) -> np.ndarray:
        """Unit vector, in (z, y, x) index space, pointing to the patient's left (+x in LPS)."""
        m = self.direction_matrix * self.spacing_xyz  # columns: steps of i, j, k
        g = np.linalg.inv(m)[:, 0][::-1]  # d(k, j, i) / d(L)
        return g / np.linalg.norm(g)

    @property
    def slice_normal(self) -> np.ndarray:
        return self.direction_matrix[:, 2]

    def corners_lps(self) -> np.ndarray:
        z, y, x = (s - 1 for s in self.shape_zyx)
        idx = np.array([[k, j, i] for k in (0, z) for j in (0, y) for i in (0, x)], dtype=float)
        return self.index_to_world(idx)

    # --- comparison ---------------------------------------------------------
    def max_corner_distance(self, other: "Geometry") -> float:
        """Largest distance (mm) between corresponding corner voxel centres."""
        if self.shape_zyx != other.shape_zyx:
            return float("inf")
        return float(np.max(np.linalg.norm(self.corners_lps() - other.corners_lps(), axis=1)))

    def is_close(self, other: "Geometry", tol_mm: float = 0.01) -> bool:
        return self.max_corner_distance(other) <= tol_mm

    def with_shape(self, shape_zyx) -> "Geometry":
        return Geometry(shape_zyx, self.spacing_zyx, self.origin_lps, self.direction)

    def describe_orientation(self) -> str:
        """The anatomical plane the slices lie in: axial, coronal, sagittal or oblique."""
        n = np.abs(self.slice_normal)
        axis = int(np.argmax(n))
        if n[axis] < 0.8:
            return "oblique"
        return ("sagittal", "coronal", "axial")[axis]


class GeometryMismatchError(ValueError):
    """Two arrays that should share a voxel grid do not."""


def require_same_grid(a: Geometry, b: Geometry, tol_mm: float = 0.01, what: str = "layer") -> None:
    """Raise :class:`GeometryMismatchError` unless ``a`` and ``b`` are the same grid."""
    if a.shape_zyx != b.shape_zyx:
        raise GeometryMismatchError(f"{what} has shape {b.shape_zyx}, the volume has {a.shape_zyx}")
    d = a.max_corner_distance(b)
    if d > tol_mm:
        raise GeometryMismatchError(f"{what} is placed {d:.3f} mm away from the volume's grid (tolerance {tol_mm} mm)")
