"""Editing a label map by hand: brush and eraser strokes on one slice plane, undoable, Qt-free.

A stroke paints (or erases) a disc of radius ``radius_mm`` around each point the mouse passes, on the
current slice of a reading view, in the voxel index space of the label map along that plane: a display
pixel ``(row, col)`` of slice ``k`` is one voxel (``SlicePlane.to_index``), and the disc is measured in
millimetres with the plane's row and column spacing, so it is round on screen for anisotropic pixels.
Mouse positions are snapped to the nearest voxel centre; between two positions the stroke covers every
voxel within the radius of the segment joining them (a capsule), so a fast drag leaves no gaps.

The brush writes the chosen label over whatever is there; the eraser sets the voxels *of the chosen
label* back to background (0) and leaves the other labels alone (as 3D Slicer's Erase does).

The undo record (:class:`LabelEdit`) holds only the voxels the stroke changed: their flat indices and old
values (5-10 bytes per changed voxel), never a copy of the volume or of a slice. The first edit of a layer
whose array is read-only makes one writable copy of it. An edit marks the layer: ``meta["edited"]``,
``meta["edited_by"]`` (the OS account name), ``meta["edited_at"]`` (local ISO time) and a new
``meta["revision"]`` (a review decided on another revision no longer applies, see :mod:`.review`);
undoing the stroke restores them, and the voxel counts and volumes (mL) follow every stroke, undo and redo.
"""
from __future__ import annotations

import math
import uuid
import weakref
from dataclasses import dataclass, field

import numpy as np

from viewer.core.annotations import current_user
from viewer.core.undo import Command

EDIT_META_KEYS = ("edited", "edited_by", "edited_at", "revision")
_MISSING = object()
MIN_RADIUS_MM, MAX_RADIUS_MM = 0.25, 100.0


def capsule_pixels(p0, p1, radius_mm: float, pixel_spacing, shape) -> tuple[np.ndarray, np.ndarray]:
    """Display pixels ``(rows, cols)`` within ``radius_mm`` of the segment from pixel ``p0`` to ``p1``
    (integer ``(row, col)``; equal for a single disc), clipped to an image of ``shape`` (rows, cols)."""
    (r0, c0), (r1, c1) = (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1]))
    row_mm, col_mm = float(pixel_spacing[0]), float(pixel_spacing[1])
    radius = float(radius_mm)
    n_rows, n_cols = int(shape[0]), int(shape[1])
    reach_r, reach_c = int(math.floor(radius / row_mm)), int(math.floor(radius / col_mm))
    lo_r, hi_r = max(min(r0, r1) - reach_r, 0), min(max(r0, r1) + reach_r, n_rows - 1)
    lo_c, hi_c = max(min(c0, c1) - reach_c, 0), min(max(c0, c1) + reach_c, n_cols - 1)
    if lo_r > hi_r or lo_c > hi_c:
        empty = np.zeros(0, np.intp)
        return empty, empty
    rows, cols = np.mgrid[lo_r:hi_r + 1, lo_c:hi_c + 1]
    y, x = (rows - r0) * row_mm, (cols - c0) * col_mm
    dy, dx = (r1 - r0) * row_mm, (c1 - c0) * col_mm
    length2 = dy * dy + dx * dx
    t = np.clip((y * dy + x * dx) / length2, 0.0, 1.0) if length2 > 0 else 0.0
    inside = (y - t * dy) ** 2 + (x - t * dx) ** 2 <= radius * radius * (1 + 1e-9) + 1e-9
    return rows[inside].astype(np.intp), cols[inside].astype(np.intp)


def plane_indices(plane, k: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Array indices ``(z, y, x)`` of display pixels ``(rows, cols)`` on slice ``k`` of ``plane`` (vectorised
    ``SlicePlane.to_index``)."""
    n_rows, n_cols = plane.shape
    idx: list = [None, None, None]
    idx[plane.slice_axis] = np.full(rows.shape, int(k), np.intp)
    idx[plane.row_axis] = (n_rows - 1 - rows) if plane.flip_row else rows
    idx[plane.col_axis] = (n_cols - 1 - cols) if plane.flip_col else cols
    return tuple(idx)


def _set_meta(meta: dict, values: dict) -> None:
    for key, value in values.items():
        if value is _MISSING:
            meta.pop(key, None)
        else:
            meta[key] = value


def local_now_iso() -> str:
    from viewer.core.review import local_now_iso as now

    return now()


@dataclass(eq=False)
class LabelEdit:
    """One stroke's undo record: the changed voxels (flat C-order indices) and their old values.

    It holds its layer weakly: a layer dropped from the session (another series opened) is freed even while
    the study's undo history still lists the stroke, whose undo and redo then do nothing."""

    layer_ref: weakref.ref
    flat_index: np.ndarray
    old_values: np.ndarray
    new_value: int
    meta_before: dict
    meta_after: dict
    text: str = "brush stroke"
    applied: bool = True
    plane_view: str = ""
    slice_index: int = -1
    _count_delta: dict = field(default_factory=dict, repr=False)

    @property
    def layer(self):
        return self.layer_ref()

    @property
    def voxels(self) -> int:
        return int(self.flat_index.size)

    @property
    def nbytes(self) -> int:
        """Memory the record holds (its arrays)."""
        return int(self.flat_index.nbytes + self.old_values.nbytes)

    def _write(self, values) -> None:
        array = self.layer.label_map.array
        array[np.unravel_index(self.flat_index, array.shape)] = values

    def count_delta(self) -> dict[int, int]:
        """``{label: voxels gained}`` when the edit is applied (negative: lost)."""
        if not self._count_delta:
            labels, counts = np.unique(self.old_values, return_counts=True)
            delta = {int(v): -int(n) for v, n in zip(labels, counts)}
            delta[int(self.new_value)] = delta.get(int(self.new_value), 0) + self.voxels
            self._count_delta = {k: v for k, v in delta.items() if v}
        return dict(self._count_delta)

    def undo(self) -> None:
        if not self.applied or self.layer is None:
            return
        self._write(self.old_values)
        self.layer.count_changed({k: -v for k, v in self.count_delta().items()})
        _set_meta(self.layer.meta, self.meta_before)
        self.applied = False

    def redo(self) -> None:
        if self.applied or self.layer is None:
            return
        self._write(self.new_value)
        self.layer.count_changed(self.count_delta())
        _set_meta(self.layer.meta, self.meta_after)
        self.applied = True


class BrushStroke:
    """A brush (``erase=False``: paints ``label``) or eraser (``erase=True``: ``label`` → 0) stroke in progress.

    The label map changes as the stroke goes (``add``); :meth:`finish` updates the counts and the layer's
    edit marks and returns the undo record (None when nothing changed).
    """

    def __init__(self, layer, plane, k: int, label: int, radius_mm: float, erase: bool = False):
        label_map = layer.label_map
        array = label_map.array
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError("a label map holds integers")
        info = np.iinfo(array.dtype)
        if not (1 <= int(label) <= info.max):
            raise ValueError(f"label {label} does not fit a {array.dtype} label map")
        if tuple(plane.geometry.shape_zyx) != tuple(array.shape):
            raise ValueError("the view's plane is not on the label map's grid")
        if not array.flags.writeable:  # e.g. shared with the AI result: one copy, on the first edit only
            label_map.array = array = np.array(array, copy=True)
        self.layer, self.plane, self.k = layer, plane, int(k)
        self.label, self.erase = int(label), bool(erase)
        self.radius_mm = float(np.clip(radius_mm, MIN_RADIUS_MM, MAX_RADIUS_MM))
        self.array = array
        self._index_dtype = np.int32 if array.size < 2 ** 31 else np.int64
        self._index: list[np.ndarray] = []
        self._old: list[np.ndarray] = []
        self.last: tuple[int, int] | None = None
        self.changed = 0

    def add(self, row: float, col: float) -> int:
        """Continue the stroke to display pixel ``(row, col)`` (snapped to the nearest voxel); voxels changed."""
        point = (int(round(row)), int(round(col)))
        start = self.last if self.last is not None else point
        self.last = point
        rows, cols = capsule_pixels(start, point, self.radius_mm, self.plane.pixel_spacing, self.plane.shape)
        if not rows.size:
            return 0
        zyx = plane_indices(self.plane, self.k, rows, cols)
        current = self.array[zyx]
        sel = current == self.label if self.erase else current != self.label
        n = int(np.count_nonzero(sel))
        if not n:
            return 0
        zyx = tuple(a[sel] for a in zyx)
        self._index.append(np.ravel_multi_index(zyx, self.array.shape).astype(self._index_dtype))
        self._old.append(current[sel])
        self.array[zyx] = 0 if self.erase else self.label
        self.changed += n
        return n

    def finish(self, user: str | None = None, time: str | None = None) -> LabelEdit | None:
        if not self._index:
            return None
        meta = self.layer.meta
        before = {key: meta.get(key, _MISSING) for key in EDIT_META_KEYS}
        after = {"edited": True, "edited_by": user or current_user(), "edited_at": time or local_now_iso(),
                 "revision": uuid.uuid4().hex[:16]}
        edit = LabelEdit(weakref.ref(self.layer), np.concatenate(self._index), np.concatenate(self._old),
                         0 if self.erase else self.label, before, after,
                         "eraser stroke" if self.erase else "brush stroke", applied=True,
                         plane_view=getattr(self.plane, "view", ""), slice_index=self.k)
        self.layer.count_changed(edit.count_delta())
        _set_meta(meta, after)
        self._index, self._old = [], []
        return edit


def record_edit(session, edit: LabelEdit) -> None:
    """Put an applied stroke on the session's undo stack (Ctrl+Z / Ctrl+Y, with the measurements) and tell
    the session's subscribers (legend volumes, 3D surfaces, views) that the layer's voxels changed."""
    def do() -> None:
        edit.redo()
        if edit.layer is not None:
            session.notify_labels_edited(edit.layer, True)

    def undo() -> None:
        edit.undo()
        if edit.layer is not None:
            session.notify_labels_edited(edit.layer, True)

    session.annotations.undo_stack.push(Command(edit.text, do, undo))
