"""Exports, without Qt: what File → Export gathers from the session and the open study before a writer of
:mod:`viewer.export` runs, and the de-identified copy of a list of files.

The GUI (:mod:`viewer.qt.controllers.export_actions`) calls these on the GUI thread to gather a snapshot, then
runs the writer in a job; the messages are for the user.

An AI result is a segmentation or detection run (its layers) or a classification model's answer
(``Session.classifications``, :class:`viewer.core.ai_bridge.ClassifiedSeries`): :func:`findings_doc` gives either
as findings.json content (a classification under ``classification``, as ``radview-cli ai run`` writes it), and
:func:`has_findings` says whether there is something to report. A classification of a 2D image is written as an SR
of that image (:func:`classified_image_source`): the SR references the image it was made on.
"""
from __future__ import annotations

import dataclasses
import os
import re
import secrets
from typing import Any

import numpy as np

from viewer.export.json_file import json_safe

#: label map formats written in one file (and so atomically); ``.nhdr`` / ``.mhd`` keep their data apart
NIFTI_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")

NO_SERIES = "Open a series first"
NO_LABELS = "No label map is shown: load a segmentation or run an AI model first"
NOTHING_MEASURED = "Nothing to export yet: no measurements and no AI findings on this series"
NOT_DICOM = "the open image was not read from a DICOM series"


class ExportRefused(ValueError):
    """An export that cannot start as asked; the message is for the user."""


def safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", str(text)).strip("._") or "export"


def plain(obj) -> dict:
    if obj is None:
        return {}
    if hasattr(obj, "as_dict"):
        return dict(obj.as_dict())
    if isinstance(obj, dict):
        return dict(obj)
    return dict(vars(obj))


def within(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def deid_summary(report) -> str:
    """``12 files: 11 written, 1 skipped`` (or ``Cancelled after 3 of 12 files: ...``)."""
    head = (f"Cancelled after {report.n_processed} of {report.n_files} files" if report.cancelled
            else f"{report.n_files} files")
    text = f"{head}: {report.n_written} written, {len(report.skipped)} skipped"
    if len(report.skipped) == 1:  # one file: say which and why, right here
        only = report.skipped[0]
        text += f" ({os.path.basename(only.path)}: {only.reason})"
    return text


def deidentify_files(files: list[str], out_dir: str, progress=None, cancel=None, options=None):
    """``deidentify_study`` over a list of files as one run: one secret, so the same original UID or patient
    gives the same new one in every file; returns one :class:`~viewer.export.deid.DeidReport`."""
    from viewer.export.deid import DeidOptions, DeidReport, SkippedFile, deidentify_study

    options = options or DeidOptions()
    if options.secret is None:
        options = dataclasses.replace(options, secret=secrets.token_hex(32))
    common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]) if files else ""
    report = DeidReport(src=common, out_dir=os.path.realpath(out_dir), n_files=len(files))
    written: dict[str, str] = {}
    for i, path in enumerate(files):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        one = deidentify_study(path, out_dir, None, None, options)
        report.skipped.extend(one.skipped)
        for w in one.written:
            if w.path in written:
                report.skipped.append(SkippedFile(path, f"same SOP Instance UID as {written[w.path]}: written once"))
            else:
                written[w.path] = path
                report.written.append(w)
        report.n_processed = i + 1
        if progress is not None:
            progress((i + 1) / max(len(files), 1), f"de-identifying {i + 1}/{len(files)}")
    report.n_patients = len({os.path.relpath(w.path, report.out_dir).split(os.sep)[0] for w in report.written})
    return report


def dicom_entry(session, index):
    """``(index, series entry)`` of the session's volume (or 2D series) in the open study ``index``;
    :class:`ExportRefused` when it is not a DICOM series of that study."""
    volume = session.volume
    images = getattr(session, "images", None)
    if volume is None and images is None:
        raise ExportRefused(NO_SERIES)
    meta = (volume.meta if volume is not None else images.meta) or {}
    key = str(meta.get("series_key") or "")
    if meta.get("source_file") or not key or index is None:
        name = os.path.basename(str(meta.get("source_file") or "")) or "the open image"
        raise ExportRefused(f"{name} was not read from a DICOM series" if name != "the open image" else NOT_DICOM)
    try:
        entry = index.find(key)
    except KeyError:
        raise ExportRefused(f"{NOT_DICOM} of the open study folder") from None
    if entry.series_uid != meta.get("series_uid"):
        raise ExportRefused(f"{NOT_DICOM} of the open study folder")
    return index, entry

def study_source(session, index) -> str | list[str]:
    """What the de-identified copy reads: the opened folder when it holds only the open study, else the
    open study's files."""
    index, entry = dicom_entry(session, index)
    if all(e.study_uid == entry.study_uid for e in index.series):
        return index.root
    return sorted({f for e in index.series if e.study_uid == entry.study_uid for f in e.files})


def snapshot(layer):
    """A copy of the layer's label map: the worker writes what was shown, whatever is painted meanwhile."""
    from viewer.io.volume import LabelMap

    lm = layer.label_map
    return LabelMap(np.array(lm.array, copy=True), lm.geometry, dict(lm.labels), meta=dict(lm.meta or {}))

def review_of(session, layer) -> tuple[Any, str | None, bool]:
    """(provenance dict or None, reviewed by, edited) of a label layer."""
    from viewer.core.review import result_of_layer, result_status
    from viewer.export.seg import provenance_dict

    prov = provenance_dict(layer.meta.get("provenance"))
    edited = bool(layer.meta.get("edited_by") or layer.meta.get("edited"))
    reviewed_by = None
    result = result_of_layer(session, layer) if prov is not None else None
    if result is not None:
        status = result_status(session.annotations.review, result)
        if status.state == "reviewed":
            reviewed_by = status.user or "unknown user"
    return prov, reviewed_by, edited


def layer_findings(session, layer, prov: dict, reviewed_by: str | None, edited: bool) -> dict:
    """findings.json of an AI label layer (the shape ``radview-cli ai run`` writes), plus its review state."""
    from viewer.core.review import result_of_layer
    from viewer.export.seg import seg_note

    volume = session.volume
    g = volume.geometry
    result = result_of_layer(session, layer)
    doc = findings_doc(session, result) if result is not None else {"provenance": prov, "detections": [],
                                                              "structures": []}
    doc["input"] = {"series_uid": str(volume.meta.get("series_uid", "")), "shape_zyx": list(g.shape_zyx),
                    "spacing_zyx": [float(v) for v in g.spacing_zyx]}
    doc["note"] = seg_note(prov, reviewed_by, edited)
    doc["edited"] = edited
    for key in ("edited_by", "edited_at", "revision", "review_state", "reviewed_by", "reviewed_at"):
        if layer.meta.get(key) not in (None, ""):
            doc[key] = str(layer.meta[key])
    return json_safe(doc)

def structures(result) -> list:
    metas = [layer.meta for layer in result.layers]
    return [s for m in metas for s in m.get("structures", ())]

def classification_of(result):
    """The ``ai.api.ClassificationResult`` of an AI result (a classification model's answer), else None."""
    return getattr(result, "classification", None)


def reportable(result) -> bool:
    """An AI result with something to export: detections, structures or class probabilities."""
    return bool(result.detections or structures(result) or classification_of(result) is not None)


def has_findings(findings: dict | None) -> bool:
    """findings.json content with something to report (detections, structures or a classification)."""
    return bool(findings and (findings.get("detections") or findings.get("structures")
                              or findings.get("classification")))


def findings_doc(session, result) -> dict | None:
    """One AI result as findings.json content (plain dicts), or None; a classification model's answer with its
    ``classification`` (class probabilities, activation, thresholds, what the network saw) and the image it was
    made on."""
    from viewer.export.seg import provenance_dict

    if result is None:
        return None
    opened = session.volume if session.volume is not None else getattr(session, "images", None)
    series_uid = str((opened.meta or {}).get("series_uid", "")) if opened is not None else ""
    classified = getattr(result, "classified", None)
    c = classification_of(result)
    if classified is not None:
        messages = list(getattr(classified, "messages", ()) or ())
        series_uid = str(getattr(classified, "series_uid", "") or series_uid)
    else:
        messages = next((list(layer.meta.get("messages") or ()) for layer in result.layers), [])
    doc = {"provenance": provenance_dict(result.provenance),
           "input": {"series_uid": series_uid},
           "detections": [plain(d) for d in result.detections],
           "structures": [plain(s) for s in structures(result)],
           "messages": [str(m) for m in messages]}
    if c is not None:
        doc["classification"] = c.as_dict()
        sop = str(getattr(classified, "sop_instance_uid", "") or "")
        if sop:
            doc["input"]["sop_instance_uid"] = sop
    return doc


def classified_image_source(images, sop_instance_uid: str = ""):
    """The source an SR of a 2D image's classification references: the classified image of the 2D series
    ``images`` (its first image when ``sop_instance_uid`` is "" or not among them), as a one-image
    ``viewer.export.seg.SourceSeries`` of its header. ``images`` is a ``PlanarSeries`` or a list of pydicom
    headers (``radview-cli export sr`` reads them from the index)."""
    from radview_base.geometry import Geometry
    from viewer.export.seg import SourceSeries

    headers = [getattr(im, "header", im) for im in getattr(images, "images", images)]
    if not headers:
        raise ExportRefused("the series has no image to reference")
    header = next((h for h in headers if str(h.get("SOPInstanceUID", "")) == str(sop_instance_uid)), headers[0])
    if "SpecificCharacterSet" in header and not header.SpecificCharacterSet:  # (highdicom refuses an empty one)
        import copy

        header = copy.deepcopy(header)  # a header without pixels: the series' own stays as it was read
        del header.SpecificCharacterSet
    rows, cols = int(header.get("Rows", 1) or 1), int(header.get("Columns", 1) or 1)
    geometry = Geometry((1, rows, cols), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    return SourceSeries(geometry, [header], [(0, 0)], str(header.get("SeriesInstanceUID", "")))


def default_result(session, result):
    """``result``, else the AI result of the active label layer, else the last one with findings (or None)."""
    from viewer.core.review import ai_results

    if result is not None:
        return result
    results = [r for r in ai_results(session) if reportable(r)]
    active = session.active_label
    if active is not None:
        mine = next((r for r in results if active[0] in r.layers), None)
        if mine is not None:
            return mine
    return results[-1] if results else None

def image_measurement_sr(path: str, images, doc: dict) -> str:
    """The measurements drawn on the 2D series ``images`` as a DICOM SR (2D SCOORD on each image); the path."""
    from viewer.export.sr_image import write_image_sr

    measured = [m for m in doc["measurements"] if m.get("image")]
    if not measured:
        raise ExportRefused("no measurements on these images")
    return write_image_sr(path, [im.header for im in images.images], measured).path


def measurement_doc(annotations) -> dict:
    """The measurements and the review table, as plain dicts."""
    return {"measurements": [a.as_dict() for a in annotations],
            "review": {str(k): dict(v) for k, v in annotations.review.items()}}
