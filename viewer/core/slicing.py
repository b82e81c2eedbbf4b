"""Reslice a volume for the three reading planes (axial, coronal, sagittal).

Each plane shows two of the array's axes on screen and steps through the
third, chosen by the direction cosines (the array axis closest to the
patient's S axis is the axial slice axis, and so on), so an oblique or
non-axial acquisition still gets three orthogonal views without
resampling. Screen axes follow the radiological convention
(``shared/CONVENTIONS.md``):

============  ====================  ====================
view          screen right →        screen down ↓
============  ====================  ====================
axial         patient left (+L)     posterior (+P)
coronal       patient left (+L)     inferior (−S)
sagittal      posterior (+P)        inferior (−S)
============  ====================  ====================

Slices are numpy views (transposes and reversed strides), never copies. What
the views show on top of that — interpolated display of anisotropic planes,
thick slabs, oblique planes (a ``SlicePlane`` on a rotated virtual grid) — is
:mod:`viewer.core.reformat`.
Display pixel ``(r, c)`` of slice ``k`` maps back to an array index and to
LPS millimetres, so the pixel value and position under the cursor are exact.

Image numbers and the direction of "next image" (``shared/CONVENTIONS.md``)
are :class:`ImageNumbers`: a native view of a DICOM series (the plane the
images were acquired in) shows each image's InstanceNumber and "next image"
goes to the next InstanceNumber, as on PACS; a reformat numbers its slices in
reading order, "next image" toward I (axial), P (coronal) and L (sagittal),
as Horos and RadiAnt do.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from radview_base.geometry import Geometry

VIEWS = ("axial", "coronal", "sagittal")

# patient axes in LPS: 0 = L (x), 1 = P (y), 2 = S (z)
_L, _P, _S = 0, 1, 2
#: (slice patient axis, (col patient axis, +1 if screen-right is the + direction), (row patient axis, sign))
_LAYOUT = {
    "axial": (_S, (_L, +1), (_P, +1)),
    "coronal": (_P, (_L, +1), (_S, -1)),
    "sagittal": (_L, (_P, +1), (_S, -1)),
}
_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))  # letter for +axis, −axis


def orientation_letters(vector_lps, threshold: float = 0.2) -> str:
    """Letters for an LPS direction, strongest first (e.g. ``"L"``, or ``"LA"`` for an oblique edge)."""
    v = np.asarray(vector_lps, dtype=float)
    v = v / (np.linalg.norm(v) or 1.0)
    order = np.argsort(-np.abs(v))
    return "".join(_LETTERS[a][0 if v[a] > 0 else 1] for a in order if abs(v[a]) >= threshold) or "?"


def patient_axis_of_array_axes(geometry: Geometry) -> tuple[int, int, int]:
    """For the array's x, y, z axes, the patient axis (0=L, 1=P, 2=S) each is closest to.

    A permutation maximising the summed |direction cosines|, so every patient
    axis gets exactly one array axis even for strongly oblique data.
    """
    d = np.abs(geometry.direction_matrix)  # rows: patient axes; columns: array x, y, z
    best = max(itertools.permutations(range(3)), key=lambda p: sum(d[p[a], a] for a in range(3)))
    return tuple(best)


@dataclass(frozen=True)
class SlicePlane:
    """How one reading view maps the volume array to the screen."""

    view: str
    geometry: Geometry
    slice_axis: int  # array axis (0=z, 1=y, 2=x) stepped by the slice number
    row_axis: int  # array axis shown top→bottom
    col_axis: int  # array axis shown left→right
    flip_row: bool
    flip_col: bool

    @classmethod
    def for_view(cls, view: str, geometry: Geometry) -> "SlicePlane":
        if view not in _LAYOUT:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        patient_of = patient_axis_of_array_axes(geometry)  # array xyz → patient axis
        array_of = {p: 2 - a for a, p in enumerate(patient_of)}  # patient axis → array axis (zyx numbering)
        d = geometry.direction_matrix
        slice_p, (col_p, col_sign), (row_p, row_sign) = _LAYOUT[view]

        def flipped(patient_axis: int, sign: int) -> bool:
            array_axis = array_of[patient_axis]
            return bool(np.sign(d[patient_axis, 2 - array_axis]) != sign)

        return cls(view, geometry, array_of[slice_p], array_of[row_p], array_of[col_p],
                   flipped(row_p, row_sign), flipped(col_p, col_sign))

    # --- sizes ---------------------------------------------------------------
    @property
    def oblique(self) -> bool:
        """The plane is rotated off the array's axes (``viewer.core.reformat.ObliquePlane``): its pixels are
        resampled, never the array's own."""
        return False

    @property
    def n_slices(self) -> int:
        return self.geometry.shape_zyx[self.slice_axis]

    @property
    def shape(self) -> tuple[int, int]:
        s = self.geometry.shape_zyx
        return s[self.row_axis], s[self.col_axis]

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row height, column width) in mm: the display aspect."""
        sp = self.geometry.spacing_zyx
        return sp[self.row_axis], sp[self.col_axis]

    @property
    def slice_spacing(self) -> float:
        return self.geometry.spacing_zyx[self.slice_axis]

    # --- pixels ----------------------------------------------------------------
    def extract(self, array: np.ndarray, k: int) -> np.ndarray:
        """Slice ``k`` of a ``(z, y, x[, c])`` array as ``(rows, cols[, c])`` (a view)."""
        index = [slice(None)] * 3
        index[self.slice_axis] = int(k)
        img = array[tuple(index)]
        remaining = [a for a in range(3) if a != self.slice_axis]
        if remaining.index(self.row_axis) == 1:
            img = np.swapaxes(img, 0, 1)
        if self.flip_row:
            img = img[::-1]
        if self.flip_col:
            img = img[:, ::-1]
        return img

    def to_index(self, k: float, row: float, col: float) -> np.ndarray:
        """Array index ``(z, y, x)`` (floats) of display pixel ``(row, col)`` on slice ``k``."""
        n_rows, n_cols = self.shape
        idx = np.zeros(3)
        idx[self.slice_axis] = k
        idx[self.row_axis] = (n_rows - 1 - row) if self.flip_row else row
        idx[self.col_axis] = (n_cols - 1 - col) if self.flip_col else col
        return idx

    def from_index(self, index_zyx) -> tuple[float, float, float]:
        """(k, row, col) of an array index."""
        idx = np.asarray(index_zyx, dtype=float)
        n_rows, n_cols = self.shape
        row = idx[self.row_axis]
        col = idx[self.col_axis]
        return (float(idx[self.slice_axis]), float(n_rows - 1 - row if self.flip_row else row),
                float(n_cols - 1 - col if self.flip_col else col))

    def to_world(self, k: float, row: float, col: float) -> np.ndarray:
        return self.geometry.index_to_world(self.to_index(k, row, col))

    def from_world(self, point_lps) -> tuple[float, float, float]:
        return self.from_index(self.geometry.world_to_index(point_lps))

    def slice_of(self, point_lps) -> int:
        """The slice number that contains ``point_lps`` (clamped to the volume)."""
        k = self.from_world(point_lps)[0]
        return int(np.clip(np.rint(k), 0, self.n_slices - 1))

    # --- orientation -----------------------------------------------------------
    def screen_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS unit vectors of screen-right and screen-down."""
        d = self.geometry.direction_matrix
        right = d[:, 2 - self.col_axis] * (-1 if self.flip_col else 1)
        down = d[:, 2 - self.row_axis] * (-1 if self.flip_row else 1)
        return right, down

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters at the middle of each screen edge: keys left, right, top, bottom."""
        right, down = self.screen_vectors()
        return {"right": orientation_letters(right), "left": orientation_letters(-right),
                "bottom": orientation_letters(down), "top": orientation_letters(-down)}


# --- image numbers and the direction of "next image" -----------------------------------------------------------
#: where "next image" goes in a reformat: (patient axis, +1 toward its + end (L, P, S) / -1 toward its - end)
NEXT_IMAGE_TOWARD = {"axial": (_S, -1), "coronal": (_P, +1), "sagittal": (_L, +1)}


@dataclass(frozen=True)
class ImageNumbers:
    """How one view numbers its slices ("Im 20/134") and which way "next image" (Down, wheel down) goes.

    ``step``: the change of the slice index ``k`` that "next image" makes (+1 or -1). ``instance_numbers``: per
    ``k``, the InstanceNumber of the image that slice is (None for a gap), in a native view of a DICOM series;
    None in a reformat, where ``number(k)`` is the slice's place in reading order, 1 to N.
    """

    n_slices: int
    step: int
    instance_numbers: tuple[int | None, ...] | None = None

    @property
    def native(self) -> bool:
        return self.instance_numbers is not None

    def order(self, k: int) -> int:
        """The place of slice ``k`` in reading order, 1 (first image) to N."""
        return int(k) + 1 if self.step > 0 else self.n_slices - int(k)

    def k_at(self, order: int) -> int:
        """The slice index of the ``order``-th image in reading order (clamped to 1..N)."""
        order = int(np.clip(order, 1, self.n_slices))
        return order - 1 if self.step > 0 else self.n_slices - order

    def step_from(self, k: int, images: int, wrap: bool = False) -> int:
        """The slice index ``images`` images after slice ``k`` (before it when negative); clamped, or wrapped."""
        place = self.order(k) - 1 + int(images)
        place = place % self.n_slices if wrap else int(np.clip(place, 0, self.n_slices - 1))
        return self.k_at(place + 1)

    def number(self, k: int) -> int | None:
        """The image number shown for slice ``k``: its InstanceNumber (native), else its place in reading order."""
        if self.instance_numbers is not None:
            return self.instance_numbers[int(k)]
        return self.order(k)

    def text(self, k: int) -> str:
        """"Im 20/134" (InstanceNumber 20), "Im –/134" for a gap, "Im 12/256 reformat"."""
        number = self.number(k)
        shown = "–" if number is None else str(number)
        return f"Im {shown}/{self.n_slices}" + ("" if self.native else " reformat")


def reformat_step(plane: SlicePlane) -> int:
    """The ``k`` step toward I (axial), P (coronal) or L (sagittal)."""
    axis, sign = NEXT_IMAGE_TOWARD[plane.view]
    along = plane.geometry.direction_matrix[axis, 2 - plane.slice_axis]  # LPS direction of increasing k
    return 1 if along * sign > 0 else -1


def image_numbers(plane: SlicePlane, instance_numbers=None) -> ImageNumbers:
    """The numbering of ``plane``'s slices. ``instance_numbers``: per array z index, the InstanceNumber of that
    slice's image (``Volume.meta["instance_numbers"]``; None where unknown). A view stepping through array z is
    the native plane: it shows those numbers and steps in their order; any other view is a reformat."""
    n = plane.n_slices
    numbers = None
    if instance_numbers is not None and not plane.oblique and plane.slice_axis == 0 and len(instance_numbers) == n:
        numbers = tuple(None if v is None else int(v) for v in instance_numbers)
        if all(v is None for v in numbers):
            numbers = None
    if numbers is not None:
        known = [v for v in numbers if v is not None]
        rising = sum(b > a for a, b in zip(known, known[1:]))
        falling = sum(b < a for a, b in zip(known, known[1:]))
        if rising != falling:
            return ImageNumbers(n, 1 if rising > falling else -1, numbers)
    return ImageNumbers(n, reformat_step(plane), numbers)


def slice_location(plane: SlicePlane, k: int) -> tuple[str, float]:
    """Where slice ``k`` lies, in mm: ("Z", the LPS z of an axial slice) — "X" / "Y" for sagittal / coronal slices
    along a patient axis; ("Loc", the distance along the slice normal from the origin) for an oblique slice."""
    rows, cols = plane.shape
    centre = plane.to_world(k, (rows - 1) / 2.0, (cols - 1) / 2.0)
    direction = plane.geometry.direction_matrix[:, 2 - plane.slice_axis]
    axis = int(np.argmax(np.abs(direction)))
    if abs(direction[axis]) > 0.9995:  # within ~2° of a patient axis
        return "XYZ"[axis], float(centre[axis])
    normal = direction * np.sign(direction[axis]) / (np.linalg.norm(direction) or 1.0)
    return "Loc", float(centre @ normal)
