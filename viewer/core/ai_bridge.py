"""Between the viewer and the AI engine: a ``Volume`` becomes an ``InferenceRequest``, a result becomes layers.

Qt-free and torch-free: imports ``ai.api`` only (never ``ai.runners``). A result's
label map must lie on the volume's voxel grid; a mismatch raises
``GeometryMismatchError`` (never shown shifted). Every layer made here carries
the result's provenance in ``layer.meta["provenance"]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ai.api import CLASSICAL_NOTE, Detection, InferenceRequest, InferenceResult, Provenance
from radview_base.geometry import Geometry, require_same_grid
from viewer.core.layers import LabelLayer, Marker, MarkerLayer
from viewer.io.volume import LabelMap, Volume

#: shown next to every AI result until a user reviews it
NOT_REVIEWED = "AI result, not reviewed — not a diagnosis"
DETECTION_COLOR = (255, 230, 0)  # yellow, the nodule colour of the label table


# --- grids --------------------------------------------------------------------------------
# AI requests and results carry the viewer's own ``Geometry`` (radview_base: the one grid class), so these are
# identities, kept as the named crossing points between a volume and a request/result.
# --- requests -------------------------------------------------------------------------------
def request_from_volume(volume: Volume, model_id: str, device: str = "auto",
                        options: Mapping[str, Any] | None = None) -> InferenceRequest:
    """The frozen job for ``model_id`` on ``volume`` (the array is shared, not copied)."""
    if volume.is_color:
        raise ValueError("AI models take a greyscale volume; this series is a colour image")
    meta = volume.meta or {}
    described = {"modality": meta.get("modality"), "series_uid": meta.get("series_uid"),
                 "series_description": meta.get("description")}
    return InferenceRequest(  # what the volume does not say keeps the request's default (modality "CT")
        array=volume.array,
        grid=volume.geometry,
        model_id=str(model_id),
        device=str(device or "auto"),
        options=dict(options or {}),
        **{k: str(v) for k, v in described.items() if v},
    )


# --- results ----------------------------------------------------------------------------------
def _display_name(result: InferenceResult, manifest=None) -> str:
    name = getattr(manifest, "name", "") or result.provenance.model_name or result.provenance.model_id
    return f"AI: {name}"


def _compact_labels(labels: np.ndarray) -> np.ndarray:
    """uint8 when the values fit (what the overlays and the legend count fastest), else uint16."""
    if labels.dtype in (np.uint8, np.uint16):
        return labels
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo < 0:
        raise ValueError(f"the model returned negative labels (min {lo})")
    if hi <= np.iinfo(np.uint8).max:
        return labels.astype(np.uint8)
    if hi <= np.iinfo(np.uint16).max:
        return labels.astype(np.uint16)
    raise ValueError(f"the model returned labels up to {hi}; at most 65535 are supported")


def detection_text(number: int, det: Detection) -> str:
    """Marker text, e.g. ``"N1 12 mm solid"`` (the view appends the score)."""
    prefix = "N" if det.label in ("nodule", "lung_nodule", "") else det.label[:1].upper() or "F"
    kind = f" {det.kind}" if det.kind else ""
    return f"{prefix}{number} {det.diameter_mm:.0f} mm{kind}"


def markers_from_detections(detections, color=DETECTION_COLOR) -> list[Marker]:
    out = []
    for n, det in enumerate(detections, start=1):
        d = max(float(det.diameter_mm), 1.0)
        out.append(Marker(tuple(det.center_lps), (d, d, d), "point", detection_text(n, det), float(det.score),
                          color))
    return out


def layers_from_result(result: InferenceResult, geometry: Geometry,
                       manifest=None) -> tuple[LabelLayer | None, MarkerLayer | None]:
    """The result as a label layer (None without a label map) and a marker layer (None without detections).

    The features of the segmented structures (``result.structures``) go with the label layer, in
    ``meta["structures"]`` (with the marker layer when there is no label map).
    ``geometry`` is the grid of the volume the result belongs to: a label map elsewhere raises
    ``GeometryMismatchError``. Counting the per-label volumes passes over every voxel, so call this off
    the GUI thread for large series.
    """
    name = _display_name(result, manifest)
    meta = {"provenance": result.provenance, "ai": True, "model_id": result.provenance.model_id,
            "messages": tuple(result.messages), "reviewed": False}
    label_layer = None
    if result.labels is not None:
        require_same_grid(geometry, result.grid, what=f"the label map of {name}")
        if tuple(result.labels.shape) != geometry.shape_zyx:  # the grid check above covers this; belt and braces
            raise ValueError(f"label array {result.labels.shape} is not on the volume's grid {geometry.shape_zyx}")
        names = dict(result.label_names) or {int(k): str(v) for k, v in (getattr(manifest, "labels", None)
                                                                           or {}).items()}
        label_map = LabelMap(_compact_labels(result.labels), geometry, names,
                             meta={"provenance": result.provenance})
        label_layer = LabelLayer(label_map, name=name, meta={**meta, "structures": tuple(result.structures)})
    marker_layer = None
    if result.detections:
        extra = {"structures": tuple(result.structures)} if label_layer is None and result.structures else {}
        marker_layer = MarkerLayer(markers_from_detections(result.detections), name=f"{name} findings",
                                   meta={**meta, "detections": tuple(result.detections), **extra})
    return label_layer, marker_layer


# --- words for the user ------------------------------------------------------------------------------
def method_in_plain_words(method: str) -> str:
    """A manifest's or provenance's ``method`` as a user reads it."""
    text = str(method or "").strip()
    key = text.lower()
    if not key:
        return "method not stated"
    if key in ("classical", "classic", "classical image analysis", "rule-based", "rules") or key == CLASSICAL_NOTE:
        return CLASSICAL_NOTE
    if key in ("network", "learned", "neural network", "torchscript", "deep learning", "cnn"):
        return "learned network"
    if key.startswith(("nnunet", "nn-unet", "totalsegmentator", "monai")):
        return f"learned network ({text})"
    return text


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def provenance_lines(prov: Provenance) -> list[str]:
    """Model id and version, method, device, run time, date and parameters, one item per line."""
    lines = [f"Model: {prov.model_name} ({prov.model_id}) version {prov.model_version}",
             f"Method: {method_in_plain_words(prov.method)}",
             f"Device: {prov.device}" + (f", {prov.precision}" if prov.precision else ""),
             f"Run time: {prov.run_time_s:.1f} s",
             f"Started: {prov.started_at}"]
    if prov.parameters:
        lines.append("Parameters:")
        lines += [f"  {k} = {_format_value(v)}" for k, v in sorted(prov.parameters.items(), key=lambda kv: str(kv[0]))]
    else:
        lines.append("Parameters: (defaults)")
    if prov.software:
        lines.append(f"Software: {prov.software}")
    lines.append(prov.note or NOT_REVIEWED)
    return lines


def provenance_text(prov: Provenance) -> str:
    return "\n".join(provenance_lines(prov))


def modality_mismatch(manifest, volume: Volume | None) -> str:
    """Why ``manifest``'s model cannot run on ``volume`` ("" when it can)."""
    if volume is None:
        return "no series is open"
    if volume.is_color:
        return "the series is a colour image"
    wanted = getattr(manifest, "modality", "") or ""
    wanted_set = {str(m).upper() for m in (wanted if isinstance(wanted, (list, tuple, set)) else [wanted]) if m}
    if not wanted_set or wanted_set & {"ANY", "*"}:
        return ""
    have = (volume.modality or "").upper()
    if not have or have in wanted_set:  # a NIfTI/NRRD file does not say: the user decides
        return ""
    return f"needs {'/'.join(sorted(wanted_set))}, this series is {have}"
