"""Measurements and text annotations in patient coordinates, and the per-study collection that edits them.

An :class:`Annotation` is immutable: editing makes a new version with the
same id, which keeps undo simple and lets a background writer serialise a
snapshot safely. Its JSON form (:meth:`Annotation.as_dict`) is a contract
shared with the DICOM SR exporter::

    {"id", "kind": "length"|"angle"|"ellipse"|"rectangle"|"arrow",
     "points_lps": [[x, y, z], ...], "series_uid", "label", "value",
     "unit": "mm"|"deg"|"", "stats": {"mean", "sd", "min", "max", "area_mm2"} (ROIs only),
     "plane": {"normal": [..], "point": [..]}, "created_by", "created_at"}

``value`` is the length (mm) or the angle (deg), null for ROIs (their numbers
are in ``stats``) and arrows. Point layouts per kind: :mod:`.measurements`.

A measurement on a 2D image (radiograph, ultrasound, a cine frame) has no
patient coordinates: it carries ``"image"`` (the SOP instance, frame and the
image's calibration, :class:`~viewer.core.image_ref.ImageRef`) and
``"points_image"`` (``[column, row]`` pixel centres) instead of
``points_lps`` and ``plane``; its length is in "mm" where the image is
calibrated for those points, else in "px", and ROI areas in ``area_mm2`` or
``area_px2``.
A study's file is ``{"study_uid", "measurements": [...], "review": {...}}``.
Keys this version does not know are kept and written back.
"""
from __future__ import annotations

import getpass
import math
import os
import uuid
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

import numpy as np
from psygnal import Signal

from viewer.core import measurements as m
from viewer.core.image_ref import ImageRef, image_values, polygon_area
from viewer.core.undo import Command, UndoStack

KNOWN_KEYS = ("id", "kind", "points_lps", "series_uid", "label", "value", "unit", "stats", "plane", "created_by",
              "created_at", "points_image", "image")
STATS_KEYS = ("mean", "sd", "min", "max", "area_mm2")
IMAGE_STATS_KEYS = STATS_KEYS + ("area_px2",)
#: the plane of every measurement on a 2D image (its points are pixel coordinates, z = 0)
IMAGE_PLANE_NORMAL = (0.0, 0.0, 1.0)


class AnnotationFormatError(ValueError):
    """A measurement entry that does not follow the JSON contract."""


def current_user() -> str:
    """The OS account name (``getpass.getuser()``), or "unknown" where there is none."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Plane:
    """The plane an annotation was drawn on: unit normal and a point on it (LPS mm)."""

    normal: tuple[float, float, float]
    point: tuple[float, float, float]

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, dtype=float).reshape(3)
        length = float(np.linalg.norm(n))
        if not math.isfinite(length) or length < 1e-9:
            raise ValueError("a plane needs a non-zero normal")
        object.__setattr__(self, "normal", tuple(float(v) for v in n / length))
        object.__setattr__(self, "point", tuple(float(v) for v in np.asarray(self.point, dtype=float).reshape(3)))

    def distance(self, points) -> np.ndarray:
        """Signed distance (mm) of LPS point(s) from the plane."""
        return (np.asarray(points, dtype=float) - np.asarray(self.point)) @ np.asarray(self.normal)

    def is_parallel(self, normal, tol: float = 1e-3) -> bool:
        n = np.asarray(normal, dtype=float)
        return abs(abs(float(np.asarray(self.normal) @ (n / np.linalg.norm(n)))) - 1.0) < tol

    def as_dict(self) -> dict:
        return {"normal": list(self.normal), "point": list(self.point)}


@dataclass(frozen=True)
class Annotation:
    id: str
    kind: str
    points_lps: tuple[tuple[float, float, float], ...]
    plane: Plane
    series_uid: str = ""
    label: str = ""
    value: float | None = None
    stats: Mapping[str, float | None] | None = None
    created_by: str = ""
    created_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys of a newer version, written back unchanged
    image: ImageRef | None = None  # a measurement on a 2D image: points are (column, row, 0) pixel centres

    def __post_init__(self) -> None:
        if self.kind not in m.KINDS:
            raise AnnotationFormatError(f"unknown kind {self.kind!r} (one of {', '.join(m.KINDS)})")
        pts = np.asarray(self.points_lps, dtype=float)
        if pts.shape != (m.N_POINTS[self.kind], 3) or not np.isfinite(pts).all():
            raise AnnotationFormatError(f"a {self.kind} has {m.N_POINTS[self.kind]} finite LPS points, "
                                        f"got shape {pts.shape}")
        object.__setattr__(self, "points_lps", tuple(tuple(float(v) for v in p) for p in pts))

    @property
    def points(self) -> np.ndarray:
        return np.asarray(self.points_lps, dtype=float)

    @property
    def unit(self) -> str:
        if self.image is not None and self.kind == "length":
            return self.image.unit(self.points)
        return m.UNITS[self.kind]

    @property
    def is_roi(self) -> bool:
        return self.kind in m.ROI_KINDS

    def with_points(self, points) -> "Annotation":
        return dc_replace(self, points_lps=tuple(map(tuple, np.asarray(points, dtype=float))))

    # --- JSON ------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        d = dict(self.extra)
        d["id"], d["kind"] = self.id, self.kind
        if self.image is None:
            d["points_lps"] = [list(p) for p in self.points_lps]
        else:
            d["points_image"] = [[p[0], p[1]] for p in self.points_lps]
            d["image"] = self.image.as_dict()
        d.update({"series_uid": self.series_uid, "label": self.label, "value": self.value, "unit": self.unit})
        if self.is_roi:
            keys = STATS_KEYS if self.image is None else IMAGE_STATS_KEYS
            d["stats"] = {k: (self.stats or {}).get(k) for k in keys}
        if self.image is None:
            d["plane"] = self.plane.as_dict()
        d.update({"created_by": self.created_by, "created_at": self.created_at})
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Annotation":
        if not isinstance(d, Mapping):
            raise AnnotationFormatError(f"a measurement is a JSON object, got {type(d).__name__}")
        try:
            kind = d["kind"]
            if kind not in m.KINDS:
                raise AnnotationFormatError(f"unknown kind {kind!r}")
            ident = d["id"]
            if not isinstance(ident, str) or not ident:
                raise AnnotationFormatError("id must be a non-empty string")
            for key in ("series_uid", "label", "created_by", "created_at"):
                if not isinstance(d.get(key, ""), str):
                    raise AnnotationFormatError(f"{key} must be a string")
            image = ImageRef.from_dict(d["image"]) if d.get("image") is not None else None
            unit = d.get("unit", m.UNITS[kind])
            allowed = (m.UNITS[kind], "px") if image is not None and kind == "length" else (m.UNITS[kind],)
            if unit not in allowed:
                raise AnnotationFormatError(f"a {kind} has unit {m.UNITS[kind]!r}, not {unit!r}")
            value = d.get("value")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise AnnotationFormatError("value must be a number or null")
            stats = None
            if kind in m.ROI_KINDS and d.get("stats") is not None:
                raw = d["stats"]
                if not isinstance(raw, Mapping):
                    raise AnnotationFormatError("stats must be an object")
                keys = STATS_KEYS if image is None else IMAGE_STATS_KEYS
                stats = {k: (None if raw.get(k) is None else float(raw[k])) for k in keys}
            if image is not None:
                points = tuple((float(p[0]), float(p[1]), 0.0) for p in d["points_image"])
                plane = Plane(IMAGE_PLANE_NORMAL, (0.0, 0.0, 0.0))
            else:
                points = tuple(tuple(p) for p in d["points_lps"])
                plane = Plane(tuple(d["plane"]["normal"]), tuple(d["plane"]["point"]))
            return cls(id=ident, kind=kind, points_lps=points, plane=plane, series_uid=d.get("series_uid", ""),
                       label=d.get("label", ""), value=None if value is None else float(value), stats=stats,
                       created_by=d.get("created_by", ""), created_at=d.get("created_at", ""),
                       extra={k: v for k, v in d.items() if k not in KNOWN_KEYS}, image=image)
        except AnnotationFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise AnnotationFormatError(f"measurement {d.get('id', '?')!r}: {type(exc).__name__}: {exc}") from exc


def study_key(meta: Mapping) -> str:
    """The key a volume's annotations are stored under: its StudyInstanceUID, else one made from its file path."""
    uid = str(meta.get("study_uid") or "").strip()
    if uid:
        return uid
    source = str(meta.get("source_file") or meta.get("series_uid") or "")
    if not source:
        return ""
    import hashlib

    return "file-" + hashlib.sha1(os.path.abspath(source).encode("utf-8")).hexdigest()[:20]


def new_annotation(kind: str, points, plane: Plane, series_uid: str = "", label: str = "") -> Annotation:
    """A fresh annotation (new id, the OS user, now) — values are filled by :func:`measured`."""
    return Annotation(uuid.uuid4().hex, kind, tuple(map(tuple, np.asarray(points, dtype=float))), plane,
                      series_uid=series_uid, label=label, created_by=current_user(), created_at=now_iso())


def new_image_annotation(kind: str, points_xy, image: ImageRef, series_uid: str = "", label: str = "") -> Annotation:
    """A fresh measurement on a 2D image: ``points_xy`` are (column, row) pixel centres."""
    pts = np.zeros((len(points_xy), 3))
    pts[:, :2] = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    return Annotation(uuid.uuid4().hex, kind, tuple(map(tuple, pts)), Plane(IMAGE_PLANE_NORMAL, (0.0, 0.0, 0.0)),
                      series_uid=series_uid, label=label, created_by=current_user(), created_at=now_iso(),
                      image=image)


def _measured_on_image(a: Annotation, images=None) -> Annotation:
    ref = a.image
    scaled = ref.scaled(a.points)
    if a.kind == "length":
        return dc_replace(a, value=m.length_mm(scaled))
    if a.kind == "angle":
        return dc_replace(a, value=m.angle_deg(scaled))
    if not a.is_roi:
        return dc_replace(a, value=None)
    outline = m.outline(a.kind, a.points)
    area_px = polygon_area(outline[:, :2])
    calibrated = ref.calibrated(outline)
    stats = {k: None for k in IMAGE_STATS_KEYS}
    stats["area_px2"] = area_px
    if calibrated:
        sy, sx = ref.calibration.spacing_mm
        stats["area_mm2"] = area_px * sx * sy
    image = next((im for im in (images.images if images is not None else ())
                  if im.display.sop_instance_uid == ref.sop_instance_uid), None)
    values = image_values(image, ref.frame, outline[:, :2])
    if values is not None and values.size:
        stats.update(mean=float(values.mean()), sd=float(values.std()), min=float(values.min()),
                     max=float(values.max()))
    return dc_replace(a, value=None, stats=stats)


def measured(annotation: Annotation, volume=None, images=None) -> Annotation:
    """The annotation with its value (and ROI statistics from ``volume`` when it is the annotation's series;
    from the 2D series ``images`` for a measurement on a 2D image)."""
    a = annotation
    if a.image is not None:
        return _measured_on_image(a, images)
    if a.kind == "length":
        return dc_replace(a, value=m.length_mm(a.points))
    if a.kind == "angle":
        return dc_replace(a, value=m.angle_deg(a.points))
    if a.is_roi:
        same_series = volume is not None and (not a.series_uid or volume.meta.get("series_uid", "") == a.series_uid)
        if same_series:
            return dc_replace(a, value=None, stats=m.roi_stats(volume, a.kind, a.points, a.plane.normal))
        stats = dict(a.stats or {})
        stats["area_mm2"] = m.roi_area_mm2(a.kind, a.points)
        return dc_replace(a, value=None, stats=stats)
    return dc_replace(a, value=None)


def display_text(annotation: Annotation, hu: bool = True, lines: bool = False) -> str:
    """What the view writes next to an annotation: "23.4 mm", "47.1°", "mean 40 HU, SD 12, 3.14 cm²".

    ``lines``: an ROI's area on a line of its own (narrower, for the views).
    """
    a = annotation
    label = a.label.strip()
    if a.kind == "arrow":
        return label
    if a.image is not None:
        text = _image_text(a, lines)
    elif a.kind == "length":
        text = f"{a.value:.1f} mm"
    elif a.kind == "angle":
        text = f"{a.value:.1f}°"
    else:
        s = a.stats or {}
        area = s.get("area_mm2")
        area_text = "" if area is None else (f"{area / 100:.2f} cm²" if area >= 100 else f"{area:.1f} mm²")
        if s.get("mean") is None:
            text = area_text
        else:
            unit = " HU" if hu else ""
            text = f"mean {s['mean']:.0f}{unit}, SD {s['sd']:.0f}" + ("\n" if lines else ", ") + area_text
    return f"{label}: {text}" if label else text


def _image_text(a: Annotation, lines: bool) -> str:
    """A 2D image measurement's text, with what its number means ("12.3 mm at detector", "50.0 px …")."""
    ref = a.image
    if a.kind == "length":
        return f"{a.value:.1f} {ref.label(a.points)}" if a.value is not None else ""
    if a.kind == "angle":
        return f"{a.value:.1f}°" if a.value is not None else ""
    s = a.stats or {}
    if s.get("area_mm2") is not None:
        area = s["area_mm2"]
        area_text = (f"{area / 100:.2f} cm²" if area >= 100 else f"{area:.1f} mm²")
        if ref.calibration.source != "PixelSpacing":
            area_text += f" ({ref.calibration.label.replace('mm', '').strip(' ()')})"
    else:
        area_text = f"{s.get('area_px2') or 0:.0f} px²"
    if s.get("mean") is None:
        return area_text
    return f"mean {s['mean']:.0f}, SD {s['sd']:.0f}" + ("\n" if lines else ", ") + area_text


class AnnotationSet:
    """The annotations of one study, with undo/redo; every change is one undoable command.

    Events fire after the change: ``annotation_added`` / ``annotation_changed``
    (the new version) / ``annotation_removed``; ``annotations_reset`` when a
    study's annotations replace everything; ``review_changed`` (finding key, for each key a decision
    changed) and then ``reviews_changed`` (all of them, once per decision).
    """

    annotation_added = Signal(object)
    annotation_changed = Signal(object)
    annotation_removed = Signal(object)
    annotations_reset = Signal()
    review_changed = Signal(str)
    reviews_changed = Signal(tuple)  # once per decision (all its finding keys): what views redraw on

    def __init__(self) -> None:
        self.study_uid = ""
        self.volume = None  # for ROI statistics; set by the session
        self.images = None  # the open 2D series (ROI statistics on 2D images); set by the session
        self.review: dict[str, dict] = {}
        self.extra: dict[str, Any] = {}  # unknown file-level keys, written back
        self._items: dict[str, Annotation] = {}
        self.undo_stack = UndoStack()

    # --- reading ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Annotation]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, ident: str) -> bool:
        return ident in self._items

    def get(self, ident: str) -> Annotation:
        return self._items[ident]

    def for_series(self, series_uid: str) -> list[Annotation]:
        return [a for a in self._items.values() if a.series_uid == series_uid]

    def for_image(self, sop_instance_uid: str, frame: int | None = None) -> list[Annotation]:
        """The measurements drawn on a 2D image (on frame ``frame``, 1-based, when given)."""
        return [a for a in self._items.values() if a.image is not None
                and a.image.sop_instance_uid == sop_instance_uid and (frame is None or a.image.frame == frame)]

    def document(self) -> dict:
        """The study's file content (JSON-ready)."""
        doc = dict(self.extra)
        doc.update({"study_uid": self.study_uid, "measurements": [a.as_dict() for a in self._items.values()],
                    "review": {k: dict(v) for k, v in self.review.items()}})
        return doc

    def snapshot(self) -> tuple[str, tuple[Annotation, ...], dict, dict]:
        """An immutable copy to serialise elsewhere (a writer thread): study, annotations, review, extra."""
        return (self.study_uid, tuple(self._items.values()), {k: dict(v) for k, v in self.review.items()},
                dict(self.extra))

    # --- opening ---------------------------------------------------------------------------
    def open_study(self, study_uid: str, annotations=(), review: Mapping | None = None,
                   extra: Mapping | None = None) -> None:
        """Replace everything with a study's annotations (no undo history)."""
        self.study_uid = study_uid
        self._items = {a.id: a for a in annotations}
        self.review = {str(k): dict(v) for k, v in (review or {}).items()}
        self.extra = dict(extra or {})
        self.undo_stack.clear()
        self.annotations_reset.emit()

    # --- editing (each one undoable) ---------------------------------------------------------
    def add(self, annotation: Annotation) -> Annotation:
        a = measured(annotation, self.volume, self.images)
        if a.id in self._items:
            raise ValueError(f"annotation {a.id} is already in the set")
        self.undo_stack.push(Command(f"add {a.kind}", lambda: self._insert(a), lambda: self._remove(a.id)))
        return a

    def replace(self, annotation: Annotation, text: str = "edit") -> Annotation:
        """Put a new version of an annotation (same id) in place of the old one."""
        old = self._items[annotation.id]
        new = measured(annotation, self.volume, self.images)
        self.undo_stack.push(Command(f"{text} {new.kind}", lambda: self._put(new), lambda: self._put(old)))
        return new

    def move(self, ident: str, delta_lps) -> Annotation:
        a = self._items[ident]
        return self.replace(a.with_points(m.moved_points(a.points, delta_lps)), "move")

    def move_handle(self, ident: str, index: int, point_lps) -> Annotation:
        a = self._items[ident]
        return self.replace(a.with_points(m.with_handle_moved(a.kind, a.points, index, point_lps)), "reshape")

    def edit(self, ident: str, **changes) -> Annotation:
        """Change the label (or other plain fields) of an annotation."""
        allowed = {"label"}
        if set(changes) - allowed:
            raise AttributeError(f"only {', '.join(sorted(allowed))} can be edited this way")
        return self.replace(dc_replace(self._items[ident], **changes), "edit")

    def delete(self, ident: str) -> None:
        a = self._items[ident]
        position = list(self._items).index(ident)
        self.undo_stack.push(Command(f"delete {a.kind}", lambda: self._remove(ident),
                                     lambda: self._insert(a, position)))

    def undo(self) -> bool:
        return self.undo_stack.undo() is not None

    def redo(self) -> bool:
        return self.undo_stack.redo() is not None

    # --- review of AI findings, stored with who and when --------------------------------------------------
    def set_review(self, finding_key: str, state: str, user: str | None = None, time: str | None = None) -> None:
        """Record ``state`` (e.g. "accepted", "rejected") for an AI finding, with the user and time (not undoable;
        the review UI uses :meth:`decide`)."""
        self.review[str(finding_key)] = {"state": str(state), "user": user or current_user(), "time": time or now_iso()}
        self.review_changed.emit(str(finding_key))
        self.reviews_changed.emit((str(finding_key),))

    def decide(self, changes: Mapping[str, Mapping | None], text: str = "review") -> None:
        """Record review decisions (``{finding key: entry}``; an entry of None clears that key) as one undoable
        command (Ctrl+Z / Ctrl+Y, the same stack as the measurements); see :mod:`.review`."""
        new = {str(k): (None if v is None else dict(v)) for k, v in changes.items()}
        old = {k: (dict(self.review[k]) if k in self.review else None) for k in new}
        if new == old:
            return
        self.undo_stack.push(Command(text, lambda: self._put_reviews(new), lambda: self._put_reviews(old)))

    def _put_reviews(self, entries: Mapping[str, dict | None]) -> None:
        for key, entry in entries.items():
            if entry is None:
                self.review.pop(key, None)
            else:
                self.review[key] = dict(entry)
        for key in entries:
            self.review_changed.emit(key)
        self.reviews_changed.emit(tuple(entries))

    # --- primitive changes (the commands' bodies) -----------------------------------------------------
    def _insert(self, a: Annotation, position: int | None = None) -> None:
        items = list(self._items.items())
        items.insert(len(items) if position is None else position, (a.id, a))
        self._items = dict(items)
        self.annotation_added.emit(a)

    def _put(self, a: Annotation) -> None:
        self._items[a.id] = a
        self.annotation_changed.emit(a)

    def _remove(self, ident: str) -> None:
        a = self._items.pop(ident)
        self.annotation_removed.emit(a)
