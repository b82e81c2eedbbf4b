"""Brush and eraser strokes on a label map (viewer/core/label_edit.py), Qt-free: geometry, undo, memory."""
from __future__ import annotations

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.label_edit import BrushStroke, capsule_pixels, plane_indices, record_edit
from viewer.core.layers import LabelLayer
from viewer.core.session import Session
from viewer.core.slicing import SlicePlane
from viewer.io.volume import LabelMap, Volume

# flipped x axis (radiological display flips it back) and anisotropic voxels
GEOM = Geometry((24, 36, 44), (2.5, 0.7, 0.9), (10.0, -20.0, 30.0), ((-1, 0, 0), (0, 1, 0), (0, 0, 1)))


def _layer(dtype=np.uint8) -> LabelLayer:
    labels = np.zeros(GEOM.shape_zyx, dtype)
    labels[:, 5:15, 5:20] = 2
    labels[10:14, 20:30, 20:40] = 3
    return LabelLayer(LabelMap(labels, GEOM, {2: "lung_left", 3: "nodule"}), name="labels")


def _expected(plane, k, centre, radius, shape_3d, end=None):
    """Voxels (3D bool mask) within ``radius`` mm of the centre pixel (or of the segment to ``end``), by hand:
    every display pixel of slice ``k``, its distance in mm with the plane's row and column spacing."""
    n_rows, n_cols = plane.shape
    row_mm, col_mm = plane.pixel_spacing
    mask = np.zeros(shape_3d, bool)
    r0, c0 = centre
    r1, c1 = end if end is not None else centre
    for r in range(n_rows):
        for c in range(n_cols):
            p = np.array([(r - r0) * row_mm, (c - c0) * col_mm])
            d = np.array([(r1 - r0) * row_mm, (c1 - c0) * col_mm])
            t = 0.0 if not d.any() else min(max(p @ d / (d @ d), 0.0), 1.0)
            if np.linalg.norm(p - t * d) <= radius + 1e-9:
                mask[tuple(int(v) for v in np.rint(plane.to_index(k, r, c)))] = True
    return mask


@pytest.mark.parametrize("view,k,centre", [("axial", 12, (10, 8)), ("coronal", 8, (9, 30)),
                                          ("sagittal", 25, (12, 3))])
def test_a_dab_paints_the_disc_of_the_plane_and_nothing_else(view, k, centre):
    layer = _layer()
    plane = SlicePlane.for_view(view, GEOM)
    before = layer.label_map.array.copy()
    stroke = BrushStroke(layer, plane, k, 3, radius_mm=4.0)
    stroke.add(centre[0] + 0.3, centre[1] - 0.4)  # snapped to the nearest voxel centre
    edit = stroke.finish(user="dr_b", time="2026-01-01T00:00:00+00:00")
    mask = _expected(plane, k, centre, 4.0, GEOM.shape_zyx)
    after = layer.label_map.array
    assert (after[mask] == 3).all()
    assert np.array_equal(after[~mask], before[~mask])
    assert edit.voxels == int(np.count_nonzero(before[mask] != 3))
    assert mask.sum() > 20  # a real disc, several voxels across in both directions
    # counts and volumes follow
    voxel_ml = float(np.prod(GEOM.spacing_zyx)) / 1000
    for label in (2, 3):
        assert layer.voxel_counts[label] == int(np.count_nonzero(after == label))
        assert layer.volumes_ml[label] == pytest.approx(np.count_nonzero(after == label) * voxel_ml)
    assert layer.meta["edited"] and layer.meta["edited_by"] == "dr_b" and layer.meta["revision"] != "0"
    # undo gives back the exact array, the counts and the marks; redo the painted one
    painted = after.copy()
    edit.undo()
    assert np.array_equal(layer.label_map.array, before) and "edited_by" not in layer.meta
    assert layer.voxel_counts[3] == int(np.count_nonzero(before == 3))
    edit.redo()
    assert np.array_equal(layer.label_map.array, painted) and layer.meta["edited_by"] == "dr_b"


def test_a_drag_covers_the_capsule_between_the_mouse_positions():
    layer = _layer()
    plane = SlicePlane.for_view("axial", GEOM)
    stroke = BrushStroke(layer, plane, 3, 3, radius_mm=2.0)
    stroke.add(20, 4)
    stroke.add(26, 30)  # a jump of 26 columns: no gaps
    stroke.finish()
    mask = _expected(plane, 3, (20, 4), 2.0, GEOM.shape_zyx, end=(26, 30))
    assert np.array_equal(layer.label_map.array[3] == 3, mask[3] | (_layer().label_map.array[3] == 3))


def test_capsule_pixels_match_brute_force_and_clip_to_the_image():
    rows, cols = capsule_pixels((2, 3), (2, 3), 1.0, (0.5, 1.0), (10, 10))
    got = set(zip(rows.tolist(), cols.tolist()))
    want = {(r, c) for r in range(10) for c in range(10) if ((r - 2) * 0.5) ** 2 + (c - 3) ** 2 <= 1.0}
    assert got == want
    rows, cols = capsule_pixels((-5, -5), (-5, -5), 1.0, (1.0, 1.0), (10, 10))
    assert rows.size == 0
    rows, cols = capsule_pixels((0, 0), (0, 0), 3.0, (1.0, 1.0), (10, 10))
    assert rows.min() == 0 and cols.min() == 0 and len(rows) == sum(1 for r in range(4) for c in range(4)
                                                                     if r * r + c * c <= 9)


def test_the_eraser_clears_only_the_chosen_label():
    layer = _layer()
    plane = SlicePlane.for_view("axial", GEOM)
    before = layer.label_map.array.copy()
    stroke = BrushStroke(layer, plane, 12, 3, radius_mm=6.0, erase=True)
    stroke.add(25, 20)  # inside the box of label 3 (rows 20-29, display columns 4-23), reaching out of it
    edit = stroke.finish()
    mask = _expected(plane, 12, (25, 20), 6.0, GEOM.shape_zyx)
    after = layer.label_map.array
    assert (after[mask & (before == 3)] == 0).all()
    assert np.array_equal(after[~(mask & (before == 3))], before[~(mask & (before == 3))])
    assert edit.voxels == int(np.count_nonzero(mask & (before == 3))) > 0
    assert edit.new_value == 0 and set(np.unique(edit.old_values)) == {3}
    # erasing label 2 where there is none changes nothing: no undo record
    nothing = BrushStroke(layer, plane, 12, 2, radius_mm=1.0, erase=True)
    nothing.add(30, 40)
    assert nothing.finish() is None


def test_the_undo_record_holds_only_the_changed_voxels():
    big = Geometry((40, 512, 512), (1.0, 0.7, 0.7), (0, 0, 0))
    layer = LabelLayer(LabelMap(np.zeros(big.shape_zyx, np.uint8), big, {1: "lesion"}))
    plane = SlicePlane.for_view("axial", big)
    stroke = BrushStroke(layer, plane, 20, 1, radius_mm=10.0)
    for col in range(100, 400, 7):
        stroke.add(256, col)
    edit = stroke.finish()
    changed = int(np.count_nonzero(layer.label_map.array))
    assert edit.voxels == changed > 5000
    assert edit.nbytes == changed * (4 + 1)  # int32 index + uint8 old value per changed voxel
    assert edit.nbytes < layer.label_map.array[20].nbytes  # less than one slice, let alone the volume


def test_a_read_only_array_is_copied_once_and_the_record_goes_on_the_session_undo_stack():
    session = Session()
    session.load_volume(Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM, meta={"modality": "CT"}))
    layer = _layer(np.uint16)
    layer.label_map.array.setflags(write=False)
    session.add_layer(layer)
    events = []
    session.labels_edited.connect(lambda lay, done: events.append((lay, done)))
    plane = SlicePlane.for_view("axial", GEOM)
    stroke = BrushStroke(layer, plane, 5, 2, radius_mm=3.0)
    assert layer.label_map.array.flags.writeable
    stroke.add(30, 30)
    copy = layer.label_map.array
    record_edit(session, stroke.finish())
    assert events == [(layer, True)] and session.annotations.undo_stack.undo_text == "brush stroke"
    second = BrushStroke(layer, plane, 6, 2, radius_mm=3.0)
    assert layer.label_map.array is copy  # no second copy
    second.add(30, 30)
    record_edit(session, second.finish())
    assert session.annotations.undo() and session.annotations.undo()
    assert int(np.count_nonzero(layer.label_map.array == 2)) == 24 * 10 * 15
    assert session.annotations.redo()
    assert len(events) == 5


def test_plane_indices_agree_with_to_index():
    for view in ("axial", "coronal", "sagittal"):
        plane = SlicePlane.for_view(view, GEOM)
        rows, cols = np.array([0, 3, plane.shape[0] - 1]), np.array([plane.shape[1] - 1, 2, 0])
        got = np.stack(plane_indices(plane, 4, rows, cols), axis=1)
        want = np.array([plane.to_index(4, r, c) for r, c in zip(rows, cols)])
        assert np.array_equal(got, want)


def test_labels_that_do_not_fit_are_refused():
    layer = _layer()
    with pytest.raises(ValueError):
        BrushStroke(layer, SlicePlane.for_view("axial", GEOM), 0, 300, 2.0)


def test_the_undo_history_does_not_keep_a_removed_layer_alive():
    import gc
    import weakref

    session = Session()
    session.load_volume(Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM, meta={"modality": "CT"}))
    layer = _layer()
    session.add_layer(layer)
    stroke = BrushStroke(layer, SlicePlane.for_view("axial", GEOM), 5, 3, radius_mm=3.0)
    stroke.add(10, 10)
    record_edit(session, stroke.finish())
    gone = weakref.ref(layer)
    session.remove_layer(layer)
    del layer, stroke
    gc.collect()
    assert gone() is None
    assert session.annotations.undo() and session.annotations.redo()  # nothing to do, no error
