"""What ``radview-cli export report`` reports from files, without Qt: the AI results of a label map and a
findings.json, each with its own provenance, and the measurements with their review table.

Labels and findings may come from two runs (lungs from one model, nodules from another): each is its own result,
named by its own model and version, and the nodule run's structures are measured on its own label map (the
``labels.nii.gz`` beside its findings.json), never on the other run's. Labels and findings of one run are one
result. Labels without any provenance are a plain segmentation file (their volumes only).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from viewer.logic.label_source import same_run
from viewer.logic.report_content import ai_record, ai_result_from_findings


def measurements_and_review(measurements) -> tuple[list, dict]:
    """``(items, review table)`` of a measurements JSON (``{"measurements": [...], "review": {...}}`` or a list)."""
    if measurements is None:
        return [], {}
    if isinstance(measurements, Mapping):
        return list(measurements.get("measurements") or []), dict(measurements.get("review") or {})
    return list(measurements), {}


def _own_label_map(findings_path: str | None, labels: str | None, volume):
    """The label map of the run that wrote ``findings_path`` (its labels.nii.gz), to measure its structures on."""
    from viewer.io.image_io import ImageFileError, read_label_map
    from viewer.logic.label_source import labels_beside

    own = labels_beside(findings_path) if findings_path else None
    if own is None or (labels and os.path.abspath(own) == os.path.abspath(labels)):
        return None
    try:
        label_map = read_label_map(own)
    except (ImageFileError, OSError, ValueError):
        return None
    return label_map if label_map.geometry.shape_zyx == volume.geometry.shape_zyx and \
        label_map.geometry.is_close(volume.geometry) else None


def results_from_files(volume, label_layer, findings: Any, review: Mapping, findings_path: str | None = None,
                       labels: str | None = None) -> tuple[list, list]:
    """The AI results of ``radview-cli export report`` and the plain segmentations, ``(results, segmentations)``.

    The label layer is its own result, with its own provenance (``viewer.logic.label_source``: the findings.json
    beside it, or its SEG) — unless that is the same run as ``findings``, which then is one result with it.
    Findings of another run are another result, named by their own model; their structures are measured on their
    own run's label map when it lies beside them.
    """
    series_uid = str(volume.meta.get("series_uid", ""))
    prov = label_layer.meta.get("provenance") if label_layer is not None else None
    prov_dict = prov.as_dict() if hasattr(prov, "as_dict") else dict(prov or {})
    results, segmentations = [], []
    joined = bool(findings) and same_run(prov_dict, findings.get("provenance"))
    if label_layer is not None and prov is None:
        segmentations.append((label_layer.name, [(label_layer.label_name(k), v)
                                                 for k, v in sorted(label_layer.volumes_ml.items())]))
    elif label_layer is not None and not joined:
        record = ai_record(label_layer.name, prov_dict, [], label_layer.meta.get("structures", ()), review,
                           series_uid, [label_layer.meta])
        record.label_map = label_layer.label_map
        results.append(record)
    if findings:
        record = ai_result_from_findings(findings, name=label_layer.name if joined else "", review=review,
                                         series_uid=series_uid)
        record.label_map = label_layer.label_map if joined else (
            _own_label_map(findings_path, labels, volume) if record.structures else None)
        results.append(record)
    return results, segmentations
