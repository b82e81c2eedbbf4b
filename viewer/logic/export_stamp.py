"""What an exported picture says about the AI content in it (``shared/CONVENTIONS.md``, Exports), without Qt.

A screenshot with an AI label or an AI finding in view carries the review state of each AI result shown —
"AI result, not reviewed — not a diagnosis" until a user reviewed it, then "reviewed by <user> at <time> — not
a diagnosis" (:func:`viewer.core.review.header_text`) — and a legend of the labels it shows (colour and name).
A picture without AI content carries neither. :func:`export_stamp` says which; ``viewer.qt.capture.stamp``
paints it on its own band beside the image.

"In view" is what the picture draws: the labels present on the slices shown (every label present for a 3D
view, which draws them all as surfaces) and the markers that reach the slices shown, of the layers that are
visible while overlays are on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.core import review
from viewer.core.ai_bridge import DETECTION_COLOR, NOT_REVIEWED


@dataclass(frozen=True)
class LegendEntry:
    color: tuple[int, int, int]
    name: str
    kind: str = "label"  # "label": a colour swatch; "marker": a ring


@dataclass(frozen=True)
class ExportStamp:
    lines: tuple[str, ...] = ()  # one per AI result in view: its review state, model and version
    legend: tuple[LegendEntry, ...] = ()
    reviewed: tuple[bool, ...] = ()  # per line: the result is reviewed

    @property
    def empty(self) -> bool:
        return not self.lines


def is_ai_layer(layer) -> bool:
    meta = getattr(layer, "meta", None) or {}
    return meta.get("provenance") is not None or bool(meta.get("ai"))


# --- what a picture shows --------------------------------------------------------------------------------
def labels_on_slice(layer, plane, k: int) -> list[int]:
    """The labels of ``layer`` drawn on slice ``k`` of ``plane`` (hidden ones left out), in label order."""
    values = plane.extract(layer.label_map.array, k)
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        present = np.flatnonzero(np.bincount(values.reshape(-1)))
    else:
        present = np.unique(values)
    return [int(v) for v in present if v != 0 and int(v) not in layer.hidden_labels]


def labels_present(layer) -> list[int]:
    """Every label of ``layer`` with voxels (what a 3D view draws), hidden ones left out."""
    return sorted(int(v) for v, n in layer.voxel_counts.items() if n > 0 and v != 0 and v not in layer.hidden_labels)


def marker_on_slice(marker, plane, k: int) -> bool:
    """The marker reaches slice ``k`` (the reading views' rule: within half its size along the normal)."""
    mk, _r, _c = plane.from_world(marker.center_lps)
    right, down = plane.screen_vectors()
    half_depth = float(np.abs(np.cross(right, down)) @ np.asarray(marker.size_mm, dtype=float)) / 2.0
    return abs(mk - k) * plane.slice_spacing <= half_depth + 1e-6


def _in_view(session, shown, everything: bool) -> tuple[dict[int, list[int]], set[int]]:
    """``{id(label layer): labels shown}`` and the ids of the marker layers with a marker shown."""
    labels: dict[int, list[int]] = {}
    markers: set[int] = set()
    if not session.overlays_visible:
        return labels, markers
    for layer in session.layers:
        if not layer.visible:
            continue
        if hasattr(layer, "label_map"):
            found = set(labels_present(layer)) if everything else set()
            for plane, k in shown:
                found.update(labels_on_slice(layer, plane, k))
            if found:
                labels[id(layer)] = sorted(found)
        elif any(marker_on_slice(m, plane, k) for m in layer.markers for plane, k in shown):
            markers.add(id(layer))
    return labels, markers


# --- what it says ------------------------------------------------------------------------------------------
def _model_words(provenance) -> str:
    get = provenance.get if isinstance(provenance, dict) else lambda key, default="": getattr(provenance, key,
                                                                                                default)
    name = str(get("model_name", "") or get("model_id", "") or "")
    version = str(get("model_version", "") or "")
    return (name + (f", version {version}" if version else "")).strip(", ")


def result_state_text(session, result) -> tuple[str, bool]:
    """The line of one AI result: its review state (the study's review table; else its layers' meta), the model
    and its version; and whether it is reviewed."""
    status = review.result_status(session.annotations.review, result)
    text, reviewed = status.header, status.state == "reviewed"
    if status.state == "not reviewed":
        meta = next((layer.meta for layer in result.layers if layer.meta.get("reviewed_by")), None)
        if meta is not None:
            text, reviewed = (f"reviewed by {meta['reviewed_by']} at {meta.get('reviewed_at') or '?'} — "
                              f"{review.DIAGNOSIS_NOTE}", True)
    words = _model_words(result.provenance)
    return (f"{text} ({words})" if words else text), reviewed


def export_stamp(session, shown=(), everything: bool = False) -> ExportStamp:
    """The stamp of a picture of ``session`` showing slices ``shown`` (``[(SlicePlane, k), ...]``) and, with
    ``everything``, a 3D view (every label present). Empty when no AI label or finding is in view."""
    if session is None or getattr(session, "volume", None) is None:
        return ExportStamp()
    shown = list(shown)
    labels, markers = _in_view(session, shown, everything)
    in_view = {*labels, *markers}
    ai_layers = [layer for layer in session.layers if id(layer) in in_view and is_ai_layer(layer)]
    if not ai_layers:
        return ExportStamp()
    states: dict[str, bool] = {}  # line → reviewed, each line once
    grouped = set()
    for result in review.ai_results(session):
        if any(layer in ai_layers for layer in result.layers):
            text, done = result_state_text(session, result)
            states.setdefault(text, done)
            grouped.update(id(layer) for layer in result.layers)
    for layer in ai_layers:  # AI layers without a provenance object: their name, not reviewed
        if id(layer) not in grouped:
            states.setdefault(f"{NOT_REVIEWED} ({str(layer.name).removesuffix(' findings')})", False)
    legend = []
    for layer in session.layers:
        for label in labels.get(id(layer), ()):
            entry = LegendEntry(tuple(int(c) for c in layer.colors.get(label, (255, 255, 255))),
                                layer.label_name(label))
            if entry not in legend:
                legend.append(entry)
        if id(layer) in markers:
            color = layer.markers[0].color if layer.markers else DETECTION_COLOR
            legend.append(LegendEntry(tuple(int(c) for c in color),
                                      "AI findings" if is_ai_layer(layer) else str(layer.name), "marker"))
    return ExportStamp(tuple(states), tuple(legend), tuple(states.values()))
