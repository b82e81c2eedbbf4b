"""Measurements on 2D images (radiographs, ultrasound, cine frames) as a DICOM Comprehensive SR (TID 1500).

Each measurement is a planar ROI group whose region is a 2D SCOORD on the image it was drawn on (the SOP
instance and, for a multi-frame image, the frame): pixel coordinates with 0\\0 at the top-left corner of the
top-left pixel (PS3.3 C.18.6.1.1), so a pixel centre is at +0.5. Lengths are in mm where the image was
calibrated for them, with the calibration said in a comment ("mm at detector", "mm (ultrasound region)"), else
in pixels ({pixels}); the images' headers are the evidence. The volume SR (SCOORD3D) is :mod:`viewer.export.sr`.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from radview_base.atomic_file import atomic_write
from viewer.export.sr import SrError, SrInfo, lo_text, load_measurements, observer_name, stable_uid

_ROI = ("ellipse", "rectangle")


def _code(value: str, scheme: str, meaning: str):
    from pydicom.sr.coding import Code

    return Code(value, scheme, meaning)


def _units() -> dict:
    return {"mm": _code("mm", "UCUM", "millimeter"), "px": _code("{pixels}", "UCUM", "pixels"),
            "deg": _code("deg", "UCUM", "degree"), "mm2": _code("mm2", "UCUM", "square millimeter"),
            "px2": _code("{pixels}2", "UCUM", "square pixels"), "value": _code("1", "UCUM", "no units")}


def _region_data(kind: str, points_xy: np.ndarray) -> tuple[str, np.ndarray]:
    data = points_xy + 0.5  # pixel centres → SCOORD (0\0 is the top-left corner of the top-left pixel)
    if kind == "ellipse":
        return "ELLIPSE", data
    if kind == "rectangle":  # 2D SCOORD has no POLYGON: a closed POLYLINE (first point repeated) is one
        return "POLYLINE", np.vstack([data, data[:1]])
    return "POLYLINE", data


#: Type 2 patient and study attributes the SR copies from its evidence: empty where an image lacks them
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _evidence(ds):
    """The image's header with the Type 2 attributes the SR copies present (empty when the image has none)."""
    import copy

    if all(k in ds for k in _TYPE2):
        return ds
    out = copy.deepcopy(ds)  # a header (no pixel data): the original stays as the file says
    for keyword in _TYPE2:
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def write_image_sr(path: str, images: Sequence, measurements: Any, *, series_number: int = 903,
                   series_description: str = "Measurements on images (radview)") -> SrInfo:
    """Write ``measurements`` (annotation JSON dicts with ``image`` and ``points_image``) on ``images`` (pydicom
    headers of the images they were drawn on) as an SR at ``path``, atomically."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from viewer import __version__

    by_uid = {str(ds.SOPInstanceUID): _evidence(ds) for ds in images}
    items, _review = load_measurements(measurements, on_images=True)
    if not items:
        raise SrError("nothing to export: no measurements on 2D images")
    units = _units()
    groups, evidence = [], {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        try:
            for m in items:
                ref = m["image"]
                ds = by_uid.get(str(ref.get("sop_instance_uid")))
                if ds is None:
                    raise SrError(f"measurement {m.get('id')} is on image {ref.get('sop_instance_uid')}, "
                                  "which is not among the exported images")
                evidence[str(ds.SOPInstanceUID)] = ds
                groups.append(_group(hd, codes, units, m, ds))
            person = observer_name(items, {})
            observer = hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person)) \
                if person else None
            report = hd.sr.MeasurementReport(
                observation_context=hd.sr.ObservationContext(observer_person_context=observer),
                procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups)
            # no Image Library: highdicom's entries for projection images need PatientOrientation, which many
            # radiographs and ultrasound images lack; each measurement references its image, and the evidence
            # sequence lists them all
            sr = hd.sr.ComprehensiveSR(
                evidence=list(evidence.values()), content=report, series_instance_uid=hd.UID(),
                series_number=int(series_number), sop_instance_uid=hd.UID(), instance_number=1,
                manufacturer="radview", is_complete=True, is_final=False, is_verified=False,
                series_description=lo_text(series_description), software_versions=f"radview {__version__}")
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise SrError(f"cannot make an SR of the image measurements: {exc}") from exc
    atomic_write(path, lambda tmp: sr.save_as(tmp, enforce_file_format=True))
    return SrInfo(os.path.abspath(path), str(sr.SOPInstanceUID), str(sr.SeriesInstanceUID), 0, 0, len(items), [])


def _group(hd, codes, units, m: Mapping, ds) -> Any:
    ref, kind = m["image"], str(m["kind"])
    points = np.asarray(m["points_image"], dtype=float).reshape(-1, 2)
    frames = [int(ref.get("frame") or 1)] if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else None
    source = hd.sr.SourceImageForRegion(str(ds.SOPClassUID), str(ds.SOPInstanceUID), frames)
    gtype, data = _region_data(kind, points)
    region = hd.sr.ImageRegion(getattr(hd.sr.GraphicTypeValues, gtype), data, source_image=source)
    images = [hd.sr.SourceImageForMeasurement(str(ds.SOPClassUID), str(ds.SOPInstanceUID), frames)]
    ms = []

    def add(name, value, unit):
        if value is not None and np.isfinite(float(value)):
            ms.append(hd.sr.Measurement(name=name, value=float(value), unit=units[unit], referenced_images=images))

    if kind == "length":
        add(codes.SCT.Length, m.get("value"), "mm" if m.get("unit") == "mm" else "px")
    elif kind == "angle":
        add(codes.SCT.Angle, m.get("value"), "deg")
    stats = m.get("stats") or {}
    if kind in _ROI:
        if stats.get("area_mm2") is not None:
            add(codes.SCT.Area, stats["area_mm2"], "mm2")
        else:
            add(codes.SCT.Area, stats.get("area_px2"), "px2")
        for stat, name in (("mean", codes.SCT.Mean), ("sd", codes.SCT.StandardDeviation),
                           ("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum)):
            add(name, stats.get(stat), "value")
    label = str(m.get("label") or "")
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=stable_uid(str(ds.SOPInstanceUID), "measurement", m.get("id")),
                                                     identifier=lo_text(label or f"{kind} {m.get('id')}")),
        referenced_region=region, measurements=ms or None)
    note = _calibration_note(ref, m)
    for text in ([label] if label and kind == "arrow" else []) + ([note] if note else []):
        item = hd.sr.TextContentItem(name=codes.DCM.Comment, value=lo_text(text, 1024),
                                     relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        group[0].ContentSequence.append(item)
    return group


def _calibration_note(ref: Mapping, m: Mapping) -> str:
    """What the numbers mean, said in the SR as on screen: the calibration of the image for this measurement."""
    source = str(ref.get("calibration") or "none")
    if m.get("kind") == "length" and m.get("unit") == "px":
        return "Measured in pixels: the image gives no calibration for these points"
    return {"ImagerPixelSpacing": "Distances at the detector (ImagerPixelSpacing), not corrected for magnification",
            "ImagerPixelSpacing/ERMF": "Distances at the detector divided by the estimated radiographic "
                                       f"magnification factor {ref.get('magnification')}",
            "UltrasoundRegion": "Distances from the ultrasound region's calibration",
            "none": "Measured in pixels: the image gives no calibration"}.get(source, "")
