"""A label map file over a series, with what made it: AI output or a plain segmentation file. Qt-free.

Used by ``radview-cli screenshot --labels`` and ``radview-cli export report --labels``. A label map is AI
output when

* a ``findings.json`` with a provenance lies beside it — what ``radview-cli ai run`` writes into its output
  folder (``labels.nii.gz``, ``labels.json``, ``findings.json``; ``viewer/cli/ai.py``) — or
* it is a DICOM SEG whose segments name an automatic (or semi-automatic: AI, then edited) algorithm, as radview's
  own SEG writer does (``viewer.export.seg``: the model's name and version, and its run in AlgorithmParameters).

Its layer then carries the provenance (``meta["provenance"]``, an ``ai.api.Provenance``), ``meta["ai"]`` and the
structures the run measured, exactly as a layer made in the GUI (``viewer.core.ai_bridge``); anything else is a
plain segmentation file (its file name, no provenance).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

FINDINGS_NAME = "findings.json"
LABELS_NAME = "labels.nii.gz"
AUTOMATIC = ("AUTOMATIC", "SEMIAUTOMATIC")


def findings_beside(path: str) -> str | None:
    """The ``findings.json`` in the folder of ``path`` (a label map), or None."""
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), FINDINGS_NAME)
    return beside if os.path.isfile(beside) else None


def labels_beside(findings_path: str) -> str | None:
    """The ``labels.nii.gz`` of the same ``ai run`` as ``findings_path``, or None."""
    beside = os.path.join(os.path.dirname(os.path.abspath(findings_path)), LABELS_NAME)
    return beside if os.path.isfile(beside) else None


def read_findings(path: str | None) -> dict | None:
    """A findings.json as a dict (None for no path); ValueError when it is not readable JSON of an object."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a findings object")
    return doc


def provenance_object(data: Mapping | None):
    """A provenance dict (findings.json's) as ``ai.api.Provenance`` (what layers carry); None for none."""
    from ai.api import Provenance

    if not data:
        return None
    if isinstance(data, Provenance):
        return data
    d = dict(data)
    try:
        run_time = float(d.get("run_time_s") or 0.0)
    except (TypeError, ValueError):
        run_time = 0.0
    kwargs: dict[str, Any] = {k: str(d.get(k) or "") for k in ("model_id", "model_name", "model_version", "method",
                                                               "device", "precision", "started_at")}
    kwargs.update(run_time_s=run_time, parameters=dict(d.get("parameters") or {}), software=str(d.get("software")
                                                                                                 or ""))
    if d.get("note"):
        kwargs["note"] = str(d["note"])
    return Provenance(**kwargs)


def same_run(a: Mapping | None, b: Mapping | None) -> bool:
    """Two provenance dicts of the same run (model, version and start time)."""
    keys = ("model_id", "model_version", "started_at")
    return bool(a) and bool(b) and all(str(a.get(k, "")) == str(b.get(k, "")) for k in keys)


def seg_provenance(segments: Mapping[int, Mapping]) -> dict | None:
    """The provenance a SEG's segments record (radview writes the model's run into AlgorithmParameters), or None
    when no segment was made by an automatic algorithm."""
    info = next((s for s in segments.values() if str(s.get("algorithm_type", "")) in AUTOMATIC
                 and s.get("algorithm_name")), None)
    if info is None:
        return None
    params: dict[str, str] = {}
    for item in str(info.get("algorithm_parameters") or "").split(","):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip()] = value.strip()
    prov = {"model_name": str(info["algorithm_name"]), "model_version": str(info.get("algorithm_version") or ""),
            "model_id": params.pop("model_id", "") or str(info["algorithm_name"])}
    for key in ("device", "precision", "run_time_s", "started_at", "method", "software"):
        if key in params:
            prov[key] = params.pop(key)
    prov["parameters"] = {k.removeprefix("parameters."): v for k, v in params.items()}
    if info.get("algorithm_type") == "SEMIAUTOMATIC":
        prov["method"] = (prov.get("method") or "model") + ", then edited by a user"
    return prov


def load_label_layer(path: str, volume):
    """``path`` (NIfTI/NRRD/MetaImage, or a DICOM SEG) as a ``LabelLayer`` over ``volume``, with its provenance.

    A label map off the series' grid raises ``GeometryMismatchError``; a findings.json beside it that was made
    on another series, ValueError.
    """
    from radview_base.geometry import require_same_grid
    from viewer.core.layers import LabelLayer
    from viewer.io.image_io import read_label_map
    from viewer.io.seg_file import is_seg_file, read_seg

    findings = None
    if is_seg_file(path):
        label_map = read_seg(path, volume)
        prov = seg_provenance(label_map.meta.get("segments") or {})
    else:
        label_map = read_label_map(path)
        require_same_grid(volume.geometry, label_map.geometry, what=f"label map {os.path.basename(path)}")
        findings = read_findings(findings_beside(path))
        prov = (findings or {}).get("provenance") or None
        made_on = str(((findings or {}).get("input") or {}).get("series_uid") or "")
        series_uid = str((volume.meta or {}).get("series_uid") or "")
        if prov and made_on and series_uid and made_on != series_uid:
            raise ValueError(f"{findings_beside(path)} was made on series {made_on}, not on series {series_uid}")
    if not prov:
        return LabelLayer(label_map, name=os.path.basename(path))
    provenance = provenance_object(prov)
    name = f"AI: {provenance.model_name or provenance.model_id or os.path.basename(path)}"
    meta = {"provenance": provenance, "ai": True, "model_id": provenance.model_id, "reviewed": False,
            "structures": tuple((findings or {}).get("structures") or ()), "source": os.path.abspath(path)}
    return LabelLayer(label_map, name=name, meta=meta)
