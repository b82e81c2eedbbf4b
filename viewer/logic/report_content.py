"""The content of the one-page PDF report, without Qt: texts, tables, review notes and AI provenance.

Shared by the GUI (File → Export report, ``viewer.qt.capture.report``) and ``radview-cli export report``:

* the fixed texts: the title "radview report — research use, not for clinical use", "Not a diagnosis", the
  de-identified line and the footer;
* the study and series lines (description, modality, size); patient data (name, ID, birth date, sex,
  institution, study date, accession number) only when asked for — by default the report is de-identified;
* the AI results as the report sees them (:class:`AiResultRecord`: from the layers of a session or from
  findings.json), each detection and structure with its review note — "AI result, not reviewed" until a user
  reviewed it (``layer.meta`` ``reviewed_by`` / ``reviewed_at``, a per-finding entry of the review table
  ``{"detection:<n>" | "structure:<name>": {"state", "user", "time"}}``, see ``viewer.export.sr``);
* the tables (:class:`Table`) of the AI detections (type, diameter, volume, HU, score, location), the AI
  structures (volume, diameters, HU; a structure that is a set of separate pieces — the union of a nodule
  model's candidates — per piece, ``viewer.logic.structure_pieces``) and the user's measurements (kind, value
  or ROI statistics);
* the table of a classification model's class probabilities (:func:`classification_table`: most probable first,
  at most :data:`MAX_CLASS_ROWS` rows per result, the rest counted in a note), with the result's review note;
* the provenance of every AI result (model, version, method, device, date, parameters);
* the detections as markers, and the caption texts of the key images.

Drawing the key images and painting the PDF are Qt's: ``viewer.qt.capture.report``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from viewer.core.review import latest_entry
from viewer.export import AI_NOT_REVIEWED
from viewer.logic.report_findings import MAX_FINDING_IMAGES  # noqa: F401 - the report's own name for it

TITLE = "radview report — research use, not for clinical use"
NOT_A_DIAGNOSIS = "Not a diagnosis."
DEIDENTIFIED = "de-identified (patient data not included in this report)"
#: a classification result lists at most this many classes in the report (the most probable); a note counts the rest
MAX_CLASS_ROWS = 12
FOOTER = ("Not a diagnosis. radview is research software, not for clinical use. AI results are the output of a "
          "model and are marked \u201cAI result, not reviewed\u201d until a user has reviewed them.")


# ------------------------------------------------------------------------------------------------ content
@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    widths: tuple[float, ...]  # relative column widths
    rows: list[tuple[str, ...]]
    status_column: int | None = None  # drawn in orange where it says "not reviewed"
    right_aligned: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)  # lines under the table


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
    label_map: Any = None  # the label map the structures were measured on, when at hand
    pieces: dict = field(default_factory=dict)  # structure index → structure_pieces.Pieces (sets of pieces)
    classification: Any = None  # ai.api.ClassificationResult of a classification model

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


def dicom_date(value: str) -> str:
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
    """The structures; one that is a set of pieces (``res.pieces``) shows its largest piece's diameters, and a
    note under the table names the pieces."""
    rows, notes = [], []
    for res in results:
        for j, s in enumerate(res.structures):
            pieces = res.pieces.get(j)
            if pieces is None:
                name, axial, d3 = structure_name(s), _length(s.get("axial_diameter_mm")), _length(
                    s.get("diameter_3d_mm"))
            else:
                what = "detections" if pieces.source == "detections" else "pieces"
                name = f"{structure_name(s)} ({pieces.count} {what})"
                axial, d3 = f"largest {_length(pieces.largest_axial)}", f"largest {_length(pieces.largest_3d)}"
                notes.append(pieces.text(structure_name(s)) + " — separate pieces, measured one by one")
            rows.append((name, _volume(s.get("volume_ml")), axial, d3, _num(s.get("mean_hu"), "{:.0f}"),
                         _num(s.get("sd_hu"), "{:.0f}"), res.name, res.structure_notes[j]))
    for layer_name, volumes in segmentations:  # label maps that are not AI results: their volumes only
        for label_name, ml in volumes:
            rows.append((location_text(label_name), _volume(ml), "—", "—", "—", "—", layer_name, "segmentation file"))
    return Table("Structures", ("Structure", "mL", "axial Ø mm", "3D Ø mm", "HU", "SD HU", "Result", "Status"),
                 (18, 6, 12, 12, 6, 6, 14, 34), rows, status_column=7, right_aligned=(1, 2, 3, 4, 5), notes=notes)


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
        if a.image is not None:  # a measurement on a 2D image: its image number (and frame)
            number = a.image.instance_number
            where = (f"Im {number}" if number is not None else "image") + (f", frame {a.image.frame}"
                                                                           if a.image.frame > 1 else "")
        elif volume is not None:
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


def classification_table(results: Iterable[AiResultRecord]) -> Table:
    """Each classification result's classes, most probable first (at most :data:`MAX_CLASS_ROWS` each)."""
    rows, notes = [], []
    for res in results:
        c = res.classification
        if c is None:
            continue
        flagged = set(c.flagged())
        ranked = c.ranked()
        for name, p in ranked[:MAX_CLASS_ROWS]:
            if c.multi_label:
                says = f"flagged (≥ {c.threshold(name):.2f})" if name in flagged else f"below {c.threshold(name):.2f}"
            else:
                says = "most probable" if name in flagged else ""
            rows.append((name, f"{p:.3f}", says, res.name, res.result_note))
        if len(ranked) > MAX_CLASS_ROWS:
            notes.append(f"{res.name}: {len(ranked) - MAX_CLASS_ROWS} more classes, each below "
                         f"{ranked[MAX_CLASS_ROWS - 1][1]:.3f}, not listed")
        notes.append(f"{res.name}: class probabilities ({c.kind}) of the model, not of disease. "
                     + (f"Input: {c.preprocessing}. " if c.preprocessing else "") + NOT_A_DIAGNOSIS)
    return Table("AI classification", ("Class", "Probability", "Model says", "Result", "Status"),
                 (22, 10, 14, 20, 34), rows, status_column=4, right_aligned=(1,), notes=notes)


# --- study --------------------------------------------------------------------------------------------------------
def image_study_lines(series, include_patient_data: bool = False) -> list[tuple[str, str]]:
    """The study lines of a 2D series (radiographs, ultrasound, cine): its images with their own sizes and
    calibration, never a voxel grid it does not have."""
    meta = series.meta or {}
    lines = []
    if include_patient_data:
        name = str(meta.get("patient_name") or "").replace("^", " ").strip()
        who = ", ".join(s for s in (name, f"ID {meta['patient_id']}" if meta.get("patient_id") else "",
                                    f"born {dicom_date(meta.get('patient_birth_date', ''))}"
                                    if meta.get("patient_birth_date") else "",
                                    f"sex {meta['patient_sex']}" if meta.get("patient_sex") else "") if s)
        lines.append(("Patient", who or "—"))
        place = ", ".join(s for s in (meta.get("institution"), dicom_date(meta.get("study_date", "")),
                                      f"accession {meta['accession']}" if meta.get("accession") else "") if s)
        if place:
            lines.append(("Institution, date", place))
    else:
        lines.append(("Patient", DEIDENTIFIED))
    number = meta.get("series_number")
    series_text = " ".join(s for s in (f"{number}:" if number is not None else "", str(meta.get("description") or ""))
                           if s) or "—"
    images = series.images
    first = images[0].display
    sizes = sorted({f"{im.shape[1]}×{im.shape[0]}" for im in images})
    frames = sum(im.n_frames for im in images)
    detail = (f"{series.modality or '?'} {series.kind}, {len(images)} image{'s' if len(images) != 1 else ''} "
              f"({', '.join(sizes)})" + (f", {frames} frames" if frames > len(images) else "")
              + f"; measured in {first.calibration.label}")
    lines.append(("Series", f"{series_text} ({detail})"))
    return lines


def study_lines(volume, include_patient_data: bool = False) -> list[tuple[str, str]]:
    meta = volume.meta or {}
    study, patient = meta.get("study") or {}, meta.get("patient") or {}
    lines = []
    if include_patient_data:
        name = str(patient.get("name") or "").replace("^", " ").strip()
        who = ", ".join(s for s in (name, f"ID {patient['id']}" if patient.get("id") else "",
                                    f"born {dicom_date(patient.get('birth_date', ''))}"
                                    if patient.get("birth_date") else "",
                                    f"sex {patient['sex']}" if patient.get("sex") else "") if s)
        lines.append(("Patient", who or "—"))
        place = ", ".join(s for s in (study.get("institution"), dicom_date(study.get("date", "")),
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
        record = ai_record(name, prov, [d for m in metas for d in m.get("detections", ())],
                           [s for m in metas for s in m.get("structures", ())], review_table, series_uid, metas,
                           revision)
        record.label_map = label.label_map if label is not None else None
        results.append(record)
    return results, segmentations


def ai_results_from_classifications(classifications, review_table: Mapping | None = None) -> list[AiResultRecord]:
    """The session's classification results (``viewer.core.ai_bridge.ClassifiedSeries``) as the report sees them."""
    out = []
    for c in classifications:
        record = ai_record(c.name, c.provenance, [], [], review_table, c.series_uid)
        record.classification = c.classification
        out.append(record)
    return out


def ai_result_from_findings(findings: Mapping, name: str = "", review: Mapping | None = None,
                            series_uid: str = "") -> AiResultRecord:
    """findings.json (``radview-cli ai run``) as one AI result; ``review``: the study's review table."""
    prov = dict(findings.get("provenance") or {}) or None
    title = name or (f"AI: {prov.get('model_name') or prov.get('model_id')}" if prov else "AI result")
    table = {str(k): v for k, v in (findings.get("review") or {}).items() if isinstance(v, Mapping)}
    table.update({str(k): v for k, v in (review or {}).items() if isinstance(v, Mapping)})
    series = series_uid or str((findings.get("input") or {}).get("series_uid") or "")
    from ai.api import ClassificationResult

    record = ai_record(title, prov, findings.get("detections") or [], findings.get("structures") or [], table, series,
                       [findings])
    try:
        record.classification = ClassificationResult.from_findings(findings)
    except ValueError:
        record.classification = None  # a malformed classification is left out of the report, not the rest
    return record


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


# --- captions --------------------------------------------------------------------------------------------------
def window_text(width: float, level: float, name: str = "") -> str:
    return f"W {width:.0f} L {level:.0f}" + (f" ({name})" if name else "")


def overlay_caption(names: Iterable[str], results: Iterable[AiResultRecord]) -> str:
    """``overlay: labels.nii.gz; AI: Lungs (AI result, not reviewed)``: each overlay once, AI ones with their state."""
    unreviewed = {r.name for r in results if not r.all_reviewed()}
    shown = list(dict.fromkeys(str(n).removesuffix(" findings") for n in names))
    if not shown:
        return ""
    return "overlay: " + "; ".join(n + (f" ({AI_NOT_REVIEWED})" if n in unreviewed else "") for n in shown)


def finding_caption(index: int, detection: Mapping, k: int, total: int) -> str:
    """The caption of the close-up of detection ``index`` on axial slice ``k`` of ``total``."""
    return (f"N{index + 1}: {_num(detection.get('diameter_mm'))} mm, score "
            f"{_num(detection.get('score'), '{:.2f}')}, axial {k + 1}/{total}")


# --- the report --------------------------------------------------------------------------------------------------
def report_tables(results: list[AiResultRecord], segmentations: list, annotations: Iterable[Any],
                  volume=None) -> list[Table]:
    """The report's tables: detections and structures when there are any, the measurements always. Structures
    that are sets of pieces are measured here, per piece (on each result's label map when it has one)."""
    from viewer.logic.structure_pieces import structure_pieces

    for res in results:
        if res.structures and not res.pieces:
            res.pieces = structure_pieces(res.structures, res.detections, res.label_map)
    tables = []
    if any(r.detections for r in results):
        tables.append(detection_table(results))
    if any(r.structures for r in results) or any(v for _n, v in segmentations):
        tables.append(structure_table(results, segmentations))
    if any(r.classification is not None for r in results):
        tables.append(classification_table(results))
    tables.append(measurement_table(annotations, volume))
    return tables
