"""A one-page PDF report of the series on screen: key images, findings, measurements, AI provenance.

Made with Qt only (``QPdfWriter`` + ``QPainter``; no new dependency), A4 portrait, always one page:

* the title "radview report — research use, not for clinical use" and "Not a diagnosis";
* the study and series (description, modality, size); patient data (name, ID, birth date, sex,
  institution, study date, accession number) only when asked for — by default the report is
  de-identified;
* key images: the axial and coronal views as exported screenshots (GUI: the views as seen, without
  patient data unless asked) or slices through the main finding (command line), then a close-up of
  the slice of each finding (up to four) with its marker;
* tables of the AI detections (type, diameter, volume, HU, score, location), the AI structures
  (volume, diameters, HU) and the user's measurements (kind, value or ROI statistics); every AI row
  says "AI result, not reviewed" until a user reviewed it (``layer.meta`` ``reviewed_by`` /
  ``reviewed_at``, a per-finding entry of the review table ``{"detection:<n>" | "structure:<name>":
  {"state", "user", "time"}}``, see ``viewer.export.sr``);
* the provenance of every AI result (model, version, method, device, date, parameters).

Rows that do not fit on the page are left out with a line saying how many (the full lists are in the
JSON / DICOM SR exports). Gathering the data (:func:`report_from_views`, :func:`report_from_files`)
draws the key images; :func:`write_report` paints the PDF from ``QImage`` and text only, so it runs on
a worker thread, and writes it atomically (``radview_base.atomic_file``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
)

from viewer.core.review import latest_entry
from viewer.export import AI_NOT_REVIEWED

TITLE = "radview report — research use, not for clinical use"
NOT_A_DIAGNOSIS = "Not a diagnosis."
DEIDENTIFIED = "de-identified (patient data not included in this report)"
FOOTER = ("Not a diagnosis. radview is research software, not for clinical use. AI results are the output of a "
          "model and are marked \u201cAI result, not reviewed\u201d until a user has reviewed them.")
MAX_FINDING_IMAGES = 4
KEY_IMAGE_PX = (1000, 800)  # key images: about 300 dpi across half the page
DPI = 300
ORANGE = QColor(190, 110, 0)
GREY = QColor(90, 90, 90)
BLACK = QColor(0, 0, 0)


# ------------------------------------------------------------------------------------------------ content
@dataclass
class KeyImage:
    image: QImage
    caption: str


@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    widths: tuple[float, ...]  # relative column widths
    rows: list[tuple[str, ...]]
    status_column: int | None = None  # drawn in orange where it says "not reviewed"
    right_aligned: tuple[int, ...] = ()


@dataclass
class ReportData:
    study: list[tuple[str, str]]
    key_images: list[KeyImage] = field(default_factory=list)
    finding_images: list[KeyImage] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    provenance: list[tuple[str, bool]] = field(default_factory=list)  # (line, not reviewed)
    notes: list[str] = field(default_factory=list)
    include_patient_data: bool = False
    created: str = ""
    title: str = TITLE


@dataclass
class AiResultRecord:
    """One AI result as the report sees it: plain dicts (findings.json shapes) and the review note of each item."""

    name: str
    provenance: dict | None
    detections: list[dict] = field(default_factory=list)
    structures: list[dict] = field(default_factory=list)
    detection_notes: list[str] = field(default_factory=list)
    structure_notes: list[str] = field(default_factory=list)
    result_note: str = AI_NOT_REVIEWED  # the result as a whole

    def all_reviewed(self) -> bool:
        """Every item of the result reviewed (a result without items: the result itself)."""
        notes = self.detection_notes + self.structure_notes
        return all(n != AI_NOT_REVIEWED for n in notes) if notes else self.result_note != AI_NOT_REVIEWED


def _as_dict(obj) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "as_dict"):
        return dict(obj.as_dict())
    return dict(vars(obj))


def review_note(entry: Mapping | None) -> str:
    """``AI result, not reviewed``, or e.g. ``AI result, accepted by alice (2024-05-01)``."""
    if not entry or not (entry.get("state") or entry.get("user")):
        return AI_NOT_REVIEWED
    state = entry.get("state") or "reviewed"
    who = f" by {entry['user']}" if entry.get("user") else ""
    when = f" ({str(entry['time'])[:10]})" if entry.get("time") else ""  # the date: the table stays narrow
    return f"AI result, {state}{who}{when}"


def _mm(value) -> str:
    r = round(float(value), 1)
    return f"{0.0 if r == 0 else r:.1f}"


def _decision(entry, version: str = "", revision: str | None = None) -> dict | None:
    """A review table entry that applies: a state, the same model version, the label map's revision."""
    if not isinstance(entry, Mapping) or not entry.get("state"):
        return None
    made_on = entry.get("model_version")
    if made_on not in (None, "") and version and str(made_on) != str(version):
        return None
    if revision is not None and entry.get("kind") == "result" and str(entry.get("revision", "0")) != str(revision):
        return None
    return dict(entry)


def _meta_decision(metas: Iterable[Mapping]) -> dict | None:
    """The whole result's state from its layers' meta (``review_state``, ``reviewed_by``, ``reviewed_at``)."""
    for meta in metas:
        state = str(meta.get("review_state") or "")
        if meta.get("reviewed_by") or meta.get("reviewed") is True or state == "reviewed":
            return {"state": "reviewed", "user": str(meta.get("reviewed_by") or ""),
                    "time": str(meta.get("reviewed_at") or "")}
        if state == "rejected":
            return {"state": "rejected", "user": str(meta.get("reviewed_by") or "")}
    return None


def ai_record(name: str, provenance, detections, structures, review: Mapping | None = None, series_uid: str = "",
              metas: Iterable[Mapping] = (), label_revision: str | None = None) -> AiResultRecord:
    """An AI result with the review note of each detection, each structure and the result.

    Decisions come from the study's review table (``viewer.core.review`` keys ``detection|<model>|<series>|<x,y,z>``
    and ``result|<model>|<series>``; the SR exporter's ``detection:<n>`` and ``structure:<name>``) and from the
    layers' meta (``review_state``, ``reviewed_by``, ``reviewed_at``, ``detection_review``). A detection nobody
    decided on is "not reviewed" — unless the whole result was rejected (or reviewed, which decides them all).
    """
    prov = _as_dict(provenance) or None
    review = {str(k): v for k, v in (review or {}).items()}
    metas = [m for m in metas if m]
    model, version = str((prov or {}).get("model_id", "")), str((prov or {}).get("model_version", ""))
    dets, structs = [_as_dict(d) for d in detections], [_as_dict(s) for s in structures]
    whole = _decision(review.get(f"result|{model}|{series_uid}"), version, label_revision) or _meta_decision(metas)
    meta_states = next((tuple(m["detection_review"]) for m in metas if m.get("detection_review")), ())
    det_notes, decided = [], []
    for i, det in enumerate(dets):
        centre = det.get("center_lps_mm", det.get("center_lps")) or ()
        key = f"detection|{model}|{series_uid}|{','.join(_mm(v) for v in centre)}" if len(centre) == 3 else ""
        entry = _decision(review.get(key), version) or _decision(review.get(f"detection:{i}"), version)
        if entry is not None:
            decided.append(entry)
        if entry is None and i < len(meta_states) and meta_states[i]:
            entry = {"state": str(meta_states[i])}
        if entry is None and whole is not None and whole.get("state") in ("rejected", "reviewed"):
            entry = whole
        det_notes.append(review_note(entry))
    struct_notes = [review_note(_decision(review.get(f"structure:{s.get('name', '')}"), version) or whole)
                    for s in structs]
    overall = whole
    if whole is not None and whole.get("state") == "accepted" and len(decided) == len(dets):
        overall = {**latest_entry([whole, *decided]), "state": "reviewed"}  # accepted, every finding decided
    return AiResultRecord(name, prov, dets, structs, det_notes, struct_notes, review_note(overall))


# --- numbers -------------------------------------------------------------------------------------------
def _num(value, fmt: str = "{:.1f}") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return fmt.format(v) if math.isfinite(v) else "—"


def _length(value) -> str:
    try:
        big = abs(float(value)) >= 100
    except (TypeError, ValueError):
        big = False
    return _num(value, "{:.0f}" if big else "{:.1f}")


def _volume(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def location_text(location: str) -> str:
    """``"lung_left"`` → ``"left lung"``."""
    parts = [p for p in str(location or "").replace("-", "_").split("_") if p]
    if len(parts) >= 2 and parts[-1].lower() in ("left", "right"):
        parts = [parts[-1], *parts[:-1]]
    return " ".join(parts) or "—"


def _dicom_date(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


# --- tables ------------------------------------------------------------------------------------------------
def detection_table(results: Iterable[AiResultRecord]) -> Table:
    rows = []
    for res in results:
        for i, det in enumerate(res.detections):
            rows.append((f"N{i + 1}", str(det.get("kind") or "—"), _num(det.get("diameter_mm")),
                         _num(det.get("volume_ml"), "{:.2f}"), _num(det.get("mean_hu"), "{:.0f}"),
                         _num(det.get("score"), "{:.2f}"), location_text(det.get("location", "")),
                         res.name, res.detection_notes[i]))
    return Table("AI findings (detections)", ("#", "Type", "Ø mm", "mL", "HU", "Score", "Location", "Result",
                                              "Status"),
                 (5, 11, 7, 7, 6, 7, 12, 17, 34), rows, status_column=8, right_aligned=(2, 3, 4, 5))


def structure_name(s: Mapping) -> str:
    name = location_text(s.get("name")) if s.get("name") else f"label {s.get('label')}"
    component = int(s.get("component") or 0)
    return f"{name} #{component}" if component else name


def structure_table(results: Iterable[AiResultRecord], segmentations: Iterable[tuple[str, list]] = ()) -> Table:
    rows = []
    for res in results:
        for j, s in enumerate(res.structures):
            rows.append((structure_name(s), _volume(s.get("volume_ml")), _length(s.get("axial_diameter_mm")),
                         _length(s.get("diameter_3d_mm")), _num(s.get("mean_hu"), "{:.0f}"),
                         _num(s.get("sd_hu"), "{:.0f}"), res.name, res.structure_notes[j]))
    for layer_name, volumes in segmentations:  # label maps that are not AI results: their volumes only
        for label_name, ml in volumes:
            rows.append((location_text(label_name), _volume(ml), "—", "—", "—", "—", layer_name, "segmentation file"))
    return Table("Structures", ("Structure", "mL", "axial Ø mm", "3D Ø mm", "HU", "SD HU", "Result", "Status"),
                 (17, 7, 11, 10, 6, 7, 16, 34), rows, status_column=7, right_aligned=(1, 2, 3, 4, 5))


def measurement_table(annotations: Iterable[Any], volume=None) -> Table:
    """User measurements (``Annotation`` objects or their JSON dicts)."""
    from viewer.core.annotations import Annotation, AnnotationFormatError, display_text

    rows = []
    for n, a in enumerate(annotations, start=1):
        if isinstance(a, Mapping):
            try:
                a = Annotation.from_dict(a)
            except AnnotationFormatError:
                continue
        value = display_text(a, hu=volume is None or getattr(volume, "modality", "") == "CT").replace("\n", ", ")
        if a.label and value.startswith(a.label + ": "):
            value = value[len(a.label) + 2:]
        s = a.stats or {}
        if a.is_roi and s.get("min") is not None and s.get("max") is not None:
            value += f", min {s['min']:.0f}, max {s['max']:.0f}"
        where = ""
        if volume is not None:
            try:
                where = _slice_text(volume, a)
            except (ValueError, IndexError):
                where = ""
        rows.append((str(n), a.kind, a.label or "—", value or "—", where or "—", "user measurement"))
    return Table("Measurements", ("#", "Kind", "Label", "Value", "Where", "Status"), (5, 10, 18, 42, 18, 22), rows)


def _slice_text(volume, annotation) -> str:
    from viewer.core.slicing import SlicePlane

    normal = np.abs(np.asarray(annotation.plane.normal, dtype=float))
    view = ("sagittal", "coronal", "axial")[int(np.argmax(normal))]
    plane = SlicePlane.for_view(view, volume.geometry)
    k = plane.slice_of(annotation.plane.point)
    return f"{view} {k + 1}/{plane.n_slices}"


def provenance_lines(results: Iterable[AiResultRecord]) -> list[tuple[str, bool]]:
    """One paragraph per AI result: model, version, method, device, date, run time, parameters, review state."""
    from viewer.core.ai_bridge import method_in_plain_words

    out = []
    for res in results:
        p = res.provenance or {}
        if not p:
            out.append((f"{res.name}: provenance not recorded. {AI_NOT_REVIEWED}.", True))
            continue
        params = p.get("parameters") or {}
        param_text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in sorted(params.items(), key=lambda kv: str(kv[0]))) or "defaults"
        device = str(p.get("device") or "?") + (f", {p['precision']}" if p.get("precision") else "")
        try:
            run = f"{float(p.get('run_time_s')):.1f} s"
        except (TypeError, ValueError):
            run = "?"
        reviewed = res.all_reviewed()
        done = res.result_note if res.result_note != AI_NOT_REVIEWED else "all its findings reviewed"
        line = (f"{res.name}: model {p.get('model_name') or '?'} ({p.get('model_id') or '?'}) version "
                f"{p.get('model_version') or '?'}; method: {method_in_plain_words(p.get('method', ''))}; device: "
                f"{device}; date: {p.get('started_at') or '?'} ({run}); parameters: {param_text}"
                + (f"; software: {p['software']}" if p.get("software") else "")
                + (f". {done}." if reviewed else f". {AI_NOT_REVIEWED}."))
        out.append((line, not reviewed))
    return out


# --- study --------------------------------------------------------------------------------------------------------
def study_lines(volume, include_patient_data: bool = False) -> list[tuple[str, str]]:
    meta = volume.meta or {}
    study, patient = meta.get("study") or {}, meta.get("patient") or {}
    lines = []
    if include_patient_data:
        name = str(patient.get("name") or "").replace("^", " ").strip()
        who = ", ".join(s for s in (name, f"ID {patient['id']}" if patient.get("id") else "",
                                    f"born {_dicom_date(patient.get('birth_date', ''))}"
                                    if patient.get("birth_date") else "",
                                    f"sex {patient['sex']}" if patient.get("sex") else "") if s)
        lines.append(("Patient", who or "—"))
        place = ", ".join(s for s in (study.get("institution"), _dicom_date(study.get("date", "")),
                                      f"accession {study['accession']}" if study.get("accession") else "") if s)
        if place:
            lines.append(("Institution, date", place))
    else:
        lines.append(("Patient", DEIDENTIFIED))
    lines.append(("Study", str(study.get("description") or "—")))
    number = meta.get("series_number")
    series = " ".join(s for s in (f"{number}:" if number is not None else "", str(meta.get("description") or ""))
                      if s) or "—"
    z, y, x = volume.geometry.shape_zyx
    sz, sy, sx = volume.geometry.spacing_zyx
    detail = f"{volume.modality or '?'}, {z} images of {x}×{y}, voxels {sx:.2f}×{sy:.2f}×{sz:.2f} mm"
    thickness = meta.get("slice_thickness")
    if thickness:
        detail += f", slice thickness {float(thickness):.2f} mm"
    lines.append(("Series", f"{series} ({detail})"))
    return lines


# --- gathering -------------------------------------------------------------------------------------------------
def ai_results_from_layers(layers, review_table: Mapping | None = None,
                           series_uid: str = "") -> tuple[list[AiResultRecord], list]:
    """AI results (grouped by provenance: a run's label layer and marker layer are one result) and, for the
    label layers that are not AI results, ``(layer name, [(label name, mL), ...])``."""
    groups: list[tuple[Any, list]] = []
    segmentations = []
    for layer in layers:
        meta = getattr(layer, "meta", {}) or {}
        prov = meta.get("provenance")
        if prov is None and not meta.get("ai"):
            if hasattr(layer, "volumes_ml"):
                segmentations.append((layer.name, [(layer.label_name(k), v) for k, v in sorted(layer.volumes_ml.items())
                                                   if k not in layer.hidden_labels]))
            continue
        group = next((g for g in groups if prov is not None and g[0] is prov), None)
        if group is None:
            groups.append((prov, [layer]))
        else:
            group[1].append(layer)
    results = []
    for prov, members in groups:
        metas = [getattr(layer, "meta", {}) or {} for layer in members]
        label = next((layer for layer in members if hasattr(layer, "label_map")), None)
        revision = str(label.meta.get("revision", "0")) if label is not None else None
        name = str(members[0].name).removesuffix(" findings")
        results.append(ai_record(name, prov, [d for m in metas for d in m.get("detections", ())],
                                 [s for m in metas for s in m.get("structures", ())], review_table, series_uid,
                                 metas, revision))
    return results, segmentations


def ai_result_from_findings(findings: Mapping, name: str = "", review: Mapping | None = None,
                            series_uid: str = "") -> AiResultRecord:
    """findings.json (``radview-cli ai run``) as one AI result; ``review``: the study's review table."""
    prov = dict(findings.get("provenance") or {}) or None
    title = name or (f"AI: {prov.get('model_name') or prov.get('model_id')}" if prov else "AI result")
    table = {str(k): v for k, v in (findings.get("review") or {}).items() if isinstance(v, Mapping)}
    table.update({str(k): v for k, v in (review or {}).items() if isinstance(v, Mapping)})
    series = series_uid or str((findings.get("input") or {}).get("series_uid") or "")
    return ai_record(title, prov, findings.get("detections") or [], findings.get("structures") or [], table, series,
                     [findings])


def detection_markers(results: Iterable[AiResultRecord]):
    """(marker, result, index) for every detection, as the views draw them."""
    from viewer.core.ai_bridge import DETECTION_COLOR
    from viewer.core.layers import Marker

    out = []
    for res in results:
        for i, det in enumerate(res.detections):
            centre = det.get("center_lps_mm", det.get("center_lps"))
            if centre is None:
                continue
            d = max(float(det.get("diameter_mm") or 0.0), 1.0)
            score = det.get("score")
            out.append((Marker(tuple(float(v) for v in centre), (d, d, d), "point", f"N{i + 1}",
                               None if score is None else float(score), DETECTION_COLOR), res, i))
    return out


def finding_images(volume, layers, results, width: float, level: float, px: int = 520) -> list[KeyImage]:
    """A close-up of the axial slice of each finding (highest score first, at most four), its marker drawn."""
    from viewer.core.slicing import SlicePlane
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    found = detection_markers(results)
    markers = [m for m, _r, _i in found]
    found.sort(key=lambda t: -(t[0].score if t[0].score is not None else 0.0))
    out = []
    for marker, res, i in found[:MAX_FINDING_IMAGES]:
        det = res.detections[i]
        crop = float(np.clip(max(float(det.get("diameter_mm") or 10.0) * 4.0, 40.0), 40.0, 120.0))
        req = SliceRequest("axial", center_lps=marker.center_lps, crop_mm=crop, size=(px, px), width=width,
                           level=level, letters=False, font_px=px // 20)
        image, k = render_slice(volume, req, layers, markers)
        total = SlicePlane.for_view("axial", volume.geometry).n_slices
        out.append(KeyImage(image, f"N{i + 1}: {_num(det.get('diameter_mm'))} mm, score "
                                   f"{_num(det.get('score'), '{:.2f}')}, axial {k + 1}/{total}"))
    return out


def _window_text(width: float, level: float, name: str = "") -> str:
    return f"W {width:.0f} L {level:.0f}" + (f" ({name})" if name else "")


def _overlay_caption(names: Iterable[str], results: Iterable[AiResultRecord]) -> str:
    """``overlay: labels.nii.gz; AI: Lungs (AI result, not reviewed)``: each overlay once, AI ones with their state."""
    unreviewed = {r.name for r in results if not r.all_reviewed()}
    shown = list(dict.fromkeys(str(n).removesuffix(" findings") for n in names))
    if not shown:
        return ""
    return "overlay: " + "; ".join(n + (f" ({AI_NOT_REVIEWED})" if n in unreviewed else "") for n in shown)


def report_from_views(session, views, include_patient_data: bool = False) -> ReportData:
    """Everything the report shows, gathered on the GUI thread from the session and the reading views (``views``
    by name: the key images are the axial and coronal views as seen, drawn here)."""
    from viewer.core.window_presets import FROM_FILE
    from viewer.qt.capture.screenshot import render_view_at

    volume = session.volume
    if volume is None:
        raise ValueError("no series is open")
    review = getattr(session.annotations, "review", {}) or {}
    results, segmentations = ai_results_from_layers(session.layers, review, str(volume.meta.get("series_uid", "")))
    label_layers = [layer for layer in session.label_layers() if layer.visible] if session.overlays_visible else []
    preset = session.preset_name or ""
    preset = "from file" if preset == FROM_FILE else preset
    overlay = _overlay_caption([layer.name for layer in session.layers if layer.visible]
                               if session.overlays_visible else [], results)
    key_images = []
    for name in ("axial", "coronal"):  # each view as seen (slice, zoom, overlays, measurements), laid out anew
        view = views[name]
        image = render_view_at(view, (KEY_IMAGE_PX[0] // 2, KEY_IMAGE_PX[1] // 2), include_patient_data, scale=2.0)
        caption = (f"{name.capitalize()} {view.k + 1}/{view.plane.n_slices} (the view on screen); "
                   f"{_window_text(session.width, session.level, preset)}" + (f"; {overlay}" if overlay else ""))
        key_images.append(KeyImage(image, caption))
    series_uid = str(volume.meta.get("series_uid", ""))
    annotations = [a for a in session.annotations if a.series_uid in (series_uid, "")]
    return _assemble(volume, include_patient_data, key_images,
                     finding_images(volume, label_layers, results, session.width, session.level),
                     results, segmentations, annotations)


def _assemble(volume, include_patient_data, key_images, found_images, results, segmentations, annotations,
              notes=()) -> ReportData:
    tables = []
    if any(r.detections for r in results):
        tables.append(detection_table(results))
    if any(r.structures for r in results) or any(v for _n, v in segmentations):
        tables.append(structure_table(results, segmentations))
    tables.append(measurement_table(annotations, volume))
    return ReportData(study=study_lines(volume, include_patient_data), key_images=key_images,
                      finding_images=found_images, tables=tables, provenance=provenance_lines(results),
                      notes=list(notes), include_patient_data=include_patient_data,
                      created=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"))


def report_from_files(path: str, series: str | None = None, labels: str | None = None, findings: Any = None,
                      measurements: Any = None, preset: str | None = None,
                      include_patient_data: bool = False) -> ReportData:
    """The report of a series on disk (no window): ``findings`` / ``measurements`` are parsed JSON (or None)."""
    from radview_base.geometry import require_same_grid
    from viewer.core.layers import LabelLayer
    from viewer.core.slicing import SlicePlane
    from viewer.core.window_presets import file_window, find_preset
    from viewer.io.image_io import read_label_map
    from viewer.io.series_loader import load_path
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    volume = load_path(path, series)
    series_uid = str(volume.meta.get("series_uid", ""))
    made_on = str(((findings or {}).get("input") or {}).get("series_uid") or "")
    if made_on and series_uid and made_on != series_uid:
        raise ValueError(f"the findings were made on series {made_on}, not on the reported series {series_uid}")
    results = []
    review = {}
    items = []
    if measurements is not None:
        if isinstance(measurements, Mapping):
            items, review = list(measurements.get("measurements") or []), dict(measurements.get("review") or {})
        else:
            items = list(measurements)
    if findings:
        results.append(ai_result_from_findings(findings, review=review, series_uid=series_uid))
    layers, segmentations = [], []
    if labels:
        label_map = read_label_map(labels)
        require_same_grid(volume.geometry, label_map.geometry, what=f"label map {os.path.basename(labels)}")
        ai_name = results[0].name if results and results[0].structures else ""
        layer = LabelLayer(label_map, name=ai_name or os.path.basename(labels))
        layers.append(layer)
        if not ai_name:
            segmentations.append((layer.name, [(layer.label_name(k), v) for k, v in sorted(layer.volumes_ml.items())]))
    if preset:
        p = find_preset(preset)
        width, level, wname = (p.width, p.level, p.name) if p is not None else (*file_window(volume.meta,
                                                                                            volume.array), "from file")
    else:
        (width, level), wname = file_window(volume.meta, volume.array), "from file"
    found = detection_markers(results)
    markers = [m for m, _r, _i in found]
    focus = None
    if found:
        focus = max(found, key=lambda t: t[0].score if t[0].score is not None else 0.0)[0].center_lps
    overlay = _overlay_caption([layer.name for layer in layers] + [r.name for r in results if r.detections],
                               results)
    key_images = []
    for name in ("axial", "coronal"):
        req = SliceRequest(name, center_lps=focus, size=KEY_IMAGE_PX, width=width, level=level)
        image, k = render_slice(volume, req, layers, markers)
        total = SlicePlane.for_view(name, volume.geometry).n_slices
        where = " through the top-scoring finding" if focus is not None else " (middle slice)"
        key_images.append(KeyImage(image, f"{name.capitalize()} {k + 1}/{total}{where}; "
                                          f"{_window_text(width, level, wname)}" + (f"; {overlay}" if overlay else "")))
    return _assemble(volume, include_patient_data, key_images, finding_images(volume, layers, results, width, level),
                     results, segmentations, items)


# ------------------------------------------------------------------------------------------------ painting
class _Page:
    """Millimetre layout on a painter whose device has ``DPI`` dots per inch."""

    def __init__(self, painter: QPainter, width_mm: float, height_mm: float):
        self.p = painter
        self.w, self.h = width_mm, height_mm
        self.k = DPI / 25.4

    def rect(self, x, y, w, h) -> QRectF:
        return QRectF(x * self.k, y * self.k, w * self.k, h * self.k)

    def font(self, pt: float, bold: bool = False) -> QFont:
        f = QFont()
        f.setPointSizeF(pt)
        f.setBold(bold)
        f.setFeature(QFont.Tag("liga"), 0)  # "fi", not a ligature glyph: the PDF's text stays searchable
        return f

    def line_h(self, font: QFont) -> float:
        self.p.setFont(font)
        return QFontMetricsF(font, self.p.device()).height() / self.k

    def text_h(self, text: str, font: QFont, width_mm: float) -> float:
        self.p.setFont(font)
        r = self.p.boundingRect(self.rect(0, 0, width_mm, 1000), Qt.TextWordWrap | Qt.AlignLeft, text)
        return r.height() / self.k

    def text(self, x, y, w, text: str, font: QFont, color=BLACK, flags=Qt.AlignLeft) -> float:
        """Wrapped text from (x, y); returns its height (mm)."""
        self.p.setFont(font)
        self.p.setPen(color)
        r = self.p.boundingRect(self.rect(x, y, w, 1000), Qt.TextWordWrap | flags, text)
        self.p.drawText(self.rect(x, y, w, r.height() / self.k + 1), Qt.TextWordWrap | flags, text)
        return r.height() / self.k

    def cell(self, x, y, w, h, text: str, font: QFont, color=BLACK, right: bool = False) -> None:
        self.p.setFont(font)
        self.p.setPen(color)
        pad = 0.8
        fm = QFontMetricsF(font, self.p.device())
        shown = fm.elidedText(text, Qt.ElideRight, (w - 2 * pad) * self.k)
        self.p.drawText(self.rect(x + pad, y, w - 2 * pad, h),
                        Qt.AlignVCenter | (Qt.AlignRight if right else Qt.AlignLeft), shown)

    def image(self, x, y, w, h, image: QImage) -> float:
        """``image`` fitted into the box (aspect kept, centred horizontally, top-aligned); its height (mm)."""
        if image.isNull():
            return 0.0
        aspect = image.height() / max(image.width(), 1)
        dw, dh = (w, w * aspect) if w * aspect <= h else (h / aspect, h)
        self.p.drawImage(self.rect(x + (w - dw) / 2, y, dw, dh), image)
        return dh


def _table_height(table: Table, n_rows: int, row_h: float, title_h: float) -> float:
    return title_h + row_h * (1 + max(n_rows, 1))


def paint_report(painter: QPainter, data: ReportData, width_mm: float, height_mm: float) -> None:
    """Lay out and paint the report on one page of ``width_mm`` × ``height_mm`` (inside the margins)."""
    page = _Page(painter, width_mm, height_mm)
    W = width_mm
    y = 0.0
    title_font, small, body, bold_body = page.font(15, True), page.font(7.5), page.font(8.5), page.font(8.5, True)
    table_font, table_bold, caption_font = page.font(7.5), page.font(7.5, True), page.font(7)
    y += page.text(0, y, W, data.title, title_font)
    y += page.text(0, y + 0.5, W, f"{NOT_A_DIAGNOSIS} Created {data.created} with radview. "
                   f"{'Patient data included on request.' if data.include_patient_data else 'De-identified.'}",
                   small, GREY) + 1.5
    painter.setPen(QPen(GREY, 0.3 * page.k))
    painter.drawLine(QPointF(0, y * page.k), QPointF(W * page.k, y * page.k))
    y += 1.5
    label_w = 28.0
    for label, value in data.study:
        h = page.text(label_w, y, W - label_w, value, body)
        page.text(0, y, label_w, label, bold_body)
        y += h + 0.3
    for note in data.notes:
        y += page.text(0, y, W, note, small, ORANGE) + 0.3
    y += 1.5

    # --- the space left: footer, provenance and tables first, the key images get the rest ----------------
    footer_h = page.text_h(FOOTER, small, W) + 2.0
    prov_h = 0.0
    if data.provenance:
        prov_h = page.line_h(bold_body) + 0.5 + sum(page.text_h(line, small, W) + 0.4 for line, _ in data.provenance)
        prov_h += 2.0
    row_h = page.line_h(table_font) + 0.9
    title_h = page.line_h(bold_body) + 0.6
    caption_h = page.line_h(caption_font) * 2 + 0.8
    crops = data.finding_images[:MAX_FINDING_IMAGES]
    crop_w = (W - 3 * 3.0) / 4
    crops_h = (crop_w + caption_h + 2.0) if crops else 0.0
    avail = height_mm - footer_h - y - prov_h
    tables_full = sum(_table_height(t, len(t.rows), row_h, title_h) + 2.0 for t in data.tables)
    main_h = float(np.clip(avail - crops_h - tables_full - caption_h - 2.0, 45.0, 78.0))
    if avail - main_h - caption_h - 2.0 - crops_h - sum(_table_height(t, 3, row_h, title_h) + 2.0
                                                         for t in data.tables) < 0 and crops:
        crops, crops_h = crops[:0], 0.0  # too little room: the close-ups go first
    main_h = float(np.clip(avail - crops_h - tables_full - caption_h - 2.0, 40.0, 78.0))

    # key images
    if data.key_images:
        n = len(data.key_images)
        gap = 4.0
        box_w = (W - gap * (n - 1)) / n
        heights = []
        for i, key in enumerate(data.key_images):
            heights.append(page.image(i * (box_w + gap), y, box_w, main_h, key.image))
        img_h = max(heights) if heights else 0.0
        for i, key in enumerate(data.key_images):
            page.text(i * (box_w + gap), y + img_h + 0.5, box_w, key.caption, caption_font, GREY)
        y += img_h + caption_h + 2.0
    if crops:
        for i, key in enumerate(crops):
            x = i * (crop_w + 3.0)
            h = page.image(x, y, crop_w, crop_w, key.image)
            page.text(x, y + h + 0.5, crop_w, key.caption, caption_font, GREY)
        y += crops_h

    # tables: rows that do not fit are left out (counted)
    room = height_mm - footer_h - prov_h - y
    budget = _row_budget(data.tables, room, row_h, title_h)
    for table, n_rows in zip(data.tables, budget):
        y = _paint_table(page, table, y, W, n_rows, row_h, title_h, table_font, table_bold, bold_body, small)
        y += 2.0

    # provenance
    if data.provenance:
        y += page.text(0, y, W, "Provenance of the AI results", bold_body) + 0.5
        for line, unreviewed in data.provenance:
            y += page.text(0, y, W, line, small, ORANGE if unreviewed else QColor(0, 0, 0)) + 0.4
    # footer, at the bottom of the page
    fy = height_mm - footer_h + 1.0
    painter.setPen(QPen(GREY, 0.3 * page.k))
    painter.drawLine(QPointF(0, (fy - 0.8) * page.k), QPointF(W * page.k, (fy - 0.8) * page.k))
    page.text(0, fy, W, FOOTER, small, GREY)


def _row_budget(tables: list[Table], room: float, row_h: float, title_h: float) -> list[int]:
    """How many rows of each table fit in ``room`` mm (a "… n more" line counts as a row)."""
    wanted = [len(t.rows) for t in tables]
    fixed = sum(title_h + row_h + 2.0 for _t in tables)  # titles and header rows
    rows_room = max(int((room - fixed) // row_h), 0)
    empty_rows = sum(1 for n in wanted if n == 0)  # "none" line
    if sum(wanted) + empty_rows <= rows_room:
        return wanted
    budget = [0] * len(tables)
    left = rows_room - empty_rows - sum(1 for n in wanted if n)  # one line each for "… n more"
    # share round-robin, so each table shows its first rows
    while left > 0 and any(b < n for b, n in zip(budget, wanted)):
        for i, n in enumerate(wanted):
            if left > 0 and budget[i] < n:
                budget[i] += 1
                left -= 1
    return [min(b + (1 if b + 1 == n else 0), n) for b, n in zip(budget, wanted)]


def _paint_table(page: _Page, table: Table, y: float, W: float, n_rows: int, row_h: float, title_h: float,
                 font: QFont, bold: QFont, title_font: QFont, small: QFont) -> float:
    p = page.p
    page.text(0, y, W, table.title + (f" ({len(table.rows)})" if table.rows else ""), title_font)
    y += title_h
    total = float(sum(table.widths))
    xs, x = [], 0.0
    for w in table.widths:
        xs.append((x, W * w / total))
        x += W * w / total
    p.fillRect(page.rect(0, y, W, row_h), QColor(225, 225, 225))
    for c, (cx, cw) in enumerate(xs):
        page.cell(cx, y, cw, row_h, table.columns[c], bold, right=c in table.right_aligned)
    y += row_h
    if not table.rows:
        page.cell(0, y, W, row_h, "none", font, GREY)
        return y + row_h
    shown = table.rows[:n_rows]
    for r, row in enumerate(shown):
        if r % 2:
            p.fillRect(page.rect(0, y, W, row_h), QColor(244, 244, 244))
        for c, (cx, cw) in enumerate(xs):
            text = row[c] if c < len(row) else ""
            color = ORANGE if c == table.status_column and AI_NOT_REVIEWED in text else QColor(0, 0, 0)
            page.cell(cx, y, cw, row_h, text, font, color, right=c in table.right_aligned)
        y += row_h
    if len(shown) < len(table.rows):
        page.cell(0, y, W, row_h, f"… {len(table.rows) - len(shown)} more not shown on this page (all are in the "
                  f"JSON and DICOM SR exports)", small, GREY)
        y += row_h
    p.setPen(QPen(GREY, 0.2 * page.k))
    p.drawLine(QPointF(0, y * page.k), QPointF(W * page.k, y * page.k))
    return y


def render_pdf(data: ReportData) -> bytes:
    """The report as PDF bytes (one A4 page). Uses QImage and text only: safe on a worker thread."""
    buffer_data = QByteArray()
    buffer = QBuffer(buffer_data)
    buffer.open(QIODevice.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setResolution(DPI)
    margins = QMarginsF(14, 12, 14, 12)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait, margins, QPageLayout.Millimeter))
    writer.setTitle("radview report (research use, not for clinical use)")
    writer.setCreator("radview")
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError("could not start the PDF")
    try:
        size = QPageSize(QPageSize.A4).size(QPageSize.Millimeter)
        paint_report(painter, data, size.width() - margins.left() - margins.right(),
                     size.height() - margins.top() - margins.bottom())
    finally:
        ok = painter.end()
        buffer.close()
    if not ok:
        raise OSError("could not finish the PDF")
    out = bytes(buffer_data.data())
    if not out.startswith(b"%PDF"):
        raise OSError("the PDF writer produced no PDF")
    return out


def write_report(data: ReportData, path: str) -> str:
    """Paint the report and write it to ``path`` atomically (no file is left when anything fails)."""
    from radview_base.atomic_file import atomic_write_bytes

    path = os.path.abspath(str(path))
    if not path.lower().endswith(".pdf"):
        raise ValueError("the report is a PDF file: give a name ending in .pdf")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder")
    return atomic_write_bytes(path, render_pdf(data))


# ------------------------------------------------------------------------------------------------ the dialog
class ReportDialog(QDialog):
    """File name and "include patient data" for the PDF report."""

    def __init__(self, parent=None, path: str = "radview-report.pdf", include_patient_data: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Export report (PDF)")
        form = QFormLayout(self)
        self.path_edit = QLineEdit(path)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File (PDF)", row)
        self.patient_box = QCheckBox("Include patient data (name, ID, birth date, institution, dates)")
        self.patient_box.setChecked(include_patient_data)
        form.addRow(self.patient_box)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export report", self.path_edit.text(), "PDF (*.pdf)")
        if path:
            self.path_edit.setText(path)

    @property
    def path(self) -> str:
        return self.path_edit.text().strip()

    @property
    def include_patient_data(self) -> bool:
        return self.patient_box.isChecked()
