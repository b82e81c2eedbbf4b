"""Between the viewer and the AI engine: a ``Volume`` becomes an ``InferenceRequest``, a result becomes layers.

A classification model's result (``result.classification``) is no layer: it becomes a
:class:`ClassifiedSeries` that the session holds (``Session.add_classification``) for the series it was made
on — a volume, or one image of a 2D series (``volume_from_image`` makes that image a one-slice volume, as
``radview-cli ai run`` loads a radiograph).

Qt-free and torch-free: imports ``ai.api`` only (never ``ai.runners``). A result's
label map must lie on the volume's voxel grid; a mismatch raises
``GeometryMismatchError`` (never shown shifted). Every layer made here carries
the result's provenance in ``layer.meta["provenance"]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ai.api import CLASSICAL_NOTE, ClassificationResult, Detection, InferenceRequest, InferenceResult, Provenance
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
        options=_with_display(options, meta),
        **{k: str(v) for k, v in described.items() if v},
    )


def volume_from_image(series, index: int = 0, frame: int = 0) -> Volume:
    """Image ``index`` (its frame ``frame``) of a 2D series as a one-slice ``(1, rows, cols)`` volume of its stored
    values, on a grid of its pixel spacing where calibrated (else 1 mm) — what the AI runs on for a 2D series.
    A colour image stays colour (``is_color``: the AI refuses it)."""
    from radview_base.geometry import Geometry

    image = series.images[int(index)]
    pixels = np.asarray(image.frames[int(frame)])
    spacing = getattr(image.display.calibration, "spacing_mm", None) or (1.0, 1.0)
    rows, cols = pixels.shape[:2]
    geometry = Geometry(shape_zyx=(1, rows, cols), spacing_zyx=(1.0, float(spacing[0]), float(spacing[1])),
                        origin_lps=(0.0, 0.0, 0.0), direction=np.eye(3))
    meta = dict(series.meta)
    meta.update(modality=image.display.modality or meta.get("modality", ""),
                sop_instance_uid=image.display.sop_instance_uid, image_index=int(index), frame=int(frame),
                planar=True)
    meta["display"] = display_for_model(image)
    if len(series.images) > 1 or image.n_frames > 1:
        meta["description"] = (f"{meta.get('description') or series.kind}: image {int(index) + 1} of "
                               f"{len(series.images)}" + (f", frame {int(frame) + 1}" if image.n_frames > 1 else ""))
    return Volume(pixels[None], geometry, meta)


def display_for_model(image) -> dict:
    """How a radiograph is shown, for a model that takes display values (TorchXRayVision's): ``{"window":
    [centre, width] in stored values, or absent, "invert": bool}``.  The window is the file's first VOI window
    (in rescaled units, brought back to stored values through the file's RescaleSlope/Intercept); ``invert`` is
    MONOCHROME1, undone by a Presentation LUT Shape INVERSE.  Nothing the file does not say is made up: without
    a window the runner uses the image's own range, and says so."""
    d = image.display
    invert = (d.photometric == "MONOCHROME1") != (d.presentation_lut_shape == "INVERSE")
    out: dict = {"invert": bool(invert)}
    voi = next((v for v in d.voi_presets if v.center is not None and v.width), None)
    if voi is not None and not d.has_modality_lut_sequence:
        header = image.header
        try:
            slope = float(getattr(header, "RescaleSlope", 1.0) or 1.0)
            intercept = float(getattr(header, "RescaleIntercept", 0.0) or 0.0)
        except (TypeError, ValueError):
            slope, intercept = 1.0, 0.0
        if slope != 0:
            out["window"] = [(float(voi.center) - intercept) / slope, abs(float(voi.width) / slope)]
    return out


def _with_display(options: Mapping[str, Any] | None, meta: Mapping) -> dict:
    out = dict(options or {})
    if "display" in meta and "display" not in out:
        out["display"] = dict(meta["display"])
    return out


# --- results ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ClassifiedSeries:
    """A classification model's answer for the open series (a volume, or one image of a 2D series)."""

    provenance: Provenance
    classification: ClassificationResult
    series_uid: str = ""
    sop_instance_uid: str = ""  # the classified image of a 2D series ("" for a volume)
    messages: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"AI: {self.provenance.model_name or self.provenance.model_id}"


def classified_from_result(result: InferenceResult, meta: Mapping | None = None) -> ClassifiedSeries | None:
    """``result``'s classification for the series ``meta`` describes (None when the result has none)."""
    if result.classification is None:
        return None
    meta = meta or {}
    return ClassifiedSeries(result.provenance, result.classification, str(meta.get("series_uid") or ""),
                            str(meta.get("sop_instance_uid") or ""), tuple(result.messages))


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
    if (volume.meta or {}).get("planar") and getattr(manifest, "task", "") != "classification":
        return "a 2D image takes classification models only"
    wanted = getattr(manifest, "modalities", None)
    if wanted is None:  # not a ModelManifest: its modality as given
        wanted = getattr(manifest, "modality", "") or ""
        wanted = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
    wanted_set = {str(m).upper() for m in wanted if m}
    if not wanted_set or wanted_set & {"ANY", "*"}:
        return ""
    have = (volume.modality or "").upper()
    if not have or have in wanted_set:  # a NIfTI/NRRD file does not say: the user decides
        return ""
    return f"needs {'/'.join(sorted(wanted_set))}, this series is {have}"
