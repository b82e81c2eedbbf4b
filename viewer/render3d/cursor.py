"""The linked cursor in 3D: the outlines of the three reading planes through it, and a small sphere.

The planes are the array planes the 2D views show (:func:`viewer.core.slicing.patient_axis_of_array_axes`
picks which array axis is the axial, coronal and sagittal slice axis), each outlined where it
cuts the volume's box, in 3D Slicer's colours: axial red, coronal green, sagittal yellow.
"""
from __future__ import annotations

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from radview_base.geometry import Geometry
from viewer.core.slicing import patient_axis_of_array_axes

#: plane → RGB (0-1), as in 3D Slicer's slice views.
PLANE_COLORS = {"axial": (0.95, 0.33, 0.33), "coronal": (0.44, 0.75, 0.35), "sagittal": (0.93, 0.84, 0.31)}
_PLANE_OF_PATIENT_AXIS = {2: "axial", 1: "coronal", 0: "sagittal"}  # the plane a patient axis is normal to


def plane_outline_lps(geometry: Geometry, array_axis: int, index: float) -> np.ndarray:
    """The 4 LPS corners of the grid's plane at continuous ``index`` along array axis ``array_axis`` (0=x, 1=y, 2=z).

    The outline runs along the outer faces of the edge voxels (half a voxel beyond their centres).
    """
    shape_xyz = geometry.shape_zyx[::-1]
    lo = [-0.5] * 3
    hi = [n - 0.5 for n in shape_xyz]
    a, b = [ax for ax in range(3) if ax != array_axis]
    corners = []
    for u, v in ((lo[a], lo[b]), (hi[a], lo[b]), (hi[a], hi[b]), (lo[a], hi[b])):
        ijk = [0.0, 0.0, 0.0]
        ijk[array_axis], ijk[a], ijk[b] = index, u, v
        corners.append(ijk[::-1])  # (k, j, i)
    return geometry.index_to_world(np.asarray(corners))


class SliceCursor:
    """Actors showing the cursor: three plane outlines (lines) and a sphere, hidden until placed."""

    def __init__(self, sphere_radius_mm: float = 2.5):
        self.geometry: Geometry | None = None
        self.point_lps: np.ndarray | None = None
        self.outlines: dict[str, vtkActor] = {}
        for plane, rgb in PLANE_COLORS.items():
            actor = vtkActor()
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(vtkPolyData())
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*rgb)
            actor.GetProperty().SetLineWidth(2.0)
            actor.GetProperty().LightingOff()
            actor.PickableOff()
            actor.VisibilityOff()
            self.outlines[plane] = actor
        self._sphere = vtkSphereSource()
        self._sphere.SetRadius(sphere_radius_mm)
        self._sphere.SetThetaResolution(16)
        self._sphere.SetPhiResolution(12)
        self.sphere = vtkActor()
        sphere_mapper = vtkPolyDataMapper()
        sphere_mapper.SetInputConnection(self._sphere.GetOutputPort())
        self.sphere.SetMapper(sphere_mapper)
        self.sphere.GetProperty().SetColor(1.0, 0.85, 0.2)
        self.sphere.PickableOff()
        self.sphere.VisibilityOff()

    @property
    def actors(self) -> list[vtkActor]:
        return [*self.outlines.values(), self.sphere]

    def set_geometry(self, geometry: Geometry | None) -> None:
        """The grid whose planes are outlined (``None``: outlines hidden, the sphere alone)."""
        self.geometry = geometry
        self.set_point(self.point_lps)

    def set_point(self, point_lps) -> None:
        """Move the cursor to an LPS point; ``None`` hides it."""
        self.point_lps = None if point_lps is None else np.asarray(point_lps, dtype=float).reshape(3)
        if self.point_lps is None:
            for actor in self.actors:
                actor.VisibilityOff()
            return
        self._sphere.SetCenter(*self.point_lps)
        self.sphere.VisibilityOn()
        if self.geometry is None:
            for actor in self.outlines.values():
                actor.VisibilityOff()
            return
        index_xyz = self.geometry.world_to_index(self.point_lps)[::-1]
        patient_axes = patient_axis_of_array_axes(self.geometry)
        for array_axis in range(3):
            plane = _PLANE_OF_PATIENT_AXIS[patient_axes[array_axis]]
            corners = plane_outline_lps(self.geometry, array_axis, float(index_xyz[array_axis]))
            self.outlines[plane].GetMapper().SetInputData(_closed_polyline(corners))
            self.outlines[plane].VisibilityOn()


def _closed_polyline(corners: np.ndarray) -> vtkPolyData:
    points = vtkPoints()
    for p in corners:
        points.InsertNextPoint(*p)
    lines = vtkCellArray()
    lines.InsertNextCell(len(corners) + 1)
    for i in list(range(len(corners))) + [0]:
        lines.InsertCellPoint(i)
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetLines(lines)
    return poly
