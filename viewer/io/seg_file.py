"""Reading DICOM Segmentation objects (binary, fractional and label-map SEG) onto a voxel grid.

``read_seg`` places a SEG's frames on a reference series' grid (a frame off the grid is an error, never a
silent misalignment): by each frame's position (PerFrameFunctionalGroups), or, for a frame without one, by the
source image it was derived from (ReferencedSOPInstanceUID, given ``source_slices``); a SEG that covers some
slices only is zeros elsewhere. ``seg_volume`` opens a SEG on its own grid, which is what
``series_loader.load_path`` returns for a SEG file. ``read_seg_reference`` reads what a study index needs to
know of a SEG (its referenced series, segment numbers, names and recommended colours) and
``with_segmentations`` keeps a folder's SEG files in its index as segmentations of the series they reference.
The writer is :mod:`viewer.export.seg`. Qt-free and torch-free; highdicom is imported when a SEG is read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from radview_base.geometry import Geometry
from viewer.io.dicom_header import NON_IMAGE_SOP_CLASSES, Skipped
from viewer.io.dicom_index import StudyIndex
from viewer.io.errors import LoadError
from viewer.io.volume import LabelMap, Volume

__all__ = ["SEG_SOP_CLASSES", "SegError", "read_seg", "read_seg_segments", "load_seg", "seg_volume", "is_seg_file",
           "seg_geometry", "SegReference", "read_seg_reference", "SegmentedStudyIndex", "with_segmentations",
           "segment_colors"]

#: SOP classes read as segmentations.
SEG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
}
#: The private element that keeps a segment's label id of the label map it was written from.
PRIVATE_GROUP, PRIVATE_CREATOR, PRIVATE_LABEL_ELEMENT = 0x0071, "RADVIEW 1", 0x01
#: How far (in voxels, along each axis) a SEG frame may lie from the reference grid's voxel centres.
GRID_TOLERANCE_VOXELS = 0.1
_BACKGROUND_TYPE = ("125040", "DCM")


class SegError(ValueError):
    """A SEG that cannot be written or read as asked; one line for the user."""


def code_tuple(item) -> list[str] | None:
    if item is None:
        return None
    return [str(item.CodeValue if "CodeValue" in item else item.get("LongCodeValue", item.get("URNCodeValue", ""))),
            str(item.CodingSchemeDesignator), str(item.CodeMeaning)]


@dataclass(eq=False)
class SegmentStack:
    """Segments that may overlap: ``masks[i]`` is the boolean (z, y, x) mask of label value ``numbers[i]``."""

    masks: np.ndarray  # (n, z, y, x) bool
    geometry: Geometry
    labels: dict[int, str]  # label value -> name, in the order of ``masks``
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.masks.ndim != 4 or tuple(self.masks.shape[1:]) != self.geometry.shape_zyx:
            raise ValueError(f"masks {self.masks.shape} do not match the geometry {self.geometry.shape_zyx}")
        if len(self.labels) != self.masks.shape[0]:
            raise ValueError(f"{len(self.labels)} names for {self.masks.shape[0]} masks")
        self.labels = {int(k): str(v) for k, v in self.labels.items()}

    @property
    def numbers(self) -> list[int]:
        return list(self.labels)

    def to_label_map(self) -> LabelMap:
        """One label per voxel: the smallest segment covering it (equal sizes: the higher number)."""
        numbers = self.numbers
        dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
        out = np.zeros(self.geometry.shape_zyx, dtype)
        sizes = [int(np.count_nonzero(m)) for m in self.masks]
        for i in sorted(range(len(numbers)), key=lambda i: (-sizes[i], numbers[i])):
            out[self.masks[i]] = numbers[i]
        return LabelMap(out, self.geometry, dict(self.labels), meta=dict(self.meta))


def is_seg_file(path: str) -> bool:
    """True when ``path`` is a DICOM Segmentation (or Label Map Segmentation) object."""
    import pydicom

    if not os.path.isfile(path):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - anything unreadable is "not a SEG"
        return False
    return str(ds.get("SOPClassUID", "")) in SEG_SOP_CLASSES


class _DatasetSeg:
    """A SEG that highdicom does not open because some frames have no position in patient space (they are placed
    by their source images): its dataset, frames decoded one at a time with pydicom."""

    def __init__(self, ds, path: str):
        self.dataset, self.filename = ds, path

    def __getattr__(self, name):
        if name in ("dataset", "filename"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __contains__(self, key) -> bool:
        return key in self.dataset

    def get(self, key, default=None):
        return self.dataset.get(key, default)

    def get_stored_frame(self, number: int) -> np.ndarray:
        from pydicom.pixels import get_decoder

        array, _ = get_decoder(self.dataset.file_meta.TransferSyntaxUID).as_array(self.dataset, index=number - 1)
        return array

    def get_volume_geometry(self):
        return None


def _open(seg_or_path):
    import highdicom as hd
    import pydicom

    if isinstance(seg_or_path, hd.seg.Segmentation):
        return seg_or_path, str(getattr(seg_or_path, "filename", "") or "")
    if isinstance(seg_or_path, _DatasetSeg):
        return seg_or_path, seg_or_path.filename
    path = os.fspath(seg_or_path)
    if not os.path.isfile(path):
        raise SegError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise SegError(f"{path}: not a DICOM file ({exc})") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SEG_SOP_CLASSES:
        raise SegError(f"{path} is not a DICOM SEG (SOP class {sop_class or 'missing'})")
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False), path
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        try:
            unplaced = any(f.position is None for f in _frames(ds))
        except (SegError, ValueError, AttributeError, KeyError, TypeError, IndexError):
            unplaced = False
        if unplaced and "PixelData" in ds:  # frames placed by their source images, decoded without highdicom
            return _DatasetSeg(ds, path), path
        raise SegError(f"{path}: malformed SEG ({exc})") from exc


@dataclass
class _Frame:
    index: int  # 0-based
    segment: int | None  # None: a LABELMAP frame (pixel values are segment numbers)
    position: np.ndarray | None  # None: placed by its source image (``sources``) or refused
    orientation: np.ndarray | None
    spacing: tuple[float, float] | None  # (between rows, between columns)
    sources: tuple[tuple[str, int | None], ...] = ()  # (ReferencedSOPInstanceUID, ReferencedFrameNumber or None)


def _item(groups, name):
    if groups is not None and name in groups and len(getattr(groups, name)):
        return getattr(groups, name)[0]
    return None


def _sources(groups) -> tuple[tuple[str, int | None], ...]:
    """The source images a frame was derived from: (ReferencedSOPInstanceUID, ReferencedFrameNumber or None)."""
    out = []
    for derivation in (groups.get("DerivationImageSequence", []) if groups is not None else []):
        for source in derivation.get("SourceImageSequence", []):
            uid = str(source.get("ReferencedSOPInstanceUID", "") or "")
            if not uid:
                continue
            numbers = source.get("ReferencedFrameNumber")
            if numbers is None or numbers == "":
                out.append((uid, None))
                continue
            for n in ([numbers] if isinstance(numbers, (int, float, str)) else list(numbers)):
                out.append((uid, int(n)))
    return tuple(out)


def _frames(seg) -> list[_Frame]:
    if str(seg.get("DimensionOrganizationType", "")) == "TILED_FULL":
        raise SegError("a tiled (slide microscopy) SEG has no patient-space frames to place on a volume")
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    per_frame = seg.get("PerFrameFunctionalGroupsSequence", [])
    labelmap = str(seg.get("SegmentationType", "")) == "LABELMAP"
    out = []
    for i in range(int(seg.get("NumberOfFrames", 1) or 1)):
        groups = per_frame[i] if i < len(per_frame) else None
        pos = _item(groups, "PlanePositionSequence") or _item(shared, "PlanePositionSequence")
        ori = _item(groups, "PlaneOrientationSequence") or _item(shared, "PlaneOrientationSequence")
        meas = _item(groups, "PixelMeasuresSequence") or _item(shared, "PixelMeasuresSequence")
        sources = _sources(groups) or _sources(shared)
        placed = pos is not None and ori is not None and meas is not None and "PixelSpacing" in meas
        if not placed and not sources:
            raise SegError(f"SEG frame {i + 1} has no position, orientation or pixel spacing in patient space, "
                           "and no source image")
        segment = None
        if not labelmap:
            ident = _item(groups, "SegmentIdentificationSequence") or _item(shared, "SegmentIdentificationSequence")
            if ident is None:
                raise SegError(f"SEG frame {i + 1} does not say which segment it belongs to")
            segment = int(ident.ReferencedSegmentNumber)
        if placed:
            out.append(_Frame(i, segment, np.asarray(pos.ImagePositionPatient, float),
                              np.asarray(ori.ImageOrientationPatient, float),
                              (float(meas.PixelSpacing[0]), float(meas.PixelSpacing[1])), sources))
        else:
            out.append(_Frame(i, segment, None, None, None, sources))
    return out


class _Placer:
    """Places SEG frames on a grid: frame pixel (row a, column b) -> voxel t + a·u + b·v (integer vectors).

    A frame with a position in patient space is placed by it; one without is placed on the slice of its source
    image (``source_slices``: ``(SOPInstanceUID, frame number or None)`` -> slice index of the grid), which it
    must cover whole (the same rows and columns).
    """

    def __init__(self, geometry: Geometry, rows: int, cols: int, tol: float = GRID_TOLERANCE_VOXELS,
                 source_slices: Mapping[tuple[str, int | None], int] | None = None):
        self.g, self.rows, self.cols, self.tol = geometry, rows, cols, tol
        self.shape = np.asarray(geometry.shape_zyx)
        self.source_slices = dict(source_slices or {})
        self._cache: dict[tuple, tuple] = {}

    def _source_slice(self, fr: _Frame) -> int | None:
        for uid, number in fr.sources:  # a single-frame image: frame 1 and "no frame number" are the same
            keys = [(uid, number)] + ([(uid, 1)] if number is None else [(uid, None)] if number == 1 else [])
            for key in keys:
                if key in self.source_slices:
                    return int(self.source_slices[key])
        return None

    def _by_source(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = self._source_slice(fr)
        if z is None:
            uids = ", ".join(sorted({uid for uid, _ in fr.sources})) or "none"
            raise SegError(f"SEG frame {fr.index + 1} has no position in patient space and its source image "
                           f"({uids}) is not a slice of this series")
        if (self.rows, self.cols) != tuple(int(v) for v in self.shape[1:]):
            raise SegError(f"SEG frame {fr.index + 1} has no position in patient space and its size "
                           f"({self.rows}×{self.cols}) is not its source slice's ({self.shape[1]}×{self.shape[2]})")
        return np.array([z, 0, 0]), np.array([0, 1, 0]), np.array([0, 0, 1])

    def _axes(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray]:
        key = (tuple(np.round(fr.orientation, 6)), fr.spacing)
        if key not in self._cache:
            row_dir, col_dir = fr.orientation[:3], fr.orientation[3:]
            m = np.linalg.inv(self.g.direction_matrix * self.g.spacing_xyz)  # LPS -> (i, j, k)
            u = (m @ (col_dir * fr.spacing[0]))[::-1]  # one row down, in (k, j, i)
            v = (m @ (row_dir * fr.spacing[1]))[::-1]  # one column right
            ru, rv = np.rint(u), np.rint(v)
            drift = max(np.abs(u - ru).max() * max(self.rows - 1, 1), np.abs(v - rv).max() * max(self.cols - 1, 1))
            unit = lambda w: np.count_nonzero(w) == 1 and np.abs(w).sum() == 1  # noqa: E731
            if not (unit(ru) and unit(rv) and np.argmax(np.abs(ru)) != np.argmax(np.abs(rv))) or drift > self.tol:
                g = self.g
                raise SegError(
                    f"the SEG's frames (orientation {_fmt(fr.orientation)}, pixel spacing {_fmt(fr.spacing)} mm) "
                    f"are not on the series' grid (pixel spacing {_fmt(g.spacing_zyx[1:])} mm, axes "
                    f"{_fmt(g.direction_matrix[:, 0])} / {_fmt(g.direction_matrix[:, 1])}): it would need resampling")
            self._cache[key] = (ru.astype(int), rv.astype(int))
        return self._cache[key]

    def origin(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if fr.position is None:
            return self._by_source(fr)
        u, v = self._axes(fr)
        t = self.g.world_to_index(fr.position)
        rt = np.rint(t)
        off = np.abs(t - rt)
        if off.max() > self.tol:
            mm = float(np.max(off * np.asarray(self.g.spacing_zyx)))
            raise SegError(f"SEG frame {fr.index + 1} at {_fmt(fr.position)} lies {mm:.3f} mm off the series' "
                           f"voxel centres (tolerance {self.tol:g} voxel)")
        return rt.astype(int), u, v

    def place(self, fr: _Frame, mask: np.ndarray):
        """Where the frame's foreground pixels go: ``((target, source) or None, pixels outside the grid)``.

        ``array[target]`` is the part of a (z, y, x) grid the frame covers: with ``source``
        a boolean mask over that part (frames on the grid's own row/column axes: basic
        slicing), or, with ``source`` None, exactly the foreground voxels (index arrays).
        """
        t, u, v = self.origin(fr)
        total = int(np.count_nonzero(mask))
        if u[1] == 1 and v[2] == 1:  # the common case: rows along y, columns along x
            k, j0, i0 = t
            ja, jb = max(j0, 0), min(j0 + self.rows, self.shape[1])
            ia, ib = max(i0, 0), min(i0 + self.cols, self.shape[2])
            if not 0 <= k < self.shape[0] or ja >= jb or ia >= ib:
                return None, total
            src = mask[ja - j0:jb - j0, ia - i0:ib - i0]
            return ((int(k), slice(ja, jb), slice(ia, ib)), src), total - int(np.count_nonzero(src))
        a, b = np.nonzero(mask)
        idx = t[:, None] + np.outer(u, a) + np.outer(v, b)
        inside = np.all((idx >= 0) & (idx < self.shape[:, None]), axis=0)
        if not inside.any():
            return None, total
        return (tuple(idx[:, inside]), None), int((~inside).sum())


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in np.ravel(values)) + ")"


def _frame_mask(seg, fr: _Frame, fractional_max: float | None) -> np.ndarray:
    stored = seg.get_stored_frame(fr.index + 1)
    if fractional_max is not None:
        return stored.astype(np.float64) * 2 >= fractional_max
    return stored


def _segment_infos(seg) -> dict[int, dict]:
    infos = {}
    for item in seg.SegmentSequence:
        n = int(item.SegmentNumber)
        type_item = item.SegmentedPropertyTypeCodeSequence[0]
        modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
        algo = item.get("SegmentationAlgorithmIdentificationSequence")
        algo = algo[0] if algo else None
        color = None
        if "RecommendedDisplayCIELabValue" in item:
            try:
                import highdicom as hd

                color = [int(c) for c in hd.color.CIELabColor.from_dicom_value(
                    item.RecommendedDisplayCIELabValue).to_rgb()]
            except (ValueError, TypeError, AttributeError):
                color = None
        try:
            value = int(item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[PRIVATE_LABEL_ELEMENT].value)
        except (KeyError, TypeError, ValueError):
            value = None
        infos[n] = {
            "number": n,
            "label_value": value,
            "label": str(item.get("SegmentLabel", "") or f"segment {n}"),
            "category": code_tuple(item.SegmentedPropertyCategoryCodeSequence[0]),
            "type": code_tuple(type_item),
            "type_modifier": code_tuple(modifier[0]) if modifier else None,
            "algorithm_type": str(item.get("SegmentAlgorithmType", "")),
            "algorithm_name": str(algo.get("AlgorithmName", "")) if algo else str(item.get("SegmentAlgorithmName", "")),
            "algorithm_version": str(algo.get("AlgorithmVersion", "")) if algo else "",
            "algorithm_family": code_tuple(algo.AlgorithmFamilyCodeSequence[0])
            if algo is not None and "AlgorithmFamilyCodeSequence" in algo else None,
            "algorithm_parameters": str(algo.get("AlgorithmParameters", "")) if algo else "",
            "tracking_id": str(item.get("TrackingID", "")),
            "tracking_uid": str(item.get("TrackingUID", "")),
            "color_rgb": color,
        }
    return infos


def _label_values(infos: Mapping[int, dict], numbers: Sequence[int]) -> dict[int, int]:
    """segment number -> label value: the label ids radview recorded when it wrote the SEG, else the numbers."""
    values = {n: infos[n].get("label_value") for n in numbers}
    if all(isinstance(v, int) and v > 0 for v in values.values()) and len(set(values.values())) == len(values):
        return dict(values)
    return {n: n for n in numbers}


def _is_background(info: Mapping, number: int) -> bool:
    return number == 0 or (info.get("type") or [None, None])[:2] == list(_BACKGROUND_TYPE)


def _seg_meta(seg, path: str, infos: dict) -> dict:
    refs = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
    return {
        "modality": "SEG",
        "source_file": path,
        "sop_instance_uid": str(seg.get("SOPInstanceUID", "")),
        "series_uid": str(seg.get("SeriesInstanceUID", "")),
        "study_uid": str(seg.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(seg.get("FrameOfReferenceUID", "")),
        "referenced_series_uids": refs,
        "description": str(seg.get("SeriesDescription", "")),
        "content_description": str(seg.get("ContentDescription", "")),
        "content_label": str(seg.get("ContentLabel", "")),
        "segmentation_type": str(seg.get("SegmentationType", "")),
    }


def _reference_geometry(seg, reference) -> tuple[Geometry, list[str]]:
    warnings: list[str] = []
    if isinstance(reference, Volume):
        meta = reference.meta or {}
        ours, theirs = str(meta.get("frame_of_reference_uid") or ""), str(seg.get("FrameOfReferenceUID", ""))
        if ours and theirs and ours != theirs:
            raise SegError(f"the SEG is in frame of reference {theirs}, the series in {ours}: they do not share "
                           "patient coordinates")
        uid = str(meta.get("series_uid") or "")
        refs = [str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])]
        if uid and refs and uid not in refs:
            warnings.append(f"the SEG was made on series {refs[0]}, shown here on {uid} (same frame of reference)")
        return reference.geometry, warnings
    if isinstance(reference, Geometry):
        return reference, warnings
    raise TypeError(f"reference must be a Volume or a Geometry, got {type(reference).__name__}")


def _fractional_max(seg) -> float | None:
    if str(seg.get("SegmentationType", "")) == "FRACTIONAL":
        return float(seg.get("MaximumFractionalValue", 255) or 255)
    return None


def _place_all(seg, geometry: Geometry, paint, order=None, source_slices=None) -> dict[int, int]:
    """Decode every frame and hand its in-grid pixels to ``paint(segment, target, source)``; return outside counts.

    For LABELMAP frames ``paint`` is called once per segment value present in the frame.
    ``order``: segment numbers in the order to paint (frames of other segments are skipped).
    ``source_slices``: see :class:`_Placer` (frames without a position).
    """
    frames = _frames(seg)
    placer = _Placer(geometry, int(seg.Rows), int(seg.Columns), source_slices=source_slices)
    fractional_max = _fractional_max(seg)
    outside: dict[int, int] = {}
    if order is not None:
        rank = {n: r for r, n in enumerate(order)}
        frames = sorted((f for f in frames if f.segment is None or f.segment in rank),
                        key=lambda f: rank.get(f.segment, -1))
    for fr in frames:
        stored = _frame_mask(seg, fr, fractional_max)
        if fr.segment is None:
            pairs = [(int(v), stored == v) for v in np.unique(stored) if v != 0]
        else:
            pairs = [(fr.segment, stored.astype(bool, copy=False))]
        for number, mask in pairs:
            if not mask.any():
                continue
            placed, out = placer.place(fr, mask)
            outside[number] = outside.get(number, 0) + out
            if placed is not None:
                paint(number, *placed)
    return outside


def _outside_warnings(outside: dict[int, int], infos: Mapping) -> list[str]:
    return [f"{n} voxel(s) of segment {s} ({infos.get(s, {}).get('label', s)}) lie outside the series and are "
            "not shown" for s, n in sorted(outside.items()) if n]


def read_seg(seg_or_path, reference: Volume | Geometry,
             source_slices: Mapping[tuple[str, int | None], int] | None = None) -> LabelMap:
    """The SEG's segments as a :class:`LabelMap` on ``reference``'s grid.

    Label values are the label ids radview recorded when it wrote the SEG, else the segment numbers.
    Frames are placed by their positions; a frame without one by its source image, when ``source_slices``
    (``(SOPInstanceUID, frame number or None)`` -> slice index, e.g. :func:`source_slices_of`) knows it.
    Slices no frame covers are zeros.

    Overlaps: the smallest segment wins (see the module notes). ``meta`` holds the
    SEG's identity, ``segments`` (number -> label, codes, algorithm), ``overlapping_voxels``
    and ``warnings``. Raises :class:`SegError` when the SEG's frames are not on the grid.
    """
    seg, path = _open(seg_or_path)
    geometry, warnings = _reference_geometry(seg, reference)
    infos = _segment_infos(seg)
    numbers = [n for n in sorted(infos) if not _is_background(infos[n], n)]
    value_of = _label_values(infos, numbers)
    top = max(value_of.values(), default=0)
    out = np.zeros(geometry.shape_zyx, np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)
    valid = set(numbers)

    if str(seg.get("SegmentationType", "")) == "LABELMAP":
        order = None
    else:  # pass 1: segment sizes, so that smaller segments are painted last (they win overlaps)
        sizes = {n: 0 for n in numbers}

        def count(number, target, source):
            if number in sizes:
                sizes[number] += int(np.count_nonzero(source)) if source is not None else len(target[0])

        _place_all(seg, geometry, count, source_slices=source_slices)
        order = sorted(numbers, key=lambda n: (-sizes[n], n))

    overlapped: np.ndarray | None = None  # voxels in more than one segment (allocated at the first overlap)

    def paint(number, target, source):
        nonlocal overlapped
        if number not in valid:
            return
        hit = _paint(out, target, source, value_of[number])
        if hit is not None:
            if overlapped is None:
                overlapped = np.zeros(geometry.shape_zyx, bool)
            overlapped[hit] = True

    outside = _place_all(seg, geometry, paint, order, source_slices=source_slices)
    meta = _seg_meta(seg, path, infos)
    meta["segments"] = {value_of[n]: infos[n] for n in numbers}
    overlaps = int(np.count_nonzero(overlapped)) if overlapped is not None else 0
    meta["overlapping_voxels"] = overlaps
    if overlaps:
        warnings.append(f"{overlaps} voxel(s) belong to more than one segment: each shows the smallest segment "
                        "covering it")
    warnings += _outside_warnings({k: v for k, v in outside.items() if k in valid}, infos)
    meta["warnings"] = warnings
    return LabelMap(out, geometry, {value_of[n]: infos[n]["label"] for n in numbers}, meta=meta)


def _paint(array: np.ndarray, target, source, value):
    """Paint ``value`` into ``array`` where a placed frame is on (see ``_Placer.place``).

    Returns the index (into ``array``) of the painted voxels that already held a label, or None when none did.
    """
    if source is not None:
        view = array[target]
        before = view[source]
        view[source] = value
        if not before.any():
            return None
        rows, cols = np.nonzero(source)
        hit = before != 0
        k, rs, cs = target
        return (np.full(int(hit.sum()), k), rows[hit] + rs.start, cols[hit] + cs.start)
    before = array[target]
    array[target] = value
    if not before.any():
        return None
    hit = before != 0
    return tuple(i[hit] for i in target)


def read_seg_segments(seg_or_path, reference: Volume | Geometry,
                      source_slices: Mapping[tuple[str, int | None], int] | None = None) -> SegmentStack:
    """Every segment's own boolean mask on ``reference``'s grid (overlaps kept; one volume per segment)."""
    seg, path = _open(seg_or_path)
    geometry, warnings = _reference_geometry(seg, reference)
    infos = _segment_infos(seg)
    numbers = [n for n in sorted(infos) if not _is_background(infos[n], n)]
    masks = np.zeros((len(numbers),) + geometry.shape_zyx, bool)
    slot = {n: i for i, n in enumerate(numbers)}

    def paint(number, target, source):
        if number in slot:
            _paint(masks[slot[number]], target, source, True)

    outside = _place_all(seg, geometry, paint, source_slices=source_slices)
    value_of = _label_values(infos, numbers)
    meta = _seg_meta(seg, path, infos)
    meta["segments"] = {value_of[n]: infos[n] for n in numbers}
    overlap = int(np.count_nonzero(masks.sum(axis=0, dtype=np.uint16) > 1)) if len(numbers) > 1 else 0
    meta["overlapping_voxels"] = overlap
    meta["warnings"] = warnings + _outside_warnings({k: v for k, v in outside.items() if k in slot}, infos)
    return SegmentStack(masks, geometry, {value_of[n]: infos[n]["label"] for n in numbers}, meta)


def seg_geometry(seg_or_path) -> Geometry:
    """The SEG's own voxel grid (highdicom's ``get_volume_geometry``: its frames as a regular volume)."""
    seg, path = _open(seg_or_path)
    try:
        vg = seg.get_volume_geometry()
    except (ValueError, RuntimeError, AttributeError) as exc:
        raise SegError(f"{path or 'the SEG'}: its frames are not a regular volume ({exc}); open it on its "
                       "source series") from exc
    if vg is None:
        frames = _frames(seg)
        if frames and all(f.position is not None and np.allclose(f.position, frames[0].position) for f in frames):
            shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
            meas = _item(shared, "PixelMeasuresSequence")
            thickness = float(getattr(meas, "SliceThickness", 0) or 0) or 1.0
            row_dir, col_dir = frames[0].orientation[:3], frames[0].orientation[3:]
            direction = np.column_stack([row_dir, col_dir, np.cross(row_dir, col_dir)])
            return Geometry((1, int(seg.Rows), int(seg.Columns)), (thickness, *frames[0].spacing),
                            tuple(frames[0].position), direction)
        raise SegError(f"{path or 'the SEG'}: its frames are not a regular volume; open it on its source series")
    a = np.asarray(vg.affine, dtype=float)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = a[:3, 2], a[:3, 1], a[:3, 0], a[:3, 3]
    geometry = Geometry.from_affine_lps(m, tuple(int(v) for v in vg.spatial_shape))
    if np.linalg.det(geometry.direction_matrix) < 0:  # slices stacked against the normal: flip, as the loader does
        d = geometry.direction_matrix.copy()
        last = geometry.index_to_world((geometry.shape_zyx[0] - 1, 0, 0))
        d[:, 2] = 0.0 - d[:, 2]
        geometry = Geometry(geometry.shape_zyx, geometry.spacing_zyx, tuple(last), d)
    return geometry


def load_seg(seg_or_path, reference: Volume | Geometry | None = None) -> LabelMap:
    """:func:`read_seg` on ``reference``'s grid, or on the SEG's own grid (:func:`seg_geometry`) without one."""
    seg, _ = _open(seg_or_path)
    return read_seg(seg, reference if reference is not None else seg_geometry(seg))


def seg_volume(path: str) -> Volume:
    """A SEG opened on its own: its label map as a Volume (modality "SEG"; names in ``meta["labels"]``).

    What ``series_loader.load_path`` returns for a SEG file; to show a SEG over
    its source series, use :func:`read_seg` with that series' volume.
    """
    try:
        labels = load_seg(path)
    except SegError as exc:
        raise LoadError(str(exc)) from exc
    meta = dict(labels.meta)
    warnings = list(meta.pop("warnings", []))
    meta.update({"labels": dict(labels.labels), "is_label_map": True, "series_key": meta.get("series_uid", ""),
                 "window": None, "patient": {}, "study": {}})
    return Volume(labels.array, labels.geometry, meta=meta, warnings=warnings)


# --- a SEG in a study index -------------------------------------------------------------------------------------
def source_slices_of(entry, geometry: Geometry) -> dict[tuple[str, int | None], int]:
    """``(SOPInstanceUID, frame number or None)`` -> slice index of ``geometry``, for a series' index entry
    (:class:`~viewer.io.dicom_index.SeriesEntry`): what places SEG frames that have no position of their own."""
    out: dict[tuple[str, int | None], int] = {}
    for fr in getattr(entry, "frames", ()):
        if fr.position is None or not fr.file.sop_instance_uid:
            continue
        k = float(geometry.world_to_index(np.asarray(fr.position, float))[0])
        z = int(round(k))
        if abs(k - z) > GRID_TOLERANCE_VOXELS or not 0 <= z < geometry.shape_zyx[0]:
            continue
        number = int(fr.frame) + 1
        out[(fr.file.sop_instance_uid, number)] = z
        if int(getattr(fr.file, "number_of_frames", 1) or 1) <= 1:
            out[(fr.file.sop_instance_uid, None)] = z
    return out


def segment_colors(labels: LabelMap) -> dict[int, tuple[int, int, int]]:
    """label value -> the SEG's recommended display colour (sRGB 0-255), for the segments that have one."""
    out = {}
    for value, info in (labels.meta or {}).get("segments", {}).items():
        rgb = info.get("color_rgb") if isinstance(info, Mapping) else None
        if rgb is not None and len(rgb) == 3:
            out[int(value)] = tuple(int(np.clip(c, 0, 255)) for c in rgb)
    return out


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a SEG: its number, the label value it is shown with, its name and recommended colour."""

    number: int
    value: int
    label: str
    color_rgb: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class SegReference:
    """A DICOM SEG file as a study index knows it: what it segments and which series it was made on."""

    path: str
    sop_instance_uid: str
    series_uid: str
    referenced_series_uids: tuple[str, ...]
    segments: tuple[SegmentInfo, ...]
    description: str = ""
    segmentation_type: str = ""
    sop_class_uid: str = ""

    @property
    def labels(self) -> dict[int, str]:
        """label value -> segment name, as the layer read from this SEG will name them."""
        return {s.value: s.label for s in self.segments}

    @property
    def title(self) -> str:
        return self.description or os.path.basename(self.path)

    def to_dict(self) -> dict:
        return {"path": self.path, "sop_instance_uid": self.sop_instance_uid, "series_uid": self.series_uid,
                "referenced_series_uids": list(self.referenced_series_uids), "description": self.description,
                "segmentation_type": self.segmentation_type,
                "segments": [{"number": s.number, "value": s.value, "label": s.label,
                              "color_rgb": list(s.color_rgb) if s.color_rgb else None} for s in self.segments]}


#: what a SEG's header is read for in a study index (its frames and pixels are not read)
_REFERENCE_TAGS = ["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SeriesDescription",
                   "ContentLabel", "ContentDescription", "SegmentationType", "SegmentSequence",
                   "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence"]


def _referenced_series(ds) -> tuple[str, ...]:
    uids = [str(s.get("SeriesInstanceUID", "")) for s in ds.get("ReferencedSeriesSequence", [])]
    for study in ds.get("StudiesContainingOtherReferencedInstancesSequence", []):
        uids += [str(s.get("SeriesInstanceUID", "")) for s in study.get("ReferencedSeriesSequence", [])]
    return tuple(dict.fromkeys(u for u in uids if u))


def read_seg_reference(path: str) -> SegReference:
    """The SEG's identity, referenced series and segments (numbers, names, recommended colours), from its header
    only; :class:`SegError` when ``path`` is not a readable SEG."""
    import pydicom

    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_REFERENCE_TAGS)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise SegError(f"{path}: not a DICOM file ({exc})") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SEG_SOP_CLASSES:
        raise SegError(f"{path} is not a DICOM SEG (SOP class {sop_class or 'missing'})")
    try:
        infos = _segment_infos(ds)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise SegError(f"{path}: malformed segment description ({exc})") from exc
    numbers = [n for n in sorted(infos) if not _is_background(infos[n], n)]
    value_of = _label_values(infos, numbers)
    segments = tuple(SegmentInfo(n, value_of[n], infos[n]["label"],
                                 tuple(infos[n]["color_rgb"]) if infos[n]["color_rgb"] else None) for n in numbers)
    description = str(ds.get("SeriesDescription", "") or ds.get("ContentLabel", "") or "")
    return SegReference(path, str(ds.get("SOPInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
                        _referenced_series(ds), segments, description, str(ds.get("SegmentationType", "")),
                        sop_class)


@dataclass
class SegmentedStudyIndex(StudyIndex):
    """A study index that keeps its DICOM SEG files as segmentations of the series they reference."""

    segmentations: list[SegReference] = field(default_factory=list)

    def segmentations_of(self, series_uid: str) -> list[SegReference]:
        """The SEGs made on ``series_uid`` (a SeriesInstanceUID; every part of a split series shares it)."""
        return [s for s in self.segmentations if series_uid in s.referenced_series_uids]

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["segmentations"] = [s.to_dict() for s in self.segmentations]
        return out


def with_segmentations(index: StudyIndex) -> SegmentedStudyIndex:
    """``index`` with its DICOM SEG files kept as segmentations of the series they reference.

    The scan skips SEG files ("open it as a segmentation of its source series") and indexes label-map SEGs
    as series of their own; here each SEG whose referenced series is in the index leaves the skipped files (or
    the series) and joins ``segmentations``. A SEG whose series is not in the index stays skipped, with a
    reason that says so. ``index`` itself is not changed.
    """
    seg_reason = NON_IMAGE_SOP_CLASSES.get("1.2.840.10008.5.1.4.1.1.66.4", "")
    seg_series = [e for e in index.series if e.frames and e.frames[0].file.sop_class_uid in SEG_SOP_CLASSES]
    image_uids = {e.series_uid for e in index.series if e not in seg_series}
    candidates = [(s.path, s) for s in index.skipped if s.reason == seg_reason]
    candidates += [(path, e) for e in seg_series for path in e.files]
    found: list[SegReference] = []
    attached: set[int] = set()  # ids of the skipped records and series entries that became segmentations
    reasons: dict[int, str] = {}
    for path, origin in candidates:
        try:
            ref = read_seg_reference(path)
        except SegError as exc:
            reasons[id(origin)] = f"DICOM SEG that cannot be read ({exc})"
            continue
        if image_uids.intersection(ref.referenced_series_uids):
            found.append(ref)
            attached.add(id(origin))
        elif ref.referenced_series_uids:
            reasons[id(origin)] = (f"DICOM SEG of series {ref.referenced_series_uids[0]}, which is not here: open that "
                                   "series, then File → Load segmentation…")
        else:
            reasons[id(origin)] = ("DICOM SEG that names no source series: open its series, then File → Load "
                                   "segmentation…")
    skipped = [Skipped(s.path, reasons.get(id(s), s.reason)) for s in index.skipped if id(s) not in attached]
    series = [e for e in index.series if id(e) not in attached]
    kept = {id(e) for e in series}
    patients = []
    for patient in index.patients:
        studies = [replace(st, series=[e for e in st.series if id(e) in kept]) for st in patient.studies]
        studies = [st for st in studies if st.series]
        if studies:
            patients.append(replace(patient, studies=studies))
    kept_fields = {f.name: getattr(index, f.name) for f in fields(StudyIndex)}  # any field the index may grow
    kept_fields.update(patients=patients, series=series, skipped=skipped)
    return SegmentedStudyIndex(**kept_fields, segmentations=found)
