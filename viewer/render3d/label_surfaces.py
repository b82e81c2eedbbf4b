"""Smoothed surfaces of a label map, one ``vtkPolyData`` per label, in LPS millimetres.

:func:`build_label_surfaces` is a pure function (no renderer, no window): run it on a worker thread
for big label maps and hand the result to :meth:`Scene3D.set_label_layer
<viewer.render3d.scene.Scene3D.set_label_layer>` on the GUI thread. It matches the background-task
signature: ``progress(done, total, message)`` and a ``threading.Event`` ``cancel`` that stops it with
:class:`viewer.io.dicom_index.Cancelled`.

Each label is cut out with a one-voxel margin around its bounding box (one pass over the array
finds every label's box), binarised, and meshed with ``vtkSurfaceNets3D``, whose constrained
smoothing keeps the surface within about a voxel of the label's boundary (few passes: see
:data:`SMOOTHING_ITERATIONS`). The cut-out image carries the
grid's origin and direction, which SurfaceNets honours, so the points come out in LPS.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

import numpy as np
from scipy import ndimage
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkSurfaceNets3D

from radview_base.geometry import Geometry
from viewer.io.dicom_index import Cancelled
from viewer.io.volume import LabelMap
from viewer.render3d.image_data import downsampled, to_vtk_image

ProgressFn = Callable[[int, int, str], None]

#: SurfaceNets smoothing passes. Smoothing pulls a surface inwards a little: on 1 mm voxels a ball
#: of radius 3 mm came out at 2.90 mm with 6 passes, 2.36 mm with VTK's default 16 (and 6 mm at
#: 5.95 / 5.63 mm); 6 passes already take the voxel steps out (radius s.d. 0.43 → 0.10 mm).
SMOOTHING_ITERATIONS = 6


def label_boxes(array: np.ndarray, labels: Iterable[int]) -> dict[int, tuple[slice, slice, slice]]:
    """Bounding box (slices of ``array``) of each present label among ``labels``: one pass over the array."""
    wanted = sorted({int(v) for v in labels if int(v) > 0})
    if not wanted:
        return {}
    top = int(array.max()) if array.size else 0
    boxes = ndimage.find_objects(array, max_label=min(top, wanted[-1]))
    return {v: boxes[v - 1] for v in wanted if v - 1 < len(boxes) and boxes[v - 1] is not None}


def _cut_out(array: np.ndarray, geometry: Geometry, box, label: int, margin: int = 1):
    """``array == label`` inside ``box`` grown by ``margin`` (zero-padded at the grid's edge) and its geometry."""
    lo = [s.start - margin for s in box]
    hi = [s.stop + margin for s in box]
    src_lo = [max(0, v) for v in lo]
    src_hi = [min(n, v) for n, v in zip(array.shape, hi)]
    mask = np.zeros([h - low for low, h in zip(lo, hi)], np.uint8)
    dst = tuple(slice(s - low, s - low + (e - s)) for s, e, low in zip(src_lo, src_hi, lo))
    mask[dst] = array[tuple(slice(s, e) for s, e in zip(src_lo, src_hi))] == label
    origin = geometry.index_to_world(lo)  # the (possibly outside) first voxel of the cut-out
    return mask, Geometry(mask.shape, geometry.spacing_zyx, tuple(origin), geometry.direction)


def surface_of_mask(mask: np.ndarray, geometry: Geometry, *, smoothing_iterations: int = SMOOTHING_ITERATIONS,
                    normals: bool = True) -> vtkPolyData:
    """The smoothed boundary surface (triangles, LPS points) of a 0/1 ``uint8`` mask on ``geometry``."""
    image = to_vtk_image(mask, geometry, frame="lps")
    nets = vtkSurfaceNets3D()
    nets.SetInputData(image.image)
    nets.SetValue(0, 1)
    nets.SetBackgroundLabel(0)
    nets.SetOutputMeshTypeToTriangles()
    nets.SetSmoothing(smoothing_iterations > 0)
    nets.SetNumberOfIterations(max(0, int(smoothing_iterations)))
    nets.Update()
    mesh = nets.GetOutput()
    if normals and mesh.GetNumberOfPoints():
        n = vtkPolyDataNormals()
        n.SetInputData(mesh)
        n.SplittingOff()
        n.ConsistencyOn()
        n.AutoOrientNormalsOff()
        n.SetFlipNormals(bool(np.linalg.det(geometry.direction_matrix) < 0))  # a reflection turns them inwards
        n.ComputeCellNormalsOff()
        n.Update()
        mesh = n.GetOutput()
    out = vtkPolyData()
    out.ShallowCopy(mesh)  # drop the pipeline: the result travels between threads on its own
    return out


def build_label_surfaces(label_map: LabelMap, labels: Iterable[int] | None = None, *,
                         smoothing_iterations: int = SMOOTHING_ITERATIONS, step_zyx=(1, 1, 1),
                         progress: ProgressFn | None = None,
                         cancel: threading.Event | None = None) -> dict[int, vtkPolyData]:
    """One smoothed LPS surface per label present in ``label_map`` (``labels``: which; default all named and present).

    ``step_zyx`` > 1 meshes a downsampled label map (faster, coarser). Labels absent from the array
    are left out of the result. Safe off the GUI thread: it touches no renderer.
    """
    array, geometry = downsampled(label_map.array, label_map.geometry, step_zyx)
    wanted = sorted(set(label_map.labels) | set(label_map.present_labels())) if labels is None else list(labels)
    boxes = label_boxes(array, wanted)
    surfaces: dict[int, vtkPolyData] = {}
    total = len(boxes)
    for done, (label, box) in enumerate(sorted(boxes.items())):
        if cancel is not None and cancel.is_set():
            raise Cancelled("surface building cancelled")
        if progress is not None:
            progress(done, total, f"surface of {label_map.labels.get(label, f'label {label}')}")
        mask, geo = _cut_out(array, geometry, box, label)
        surfaces[label] = surface_of_mask(mask, geo, smoothing_iterations=smoothing_iterations)
    if progress is not None:
        progress(total, total, "surfaces built")
    return surfaces
