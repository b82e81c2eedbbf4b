"""Level of detail for the 3D view while it moves: sparser rays and coarse surface copies (no Qt).

Pure functions: the sample-distance rule runs on the GUI thread per frame; :func:`coarse_surfaces`
is polydata work for the surface worker thread, like ``build_label_surfaces``.
"""
from __future__ import annotations

import math

from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkQuadricClustering

from viewer.io.dicom_index import Cancelled
from viewer.render3d.scene import INTERACTIVE_IMAGE_SAMPLE_DISTANCE

#: interactive frames aim at this time: the interactive volume's rays get sparser (up to
#: MAX_INTERACTIVE_IMAGE_SAMPLE_DISTANCE pixels apart) while its frames take longer
INTERACTIVE_TARGET_MS = 80.0
MAX_INTERACTIVE_IMAGE_SAMPLE_DISTANCE = 4.0


def adapted_image_sample_distance(current: float, frame_ms: float, target_ms: float = INTERACTIVE_TARGET_MS,
                                  lowest: float = INTERACTIVE_IMAGE_SAMPLE_DISTANCE,
                                  highest: float = MAX_INTERACTIVE_IMAGE_SAMPLE_DISTANCE) -> float:
    """The image sample distance (pixels between rays) for the next interactive frame.

    A ray-cast frame's time grows with the number of rays, 1/distance², so the distance that meets
    ``target_ms`` is ``current · sqrt(frame_ms / target_ms)``; steps are limited to ×/÷ 1.5 per frame
    (one slow frame from elsewhere does not make the next one coarse) and kept in [lowest, highest].
    """
    if not frame_ms > 0 or not current > 0:
        return float(min(max(current, lowest), highest))
    proposed = current * math.sqrt(frame_ms / target_ms)
    proposed = min(max(proposed, current / 1.5), current * 1.5)
    return float(min(max(proposed, lowest), highest))


#: surfaces with more triangles than this get a coarse copy (about LOD_BIN_MM apart), drawn while the view moves
LOD_MIN_CELLS = 50_000
LOD_BIN_MM = 3.0


def coarse_surfaces(surfaces: dict, *, bin_mm: float = LOD_BIN_MM, min_cells: int = LOD_MIN_CELLS,
                    cancel=None) -> dict:
    """A coarse copy (vtkQuadricClustering on a ``bin_mm`` grid, with normals) of each surface over ``min_cells``.

    Pure polydata work, like :func:`build_label_surfaces`: runs on the surface worker thread. On the
    demo's 4.2 M triangles (body 2.4 M) it leaves about a tenth, and the frames while dragging are
    several times faster on a software renderer.
    """
    out = {}
    for label, poly in surfaces.items():
        if cancel is not None and cancel.is_set():
            raise Cancelled("surface building cancelled")
        if poly.GetNumberOfCells() < min_cells:
            continue
        b = poly.GetBounds()
        clustering = vtkQuadricClustering()
        clustering.SetInputData(poly)
        clustering.AutoAdjustNumberOfDivisionsOff()
        clustering.SetNumberOfDivisions(*(max(2, int(math.ceil((b[2 * i + 1] - b[2 * i]) / bin_mm))) for i in range(3)))
        normals = vtkPolyDataNormals()
        normals.SetInputConnection(clustering.GetOutputPort())
        normals.SplittingOff()
        normals.ConsistencyOff()  # the clusters keep the input's winding; re-ordering them leaves dark seams
        normals.Update()
        coarse = vtkPolyData()
        coarse.ShallowCopy(normals.GetOutput())
        out[label] = coarse
    return out
