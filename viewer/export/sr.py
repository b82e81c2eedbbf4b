"""Measurements and findings as DICOM SR (TID 1500 Measurement Report, through highdicom) and as JSON.

:func:`write_sr` writes one Comprehensive 3D SR holding:

* **AI detections** (findings.json ``detections``): one volumetric ROI group
  (TID 1411) each — tracking identifier and UID, finding type (e.g. Nodule),
  finding site (lung_left: Lung, Left), the algorithm (name, version,
  parameters), the detection as an ELLIPSOID (a sphere of its diameter about
  its centre, SCOORD3D in the series' frame of reference; a POINT when it has
  no diameter), and the measurements Diameter (mm), Volume (ml), mean
  attenuation (HU; a non-CT series: mean signal, no unit) and the model's
  score as Certainty of Finding (unit 1).
* **AI structures** (findings.json ``structures``): one group each with volume,
  axial diameter (Long axis), 3D diameter (Diameter, derivation Maximum) and
  mean/SD/min/max attenuation; a volumetric ROI group referencing the segment
  when the SEG of the same labels is given (``seg=``), else a TID 1501 group.
* **User measurements** (the annotation JSON contract, see
  ``viewer.core.annotations``): one planar ROI group (TID 1410) each, the
  shape as SCOORD3D (length/angle/arrow POLYLINE, ellipse ELLIPSE, rectangle
  POLYGON) in the frame of reference, and every measurement referencing the
  source image nearest to the points (its SOP instance) — Length (mm), Angle
  (deg), Area (mm2) and mean/SD/min/max of ROIs. The label is the tracking
  identifier; the tracking UID is derived from the measurement's id, so the
  same measurement exported twice keeps its UID.

* **AI classification** (findings.json ``classification``, :class:`ai.api.ClassificationResult`): one
  measurement group (TID 1501) per class, most probable first — the finding type is the class as a code of
  radview's private scheme ``99RADVIEW`` (its meaning the class name; :func:`class_concept`), the measurement
  Probability (DCM 122157, unit 1) with the algorithm identification, the classified image as the group's
  source image when the series is one image, and a comment with the activation, the class's threshold and
  whether the model flags it, and what the network saw (its preprocessing). It needs no frame of reference:
  a radiograph without one gets its SR.

Every AI group carries a Comment (DCM 121106) saying ``AI result, not
reviewed`` — or who accepted/rejected it and when, from the study's review
table (``AnnotationSet.review``, keys and entries as :mod:`viewer.core.review`
defines them): a detection by its own decision (else "rejected" when the whole
result was rejected), a structure by the decision on the result as a whole
taken on the labels as the model made them (revision "0"); a decision on
another model version does not apply (a classification: the decision on its result as a whole). The
provenance is in the device observer
context (model name, version) and each group's algorithm identification. The
document is UNVERIFIED: radview does not sign reports.

:func:`write_findings_json` writes the same content as JSON. Files are written
atomically. Qt-free and torch-free.
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np

from radview_base.atomic_file import atomic_write
from viewer.export import AI_NOT_REVIEWED, ExportError
from viewer.export.json_file import json_safe, write_json
from viewer.export.seg import SourceSeries, algorithm_parameters, lo_text, provenance_dict, segment_codes

__all__ = ["SrError", "SrInfo", "write_sr", "write_findings_json", "findings_document", "review_note",
           "load_measurements", "findings_of", "classification_of", "class_concept", "PRIVATE_SCHEME"]

#: the coding scheme of a classifier's class names in the SR (a private scheme: the classes are the model's own)
PRIVATE_SCHEME = "99RADVIEW"

ROI_KINDS = ("ellipse", "rectangle")
KINDS = ("length", "angle", "ellipse", "rectangle", "arrow")


class SrError(ExportError):
    """An SR that cannot be written as asked; one line for the user."""


class _Review:
    """The decisions of the review table that apply to one AI result (see :mod:`viewer.core.review`)."""

    def __init__(self, review: Mapping | None, provenance: Mapping | None, series_uid: str):
        self.review = {str(k): v for k, v in (review or {}).items()}
        self.prov = provenance or {}
        self.series_uid = series_uid

    def _applies(self, entry, whole: bool) -> bool:
        if not isinstance(entry, Mapping) or entry.get("state") not in ("accepted", "rejected"):
            return False
        version = entry.get("model_version")
        if version not in (None, "") and str(version) != str(self.prov.get("model_version", "")):
            return False
        # findings.json describes the labels as the model made them: a decision on an edited revision is not theirs
        return not whole or str(entry.get("revision", "0")) == "0"

    def result(self) -> dict | None:
        """The decision on the result as a whole."""
        from viewer.core.review import result_key

        if not self.prov:
            return None
        entry = self.review.get(result_key(str(self.prov.get("model_id", "")), self.series_uid))
        return dict(entry) if self._applies(entry, whole=True) else None

    def detection(self, det: Mapping) -> dict | None:
        """A detection's own decision, else "rejected" when the whole result was rejected."""
        from viewer.core.review import detection_key

        if not self.prov:
            return None
        centre = det.get("center_lps_mm", det.get("center_lps"))
        entry = self.review.get(detection_key(str(self.prov.get("model_id", "")), self.series_uid, centre)) \
            if centre is not None else None
        if self._applies(entry, whole=False):
            return dict(entry)
        whole = self.result()
        return whole if whole and whole.get("state") == "rejected" else None


def review_note(entry: Mapping | None) -> str:
    """``AI result, not reviewed``, or e.g. ``AI result, accepted by alice (2024-05-01T10:00:00+00:00)``."""
    if not entry or not entry.get("state"):
        return AI_NOT_REVIEWED
    who = f" by {entry['user']}" if entry.get("user") else ""
    when = f" ({entry['time']})" if entry.get("time") else ""
    return f"AI result, {entry['state']}{who}{when}"


# ---------------------------------------------------------------------------------------------- inputs
def _findings_dict(findings: Any) -> dict:
    """findings.json content, or an ``ai.api.InferenceResult`` turned into that shape."""
    if findings is None:
        return {}
    if isinstance(findings, Mapping):
        return dict(findings)
    if hasattr(findings, "provenance") and hasattr(findings, "detections"):
        return findings_of(findings)
    raise TypeError(f"findings are a mapping (findings.json) or an InferenceResult, got {type(findings).__name__}")


def findings_of(result) -> dict:
    """An ``ai.api.InferenceResult`` in findings.json's shape: provenance, detections, structures, messages and,
    from a classification model, ``classification``."""
    d = {"provenance": result.provenance.as_dict(),
         "detections": [det.as_dict() for det in result.detections],
         "structures": [s.as_dict() for s in getattr(result, "structures", ())],
         "messages": list(getattr(result, "messages", ()))}
    classification = getattr(result, "classification", None)
    if classification is not None:
        d["classification"] = classification.as_dict()
    return d


def classification_of(findings: Any):
    """The ``ai.api.ClassificationResult`` of findings (findings.json content or an InferenceResult), or None.

    Reads findings.json's ``classification``, and the stopgap place of results written before it existed
    (``provenance.parameters.classification``); a malformed one raises SrError."""
    from ai.api import ClassificationResult

    if findings is None:
        return None
    if not isinstance(findings, Mapping):
        return getattr(findings, "classification", None)
    try:
        return ClassificationResult.from_findings(findings)
    except ValueError as exc:
        raise SrError(f"the findings' classification cannot be read: {exc}") from None


def _plain(text: str) -> str:
    """Typographic signs the runners use in words (×, ≥, —) as ASCII: an SR may be in the default character set."""
    return str(text).replace("×", "x").replace("≥", ">=").replace("≤", "<=").replace("—", "-").replace("…", "...")


def _declare_private_scheme(sr) -> None:
    """Name :data:`PRIVATE_SCHEME` in the Coding Scheme Identification Sequence (PS3.3 C.12.1.1.5)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "radview classifier class names"
    item.CodingSchemeResponsibleOrganization = "radview"
    sr.CodingSchemeIdentificationSequence = [item]


def class_concept(name: str):
    """A classifier's class as a coded concept of :data:`PRIVATE_SCHEME`: the value is the class name where it
    fits a code value (16 characters, no backslash), else ``RV`` and a hash of it; the meaning is the name."""
    import hashlib

    import highdicom as hd

    name = str(name)
    fits = 0 < len(name) <= 16 and "\\" not in name and name == name.strip()
    value = name if fits else "RV" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:14].upper()
    return hd.sr.CodedConcept(value, PRIVATE_SCHEME, lo_text(name or "class", 64))


def load_measurements(doc: Any, on_images: bool = False) -> tuple[list[dict], dict]:
    """(measurements, review) from the annotation JSON (``{"measurements": [...], "review": {...}}``) or a list.

    Measurements in patient space (``points_lps``) by default; ``on_images``: those drawn on 2D images instead
    (``image`` and ``points_image``, :mod:`viewer.export.sr_image`). Each kind is checked; the other is left out.
    """
    if doc is None:
        return [], {}
    if isinstance(doc, Mapping):
        items, review = doc.get("measurements", []), doc.get("review") or {}
    else:
        items, review = doc, {}
    if not isinstance(items, (list, tuple)):
        raise SrError("'measurements' must be a list")
    out = []
    for n, item in enumerate(items):
        if hasattr(item, "as_dict"):
            item = item.as_dict()
        if not isinstance(item, Mapping):
            raise SrError(f"measurement {n + 1} is not a JSON object")
        kind = item.get("kind")
        ident = str(item.get("id") or "")
        if kind not in KINDS:
            raise SrError(f"measurement {ident or n + 1}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        on_image = item.get("image") is not None
        if on_image != on_images:
            continue
        key, width = ("points_image", 2) if on_image else ("points_lps", 3)
        try:
            pts = np.asarray(item.get(key), dtype=float).reshape(-1, width)
        except (TypeError, ValueError):
            raise SrError(f"measurement {ident or n + 1}: {key} must be a list of "
                          f"{'[column, row]' if on_image else '[x, y, z]'}") from None
        need = {"length": 2, "angle": 3, "ellipse": 4, "rectangle": 4, "arrow": 2}[kind]
        if len(pts) != need or not np.isfinite(pts).all():
            raise SrError(f"measurement {ident or n + 1}: a {kind} has {need} finite points, got {len(pts)}")
        if on_image and not isinstance(item.get("image"), Mapping):
            raise SrError(f"measurement {ident or n + 1}: 'image' must be an object")
        out.append(dict(item, id=ident or f"m{n + 1}", **{key: pts.tolist()}))
    if not isinstance(review, Mapping):
        raise SrError("'review' must be a JSON object")
    return out, dict(review)


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------------------------- codes
def _units():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return {
        "mm": codes.UCUM.Millimeter, "mm2": codes.UCUM.SquareMillimeter, "deg": codes.UCUM.Degree,
        "ml": hd.sr.CodedConcept("ml", "UCUM", "milliliter"), "HU": codes.UCUM.HounsfieldUnit,
        "1": codes.UCUM.NoUnits,
    }


def _intensity(modality: str, statistic: str):
    """(name, derivation, unit key) of an intensity statistic (mean/sd/min/max) on a series of ``modality``."""
    from pydicom.sr.codedict import codes

    derivation = {"mean": codes.SCT.Mean, "sd": codes.SCT.StandardDeviation, "min": codes.SCT.Minimum,
                  "max": codes.SCT.Maximum}[statistic]
    if modality == "CT":
        return codes.DCM.AttenuationCoefficient, derivation, "HU"
    if modality == "MR":
        return codes.DCM.MRSignalIntensity, derivation, "1"
    return derivation, None, "1"


def _site(name: str):
    """A FindingSite for a location name such as ``lung_left`` (None for an unknown one)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not name:
        return None
    _, site, side = segment_codes(name)
    if site == codes.SCT.Tissue:
        return None
    return hd.sr.FindingSite(anatomic_location=site, laterality=side)


def _finding_type(name: str):
    from pydicom.sr.codedict import codes

    _, kind, _ = segment_codes(name)
    return codes.SCT.Finding if kind == codes.SCT.Tissue else kind


def stable_uid(*parts: Any) -> str:
    """A UID derived from ``parts`` (the same inputs give the same UID: tracking across exports)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


# -------------------------------------------------------------------------------------------- building
@dataclass
class SrInfo:
    path: str
    sop_instance_uid: str
    series_instance_uid: str
    n_detections: int
    n_structures: int
    n_measurements: int
    notes: list[str] = field(default_factory=list)
    n_classes: int = 0


class _Builder:
    def __init__(self, source: SourceSeries, others: Mapping[str, SourceSeries] | None, review: _Review):
        import highdicom as hd
        from pydicom.sr.codedict import codes

        self.hd, self.codes = hd, codes
        self.units = _units()
        self.source = source
        self.sources = {source.series_uid: source}
        for s in (others or {}).values():
            self.sources.setdefault(s.series_uid, s)
        self.review = review
        self.evidence: dict[str, Any] = {}  # SOP instance UID -> dataset
        #: images referenced only as a classification's source: evidence, but not in the image library (highdicom's
        #: entries for projection images need attributes many radiographs lack, e.g. ImagerPixelSpacing)
        self.classified: dict[str, Any] = {}

    def measurement(self, name, value, unit: str, derivation=None, algorithm=None, images=None):
        v = _finite(value)
        if v is None:
            return None
        return self.hd.sr.Measurement(name=name, value=v, unit=self.units[unit], derivation=derivation,
                                      algorithm_id=algorithm, referenced_images=images)

    def comment(self, group, text: str) -> None:
        """Append a Comment (TEXT) to a group's container (the AI note, a detection's kind)."""
        item = self.hd.sr.TextContentItem(name=self.codes.DCM.Comment, value=lo_text(text, 1024),
                                          relationship_type=self.hd.sr.RelationshipTypeValues.CONTAINS)
        group[0].ContentSequence.append(item)

    def algorithm(self, prov: Mapping | None):
        if not prov:
            return None
        params = [f"{k}={v}" for k, v in algorithm_parameters(prov).items()]
        return self.hd.sr.AlgorithmIdentification(
            name=lo_text(prov.get("model_name") or prov.get("model_id") or "unknown model"),
            version=lo_text(prov.get("model_version") or "unknown"), parameters=params or None)

    # --- AI -------------------------------------------------------------------------------------
    def detection(self, i: int, det: Mapping, prov: Mapping | None):
        hd, codes = self.hd, self.codes
        centre = np.asarray(det.get("center_lps_mm", det.get("center_lps")), dtype=float).reshape(3)
        diameter = _finite(det.get("diameter_mm"))
        label = str(det.get("label") or "finding")
        if diameter and diameter > 0:
            r = diameter / 2.0
            pts = np.array([centre - [r, 0, 0], centre + [r, 0, 0], centre - [0, r, 0], centre + [0, r, 0],
                            centre - [0, 0, r], centre + [0, 0, r]])
            surface = hd.sr.VolumeSurface(hd.sr.GraphicTypeValues3D.ELLIPSOID, pts,
                                          self.source.frame_of_reference_uid,
                                          source_series=hd.sr.SourceSeriesForSegmentation(self.source.series_uid))
        else:
            surface = hd.sr.VolumeSurface(hd.sr.GraphicTypeValues3D.POINT, centre.reshape(1, 3),
                                          self.source.frame_of_reference_uid,
                                          source_series=hd.sr.SourceSeriesForSegmentation(self.source.series_uid))
        algo = self.algorithm(prov)
        name, derivation, unit = _intensity(self.source.modality, "mean")
        ms = [self.measurement(codes.SCT.Diameter, diameter, "mm", algorithm=algo),
              self.measurement(codes.SCT.Volume, det.get("volume_ml"), "ml", algorithm=algo),
              self.measurement(name, det.get("mean_hu"), unit, derivation, algorithm=algo),
              self.measurement(codes.DCM.CertaintyOfFinding, det.get("score"), "1", algorithm=algo)]
        site = _site(str(det.get("location") or ""))
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=stable_uid(self.source.series_uid, "detection", i, *np.round(centre, 3)),
                identifier=lo_text(f"AI {label} {i + 1}")),
            referenced_volume_surface=surface,
            finding_type=_finding_type(label),
            algorithm_id=algo,
            finding_sites=[site] if site is not None else None,
            measurements=[m for m in ms if m is not None],
        )
        note = review_note(self.review.detection(det))
        self.comment(group, note + (f"; {det['kind']}" if det.get("kind") else ""))
        return group, note

    def structure(self, s: Mapping, prov: Mapping | None, seg):
        hd, codes = self.hd, self.codes
        name = str(s.get("name") or f"label {s.get('label')}")
        component = int(s.get("component") or 0)
        title = f"AI {name}" + (f" component {component}" if component else "")
        algo = self.algorithm(prov)
        ms = [self.measurement(codes.SCT.Volume, s.get("volume_ml"), "ml", algorithm=algo),
              self.measurement(codes.SCT.LongAxis, s.get("axial_diameter_mm"), "mm", algorithm=algo),
              self.measurement(codes.SCT.Diameter, s.get("diameter_3d_mm"), "mm", codes.SCT.Maximum,
                               algorithm=algo)]
        for stat, key in (("mean", "mean_hu"), ("sd", "sd_hu"), ("min", "min_hu"), ("max", "max_hu")):
            iname, derivation, unit = _intensity(self.source.modality, stat)
            ms.append(self.measurement(iname, s.get(key), unit, derivation, algorithm=algo))
        _, kind, side = segment_codes(name)
        finding = _finding_type(name)
        sites = [hd.sr.FindingSite(anatomic_location=kind, laterality=side)] if side is not None else None
        tracking = hd.sr.TrackingIdentifier(uid=stable_uid(self.source.series_uid, "structure", name, component),
                                            identifier=lo_text(title))
        segment_number = None
        if seg is not None and not component:
            segment_number = _segment_number(seg, s)
        common = dict(tracking_identifier=tracking, finding_type=finding, algorithm_id=algo, finding_sites=sites,
                      measurements=[m for m in ms if m is not None])
        if segment_number is not None:
            ref = hd.sr.ReferencedSegment(sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID),
                                          segment_number=segment_number,
                                          source_series=hd.sr.SourceSeriesForSegmentation(self.source.series_uid))
            group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=ref, **common)
            self.evidence[str(seg.SOPInstanceUID)] = seg
        else:
            group = hd.sr.MeasurementsAndQualitativeEvaluations(**common)
        note = review_note(self.review.result())
        self.comment(group, note)
        return group, note

    def classification(self, c, prov: Mapping | None) -> tuple[list, str]:
        """One TID 1501 group per class (most probable first): finding type the class, measurement Probability."""
        hd, codes = self.hd, self.codes
        algo = self.algorithm(prov)
        note = review_note(self.review.result())
        flagged = set(c.flagged())
        images = None
        if len(self.source.slices) == 1:  # the series is one image: it is what was classified
            sop_class, sop_uid, frame = self.source.reference(0)
            images = [hd.sr.SourceImageForMeasurementGroup(sop_class, sop_uid, [frame] if frame else None)]
            self.classified[sop_uid] = self.source.datasets[self.source.slices[0][0]]
        model = str((prov or {}).get("model_id") or "")
        saw = "; ".join(t for t in (f"input: {c.preprocessing}" if c.preprocessing else "",
                                    f"classified: {c.image}" if c.image else "") if t)
        groups = []
        for rank, (name, p) in enumerate(c.ranked(), start=1):
            ms = [self.hd.sr.Measurement(name=codes.DCM.Probability, value=float(p), unit=self.units["1"],
                                         algorithm_id=algo)]
            group = hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=stable_uid(self.source.series_uid, "classification", model, name),
                    identifier=lo_text(f"AI class {name}")),
                finding_type=class_concept(name), algorithm_id=algo, measurements=ms, source_images=images)
            if c.multi_label:
                t = c.threshold(name)
                verdict = (f"multi-label (sigmoid), threshold {t:.2f}: "
                           f"{'at or above, flagged' if name in flagged else 'below, not flagged'}")
            else:
                verdict = ("single-label (softmax): " +
                           ("the most probable class" if name in flagged else f"rank {rank} of {len(c.classes)}"))
            self.comment(group, _plain(f"{note}; probability of {name} {p:.3f}, {verdict}; {c.note}"))
            if saw:
                self.comment(group, _plain(saw))
            groups.append(group)
        return groups, note

    # --- user -----------------------------------------------------------------------------------
    def user(self, m: Mapping):
        hd, codes = self.hd, self.codes
        uid = str(m.get("series_uid") or "") or self.source.series_uid
        source = self.sources.get(uid)
        if source is None:
            raise SrError(f"measurement {m['id']} is on series {uid}, which is not among the exported series")
        kind = m["kind"]
        pts = np.asarray(m["points_lps"], dtype=float)
        z = source.nearest_slice(pts)
        sop_class, sop_uid, frame = source.reference(z)
        d, _ = source.slices[z]
        self.evidence[sop_uid] = source.datasets[d]
        images = [hd.sr.SourceImageForMeasurement(sop_class, sop_uid, [frame] if frame else None)]
        if kind == "ellipse":
            gtype, data = hd.sr.GraphicTypeValues3D.ELLIPSE, pts
        elif kind == "rectangle":
            gtype, data = hd.sr.GraphicTypeValues3D.POLYGON, np.vstack([pts, pts[:1]])
        else:
            gtype, data = hd.sr.GraphicTypeValues3D.POLYLINE, pts
        region = hd.sr.ImageRegion3D(gtype, data, source.frame_of_reference_uid)
        ms = []
        value = _finite(m.get("value"))
        if kind == "length":
            if value is None:
                value = float(np.linalg.norm(pts[1] - pts[0]))
            ms.append(self.measurement(codes.SCT.Length, value, "mm", images=images))
        elif kind == "angle":
            if value is None:
                u, v = pts[0] - pts[1], pts[2] - pts[1]
                value = float(np.degrees(np.arccos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))
            ms.append(self.measurement(codes.SCT.Angle, value, "deg", images=images))
        elif value is not None:  # an ROI or arrow with a value of its own: name it by its unit
            unit = str(m.get("unit") or "")
            named = {"mm": codes.SCT.Length, "deg": codes.SCT.Angle, "mm2": codes.SCT.Area}
            if unit in named:
                ms.append(self.measurement(named[unit], value, unit, images=images))
        stats = m.get("stats") or {}
        if kind in ROI_KINDS and isinstance(stats, Mapping):
            ms.append(self.measurement(codes.SCT.Area, stats.get("area_mm2"), "mm2", images=images))
            for stat in ("mean", "sd", "min", "max"):
                name, derivation, unit = _intensity(source.modality, stat)
                ms.append(self.measurement(name, stats.get(stat), unit, derivation, images=images))
        label = str(m.get("label") or "")
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=stable_uid(source.series_uid, "measurement", m["id"]),
                                                         identifier=lo_text(label or f"{kind} {m['id']}")),
            referenced_region=region,
            measurements=[x for x in ms if x is not None] or None,
        )
        if label and kind == "arrow":
            self.comment(group, label)
        return group


def _segment_number(seg, structure: Mapping) -> int | None:
    """The segment of ``seg`` for a structure: by the label id radview recorded in the SEG, else by name."""
    from viewer.io.seg_file import PRIVATE_CREATOR, PRIVATE_GROUP, PRIVATE_LABEL_ELEMENT

    name, label = str(structure.get("name") or ""), structure.get("label")
    by_name = None
    for item in seg.SegmentSequence:
        try:
            value = int(item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[PRIVATE_LABEL_ELEMENT].value)
        except (KeyError, TypeError, ValueError):
            value = None
        if label is not None and value == label and str(item.get("SegmentLabel", "")) == name:
            return int(item.SegmentNumber)
        if by_name is None and str(item.get("SegmentLabel", "")) == name:
            by_name = int(item.SegmentNumber)
    return by_name


def observer_name(measurements: Sequence[Mapping], review: Mapping) -> str:
    names = [str(m.get("created_by") or "") for m in measurements] + \
            [str(v.get("user") or "") for v in review.values() if isinstance(v, Mapping)]
    names = [n for n in names if n]
    if not names:
        return ""
    name = Counter(names).most_common(1)[0][0]
    return name if "^" in name else name + "^"  # a login name as a DICOM PN: family name only ("alice^")


def write_sr(path: str, source: SourceSeries, *, findings: Any = None, measurements: Any = None,
             review: Mapping | None = None, seg: Any = None, other_sources: Mapping[str, SourceSeries] | None = None,
             series_number: int = 902, series_description: str | None = None) -> SrInfo:
    """Write AI findings and/or user measurements on ``source`` as a DICOM SR (TID 1500) at ``path``, atomically.

    ``findings``: findings.json content (provenance, detections, structures) or an
    ``InferenceResult``. ``measurements``: the annotation JSON (``{"measurements": [...],
    "review": {...}}``) or a list of measurement dicts; each is placed on its
    ``series_uid`` (``source`` or one of ``other_sources``; empty: ``source``).
    ``review``: the review table (default: the measurement document's).
    ``seg``: the SEG of the same labels (a :class:`~viewer.export.seg.SegInfo` or dataset)
    for structure groups to reference.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from viewer import __version__

    f = _findings_dict(findings)
    classification = classification_of(f)
    items, doc_review = load_measurements(measurements)
    review = dict(doc_review if review is None else review)
    if not f.get("detections") and not f.get("structures") and not items and classification is None:
        raise SrError("nothing to export: no detections, structures, classification or measurements")
    if not source.frame_of_reference_uid and (f.get("detections") or f.get("structures") or items):
        raise SrError(f"series {source.key} has no FrameOfReferenceUID: SCOORD3D needs one")
    seg_ds = getattr(seg, "dataset", seg)
    prov = provenance_dict(f.get("provenance"))
    b = _Builder(source, other_sources, _Review(review, prov, source.series_uid))
    groups, notes = [], []
    with warnings.catch_warnings():
        # highdicom's advice on single-component person names ("alice"): a user name is what we have
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        try:
            for i, det in enumerate(f.get("detections") or []):
                group, note = b.detection(i, det, prov)
                groups.append(group)
                notes.append(note)
            for s in f.get("structures") or []:
                group, note = b.structure(s, prov, seg_ds)
                groups.append(group)
                notes.append(note)
            if classification is not None:
                made, note = b.classification(classification, prov)
                groups += made
                notes += [note] * len(made)
            for m in items:
                groups.append(b.user(m))
            person = observer_name(items, review)
            observer_person = hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person)) \
                if person else None
            observer_device = None
            if prov:
                observer_device = hd.sr.ObserverContext(
                    observer_type=codes.DCM.Device,
                    observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                        uid=stable_uid("radview-model", prov.get("model_id"), prov.get("model_version")),
                        name=lo_text(prov.get("model_name") or prov.get("model_id") or "AI model"),
                        manufacturer_name="radview",
                        model_name=lo_text(f"{prov.get('model_id') or ''} {prov.get('model_version') or ''}".strip())))
            procedure = codes.LN.CTUnspecifiedBodyRegion if source.modality == "CT" else codes.SCT.ImagingProcedure
            seg_uid = str(getattr(seg_ds, "SOPInstanceUID", ""))
            images = [ds for uid, ds in b.evidence.items() if uid != seg_uid]  # the image library: images only
            report = hd.sr.MeasurementReport(
                observation_context=hd.sr.ObservationContext(observer_person_context=observer_person,
                                                             observer_device_context=observer_device),
                procedure_reported=procedure,
                imaging_measurements=groups,
                referenced_images=images or None,
            )
            unreviewed = sum(n == AI_NOT_REVIEWED for n in notes)
            if series_description is None:
                what = "Measurements" if f.get("detections") or f.get("structures") or items else "AI classification"
                series_description = f"{what} (radview)" + (f" - {AI_NOT_REVIEWED}" if unreviewed else "")
            sr = hd.sr.Comprehensive3DSR(
                evidence=list({**b.classified, **b.evidence}.values()) or [source.first],
                content=report,
                series_instance_uid=hd.UID(),
                series_number=int(series_number),
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="radview",
                is_complete=True,
                is_final=False,
                is_verified=False,
                series_description=lo_text(series_description),
                software_versions=f"radview {__version__}",
            )
        except (ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, SrError):
                raise
            raise SrError(f"cannot make an SR of series {source.key}: {exc}") from exc
    if classification is not None:
        _declare_private_scheme(sr)
    atomic_write(path, lambda tmp: sr.save_as(tmp, enforce_file_format=True))
    n_det, n_struct = len(f.get("detections") or []), len(f.get("structures") or [])
    return SrInfo(os.path.abspath(path), str(sr.SOPInstanceUID), str(sr.SeriesInstanceUID), n_det, n_struct,
                  len(items), notes, len(classification.classes) if classification is not None else 0)


# ------------------------------------------------------------------------------------------------- JSON
def findings_document(findings: Any = None, measurements: Any = None, review: Mapping | None = None,
                      source: SourceSeries | None = None) -> dict:
    """The JSON export's content: AI findings (each with its review note), structures, user measurements."""
    from viewer import __version__

    f = _findings_dict(findings)
    items, doc_review = load_measurements(measurements)
    items += load_measurements(measurements, on_images=True)[0]  # those on 2D images, with their image and unit
    review = dict(doc_review if review is None else review)
    prov = provenance_dict(f.get("provenance"))
    series_uid = source.series_uid if source is not None else str((f.get("input") or {}).get("series_uid") or "")
    decisions = _Review(review, prov, series_uid)
    detections = [dict(d, review=decisions.detection(d), note=review_note(decisions.detection(d)))
                  for d in f.get("detections") or []]
    whole = decisions.result()
    structures = [dict(s, review=whole, note=review_note(whole)) for s in f.get("structures") or []]
    c = classification_of(f)
    classification = dict(c.as_dict(), flagged=list(c.flagged()), review=whole, review_note=review_note(whole)) \
        if c is not None else None
    doc = {
        "format": "radview findings export 1",
        "written_by": f"radview {__version__}",
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ai_note": AI_NOT_REVIEWED if any(d["note"] == AI_NOT_REVIEWED for d in detections + structures) or
        (classification is not None and classification["review_note"] == AI_NOT_REVIEWED) else "",
        "note": f.get("note", ""),
        "provenance": prov,
        "source": {"series_uid": source.series_uid, "study_uid": source.study_uid,
                   "frame_of_reference_uid": source.frame_of_reference_uid} if source is not None else
        dict(f.get("input") or {}),
        "detections": detections,
        "structures": structures,
        **({"classification": classification} if classification is not None else {}),
        "measurements": items,
        "review": review,
        "messages": list(f.get("messages") or []),
    }
    return json_safe(doc)


def write_findings_json(path: str, findings: Any = None, measurements: Any = None, review: Mapping | None = None,
                        source: SourceSeries | None = None) -> str:
    """Write :func:`findings_document` as JSON (strict: NaN becomes null) at ``path``, atomically."""
    doc = findings_document(findings, measurements, review, source)
    return write_json(path, doc)
