"""Label surfaces: one LPS mesh per label, of the right size and place, buildable off the GUI thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy

from radview_base.geometry import Geometry
from viewer.io.dicom_index import Cancelled
from viewer.io.volume import LabelMap
from viewer.render3d.label_surfaces import build_label_surfaces, label_boxes


def rotated_geometry(handed=1.0) -> Geometry:
    t = np.radians(30)
    d = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]) @ np.diag([handed, 1, 1])
    return Geometry((30, 32, 34), (1.2, 1.0, 1.1), (-15.0, 40.0, 7.0), d)


def ball_map(g: Geometry, centres_kji, radius_mm, labels) -> LabelMap:
    k, j, i = np.indices(g.shape_zyx)
    world = g.index_to_world(np.stack([k, j, i], -1).astype(float))
    arr = np.zeros(g.shape_zyx, np.uint8)
    for c, label in zip(centres_kji, labels):
        arr[np.linalg.norm(world - g.index_to_world(c), axis=-1) <= radius_mm] = label
    return LabelMap(arr, g, {v: f"organ {v}" for v in labels} | {9: "absent"})


@pytest.mark.parametrize("handed", [1.0, -1.0])
def test_surfaces_sit_at_the_labels_lps_place_with_outward_normals(handed):
    g = rotated_geometry(handed)
    centres = [(10, 10, 12), (20, 22, 24)]
    lm = ball_map(g, centres, 5.0, [1, 4])
    surfaces = build_label_surfaces(lm)
    assert set(surfaces) == {1, 4}  # label 9 is named but absent
    for label, kji in zip((1, 4), centres):
        c = g.index_to_world(kji)
        pts = vtk_to_numpy(surfaces[label].GetPoints().GetData())
        normals = vtk_to_numpy(surfaces[label].GetPointData().GetNormals())
        r = np.linalg.norm(pts - c, axis=1)
        assert np.linalg.norm(pts.mean(axis=0) - c) < 0.2
        assert 4.5 < r.mean() < 5.6 and r.std() < 0.3  # smoothed, not shrunk
        assert np.mean(np.sum((pts - c) * normals, axis=1) > 0) > 0.99


def test_a_label_touching_the_grid_edge_is_closed():
    g = Geometry((10, 10, 10), (1, 1, 1), (0, 0, 0))
    arr = np.zeros(g.shape_zyx, np.uint8)
    arr[:5, :, :] = 2  # fills the bottom half, touching five faces of the grid
    surfaces = build_label_surfaces(LabelMap(arr, g, {2: "slab"}))
    pts = vtk_to_numpy(surfaces[2].GetPoints().GetData())
    assert pts[:, 2].min() < 0.0 and pts[:, 0].min() < 0.0 and pts[:, 0].max() > 9.0  # faces beyond the edge voxels


def test_only_asked_labels_progress_and_cancel():
    g = rotated_geometry()
    lm = ball_map(g, [(10, 10, 12), (20, 22, 24)], 4.0, [1, 4])
    seen = []
    surfaces = build_label_surfaces(lm, labels=[4], progress=lambda d, t, m: seen.append((d, t, m)))
    assert set(surfaces) == {4}
    assert seen[0][:2] == (0, 1) and seen[-1][:2] == (1, 1) and "organ 4" in seen[0][2]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        build_label_surfaces(lm, cancel=cancel)


def test_label_boxes_in_one_pass():
    arr = np.zeros((6, 7, 8), np.uint16)
    arr[1:3, 2:5, 3:4] = 300
    arr[5, 6, 7] = 2
    boxes = label_boxes(arr, [2, 300, 7])
    assert boxes[300] == (slice(1, 3), slice(2, 5), slice(3, 4)) and boxes[2] == (slice(5, 6), slice(6, 7), slice(7, 8))
    assert 7 not in boxes


def test_surfaces_built_on_a_worker_thread():
    lm = ball_map(rotated_geometry(), [(15, 16, 17)], 6.0, [3])
    out = {}
    t = threading.Thread(target=lambda: out.update(build_label_surfaces(lm)))
    t.start()
    t.join(60)
    assert out[3].GetNumberOfPolys() > 100
