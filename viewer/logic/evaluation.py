"""Agreement of a result with a reference, without Qt: shared by ``radview-cli ai eval`` and the GUI's
reference comparison (``viewer.qt.panels.metrics_panel``).

Label maps must lie on one voxel grid: shape, spacing and origin within 0.01 mm, direction within 1e-4;
:func:`grid_differences` names what differs. Label names come from a ``labels.json`` (or ``<stem>.json``)
beside either file (the reference's win), then an explicit label-names file. Findings are radview's
``findings.json`` (``detections``, each with ``center_lps_mm``, ``diameter_mm`` and ``score``), or a list of
such entries such as the demo's ``truth/nodules.json`` (no ``score``: 1.0); see ``ai.metrics.detection``.

Bad input raises :class:`EvaluationError` with a one-line message; each function takes the words that
name its inputs in that message (``what``), so that a caller can say ``--pred`` where the GUI would say
"the reference".
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np

NOT_VALIDATION = "These are agreement figures against the given reference, not a clinical validation."
SPACING_TOL_MM = 0.01
ORIGIN_TOL_MM = 0.01
DIRECTION_TOL = 1e-4


class EvaluationError(ValueError):
    """An input of an evaluation is missing, unreadable or does not fit the other: a one-line message."""


def require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise EvaluationError(f"{what} {path}: no such file")


def _fmt(values, unit: str = "") -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")" + unit


def grid_differences(a, b) -> list[str]:
    """What differs between two ``Geometry`` grids (pred ``a`` vs ref ``b``), in words; empty when they match."""
    import numpy as np

    out = []
    if a.shape_zyx != b.shape_zyx:
        out.append(f"shape (z, y, x) {'×'.join(map(str, a.shape_zyx))} vs {'×'.join(map(str, b.shape_zyx))}")
    if np.max(np.abs(np.subtract(a.spacing_zyx, b.spacing_zyx))) > SPACING_TOL_MM:
        out.append(f"spacing (z, y, x) {_fmt(a.spacing_zyx)} vs {_fmt(b.spacing_zyx, ' mm')}")
    if np.max(np.abs(np.subtract(a.origin_lps, b.origin_lps))) > ORIGIN_TOL_MM:
        out.append(f"origin (LPS) {_fmt(np.round(a.origin_lps, 3))} vs {_fmt(np.round(b.origin_lps, 3), ' mm')}")
    if np.max(np.abs(np.subtract(a.direction, b.direction))) > DIRECTION_TOL:
        flat = lambda d: _fmt(np.round(np.ravel(d), 4))  # noqa: E731
        out.append(f"direction {flat(a.direction)} vs {flat(b.direction)}")
    return out


def read_label_maps(pred_path: str, ref_path: str, what: tuple[str, str] = ("prediction", "reference")):
    """``(pred, ref)`` label maps read from the files, refused unless they lie on one voxel grid."""
    from viewer.io.image_io import ImageFileError, read_label_map

    maps = []
    for name, path in zip(what, (pred_path, ref_path)):
        require_file(path, name)
        try:
            maps.append(read_label_map(path, labels={}))
        except ImageFileError as exc:
            raise EvaluationError(str(exc)) from exc
    pred, ref = maps
    diffs = grid_differences(pred.geometry, ref.geometry)
    if diffs:
        raise EvaluationError(f"the label maps lie on different voxel grids: {'; '.join(diffs)} (pred vs ref); "
                              f"resample the prediction onto the reference's grid first")
    return pred, ref


def label_names(paths, names_file: str | None = None, what: str = "label names") -> dict[int, str]:
    """Label names from the ``labels.json`` beside each of ``paths`` (later ones win), then ``names_file``
    (a JSON object ``{"1": "body", ...}``, or one with such a ``labels`` object)."""
    from radview_base.label_table import read_label_names

    names: dict[int, str] = {}
    for path in paths:
        if path:
            names.update(read_label_names(path))
    if names_file:
        require_file(names_file, what)
        try:
            with open(names_file, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict) and isinstance(data.get("labels"), dict):
                data = data["labels"]
            names.update({int(k): str(v) for k, v in data.items()})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise EvaluationError(f'{what} {names_file}: not a JSON object of label names ({{"1": "body"}}): '
                                  f"{exc}") from exc
    return names


def load_findings(path: str, what: str = "findings") -> list[dict]:
    """The detections of a findings.json, or the entries of a list (nodules.json), checked."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{what} {path}: not readable JSON ({exc})") from exc
    entries = data.get("detections") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise EvaluationError(f"{what} {path}: expected findings.json (with 'detections') or a list of nodules")
    out = []
    for i, e in enumerate(entries):
        try:
            centre = [float(v) for v in e["center_lps_mm"]]
            if len(centre) != 3 or not all(math.isfinite(v) for v in centre):
                raise ValueError("center_lps_mm is not three finite numbers")
            out.append({"center_lps_mm": centre, "diameter_mm": float(e.get("diameter_mm", 0.0)),
                        "score": float(e.get("score", 1.0))})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EvaluationError(f"{what} {path}: entry {i + 1} is not a finding with center_lps_mm and "
                                  f"diameter_mm ({exc})") from exc
    return out


def segmentation_agreement(pred, ref, names: dict[int, str], pred_path: str, ref_path: str) -> dict:
    """Per-label metrics (labels present in either map) of ``pred`` against ``ref`` (label maps on one grid),
    as the ``pred``, ``ref``, ``grid`` and ``labels`` entries of an evaluation result."""
    from ai.metrics import segmentation_metrics

    metrics = segmentation_metrics(pred.array, ref.array, ref.geometry.spacing_zyx)  # labels present in either
    metrics = [dataclasses.replace(m, name=names.get(m.label, m.name)) for m in metrics]
    return {"pred": os.path.abspath(pred_path), "ref": os.path.abspath(ref_path),
            "grid": {"shape_zyx": list(ref.geometry.shape_zyx), "spacing_zyx": list(ref.geometry.spacing_zyx)},
            "labels": [m.as_dict() for m in metrics]}


def detection_agreement(preds: list[dict], refs: list[dict], min_score: float, pred_path: str,
                        ref_path: str) -> dict:
    """Precision, recall, F1 (detections scoring at least ``min_score``) and FROC of ``preds`` against ``refs``."""
    from ai.metrics import detection_metrics, froc

    m = detection_metrics(preds, refs, min_score=min_score)
    f = froc([(preds, refs)])
    return {"pred_findings": os.path.abspath(pred_path), "ref_findings": os.path.abspath(ref_path),
            **m.as_dict(), "froc": f.as_dict()}


_DEFAULT_NAME = re.compile(r"^label \d+$")


# --- an AI label layer against a reference layer (the GUI's comparison panel) --------------------------------------
@dataclass(frozen=True)
class LabelPairing:
    pairs: tuple[tuple[int, int, str], ...]  # (AI id, reference id, name shown)
    by_name: bool
    ai_only: tuple[str, ...] = ()  # AI structures with no reference counterpart
    ref_only: tuple[str, ...] = ()  # reference structures with no AI counterpart


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _real_names(names: dict[int, str], ids) -> dict[int, str]:
    return {i: names[i] for i in sorted(ids) if i > 0 and names.get(i, "").strip()
            and not _DEFAULT_NAME.match(names[i].strip())}


def pair_labels(ai_names: dict[int, str], ai_present, ref_names: dict[int, str], ref_present) -> LabelPairing:
    """By name when both sides name their labels and share a name; else by id over the labels present."""
    ai_named = _real_names(ai_names, set(ai_names) | set(ai_present))
    ref_named = _real_names(ref_names, set(ref_names) | set(ref_present))
    if {_key(n) for n in ai_named.values()} & {_key(n) for n in ref_named.values()}:
        pairs, ai_only, used = [], [], set()
        for ai_id, name in ai_named.items():
            ref_id = next((r for r, n in ref_named.items() if _key(n) == _key(name)), None)
            if ref_id is None:
                ai_only.append(name)
            else:
                pairs.append((ai_id, ref_id, name))
                used.add(ref_id)
        ai_only += [f"label {i}" for i in sorted(ai_present) if i > 0 and i not in ai_named]
        ref_only = [n for r, n in ref_named.items() if r not in used]
        return LabelPairing(tuple(pairs), True, tuple(ai_only), tuple(ref_only))
    ids = sorted(i for i in set(ai_present) | set(ref_present) if i > 0)
    return LabelPairing(tuple((i, i, ai_names.get(i) or ref_names.get(i) or f"label {i}") for i in ids), False)


def remapped(array: np.ndarray, pairs, slab: int = 8) -> np.ndarray:
    """The AI array with each paired AI id replaced by its reference id (others 0), a few slices at a time."""
    lut = np.zeros(max(int(array.max(initial=0)), *(a for a, _, _ in pairs)) + 1, np.uint16)
    for ai_id, ref_id, _ in pairs:
        lut[ai_id] = ref_id
    out = np.empty(array.shape, np.uint16)
    for z in range(0, array.shape[0], slab):
        np.take(lut, array[z:z + slab], out=out[z:z + slab])
    return out


def compare_layers(ai_layer, reference, progress=None):
    """``(pairing, [LabelMetrics])`` of ``ai_layer`` against ``reference`` (both on one grid). Slow: off the GUI."""
    from ai.metrics import segmentation_metrics

    pairing = pair_labels(ai_layer.label_map.labels, ai_layer.volumes_ml, reference.label_map.labels,
                          reference.volumes_ml)
    if not pairing.pairs:
        return pairing, []
    identity = all(a == r for a, r, _ in pairing.pairs) and not pairing.by_name
    pred = ai_layer.label_map.array if identity else remapped(ai_layer.label_map.array, pairing.pairs)
    names = {r: name for _, r, name in pairing.pairs}
    rows = segmentation_metrics(pred, reference.label_map.array, reference.geometry.spacing_zyx, names,
                                labels=sorted(names), progress=progress)
    return pairing, rows
