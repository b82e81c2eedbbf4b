"""numpy ``(z, y, x)`` arrays + :class:`Geometry` → ``vtkImageData`` sharing the array's memory.

VTK stores image points x-fastest, which is exactly a C-contiguous ``(z, y, x)`` array, so the
image points *at* the numpy buffer (``numpy_support.numpy_to_vtk(..., deep=False)``); the buffer
keeps a reference to the array, and :class:`VtkImage` keeps one too.

Two frames are offered (verified on VTK 9.7 by ``tests/render3d``):

* ``frame="lps"``: spacing, origin *and* direction matrix are set, so image points are at their LPS
  positions. ``vtkSurfaceNets3D``, ``vtkDiscreteFlyingEdges3D`` and ``vtkDiscreteMarchingCubes``
  honour the direction matrix and output LPS points directly.
* ``frame="local"``: spacing only (origin 0, identity direction); put :func:`lps_matrix` on the prop
  (``vtkVolume.SetUserMatrix``). Used for volume rendering: the GPU ray caster honours a direction
  matrix, but the CPU ray caster ignores it, and the prop matrix works with both and with
  ``vtkVolumePicker``; cropping planes are then in this local frame.

Left-handed grids (``det(direction) < 0``, e.g. a NIfTI stored LAS) need no copy: a reflecting
prop matrix renders and picks the same as the equivalent right-handed grid with z reversed (GPU and
CPU ray casters, checked pixel for pixel). One VTK 9.7 pitfall: a GPU mapper that has rendered
with a right-handed prop matrix draws *nothing* once only the matrix changes to a reflection (a new
input, or a new mapper, is fine); :class:`~viewer.render3d.scene.Scene3D` makes a new mapper for
every volume and never changes a prop's matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from radview_base.geometry import Geometry

#: dtypes VTK volume mappers and filters take as they are; anything else becomes float32.
_NATIVE = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32)}


@dataclass(eq=False)
class VtkImage:
    """A ``vtkImageData`` viewing ``array`` (``(z, y, x)``, C-contiguous) placed by ``geometry``.

    ``geometry`` describes ``array`` as it is here (downsampled if a step was asked for).
    ``frame`` is ``"lps"`` or ``"local"`` (module docstring).
    """

    image: vtkImageData
    array: np.ndarray
    geometry: Geometry
    frame: str

    def lps_matrix(self) -> vtkMatrix4x4:
        """The prop matrix that places a ``"local"`` image in LPS (identity for an ``"lps"`` one)."""
        return lps_matrix(self.geometry) if self.frame == "local" else vtkMatrix4x4()


def native_dtype(dtype) -> bool:
    """Whether VTK's volume mappers and filters take ``dtype`` as it is (else it becomes float32)."""
    return np.dtype(dtype) in _NATIVE


def downsampled(array: np.ndarray, geometry: Geometry, step_zyx) -> tuple[np.ndarray, Geometry]:
    """Every ``step``-th voxel along each axis (a contiguous copy) and its geometry.

    Voxel 0 stays where it is, so the origin and direction are unchanged and the spacing grows by
    the step. A step of ``(1, 1, 1)`` returns the inputs untouched.
    """
    step = tuple(max(1, int(s)) for s in step_zyx)
    if step == (1, 1, 1):
        return array, geometry
    small = np.ascontiguousarray(array[:: step[0], :: step[1], :: step[2]])
    spacing = tuple(float(s) * n for s, n in zip(geometry.spacing_zyx, step))
    return small, Geometry(small.shape, spacing, geometry.origin_lps, geometry.direction)


def interactive_step(geometry: Geometry, max_size: int = 256) -> tuple[int, int, int]:
    """Steps that bring every axis to at most ``max_size`` voxels (160×512×512 → (1, 2, 2))."""
    return tuple(max(1, math.ceil(n / max_size)) for n in geometry.shape_zyx)


def lps_matrix(geometry: Geometry) -> vtkMatrix4x4:
    """4×4 matrix from the local frame (mm along the array axes, voxel 0 at 0) to LPS mm."""
    m = vtkMatrix4x4()
    d = geometry.direction_matrix
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, float(d[r, c]))
        m.SetElement(r, 3, float(geometry.origin_lps[r]))
    return m


def to_vtk_image(array: np.ndarray, geometry: Geometry, *, frame: str = "lps", step_zyx=(1, 1, 1),
                 name: str = "scalars") -> VtkImage:
    """Wrap a ``(z, y, x)`` array as ``vtkImageData`` without copying where possible.

    Copies only when it must: a non-contiguous array, a dtype VTK does not take (float64, bool, ...,
    converted to float32), or a downsampling step.
    """
    if frame not in ("lps", "local"):
        raise ValueError(f"frame is 'lps' or 'local', got {frame!r}")
    if array.ndim != 3:
        raise ValueError(f"a scalar (z, y, x) array is needed, got shape {array.shape}")
    if tuple(array.shape) != geometry.shape_zyx:
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape_zyx}")
    arr, geo = downsampled(array, geometry, step_zyx)
    if arr.dtype not in _NATIVE:
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    image = vtkImageData()
    nz, ny, nx = arr.shape
    image.SetDimensions(nx, ny, nz)
    image.SetSpacing(*geo.spacing_xyz)
    if frame == "lps":
        image.SetOrigin(*geo.origin_lps)
        image.SetDirectionMatrix(*geo.direction_matrix.reshape(-1))
    scalars = numpy_support.numpy_to_vtk(arr.reshape(-1), deep=False)
    scalars.SetName(name)
    image.GetPointData().SetScalars(scalars)
    return VtkImage(image, arr, geo, frame)


def local_bounds(bounds_lps, geometry: Geometry) -> tuple[float, float, float, float, float, float]:
    """An LPS box ``(xmin, xmax, ymin, ymax, zmin, zmax)`` as a box in ``geometry``'s local frame.

    Exact when the array axes are parallel to the LPS axes (any order or sign); for an oblique grid,
    the local axis-aligned box enclosing the LPS box.
    """
    b = np.asarray(bounds_lps, dtype=float).reshape(3, 2)
    corners = np.array([[x, y, z] for x in b[0] for y in b[1] for z in b[2]])
    local = (corners - np.asarray(geometry.origin_lps)) @ np.linalg.inv(geometry.direction_matrix).T
    lo, hi = local.min(axis=0), local.max(axis=0)
    return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
