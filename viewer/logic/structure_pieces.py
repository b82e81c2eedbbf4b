"""Structures that are sets of separate pieces, measured piece by piece. Qt-free.

A model's "structure" is everything of one label: for a nodule model, the union of every candidate it found.
Its longest diameter then runs from one candidate to another across the chest (254.9 mm for six nodules of the
demo) — no structure of that size exists. A structure of several face-connected pieces (6-neighbour
components, as ``ai.features`` counts them) whose union measures longer than its largest piece is reported per
piece: "nodule: 6 pieces, largest 32.0 mm". One whole organ with a few specks beside it (a lung mask) keeps its
own diameter: the specks do not lengthen it.

The pieces come from the label map the structure was measured on; without it, from the result's per-component
records (``component`` ≥ 1), else from the result's detections of that kind (each with its own diameter).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

#: the pieces measured one by one (largest first); the rest are counted
MAX_PIECES = 20
#: a union this much (mm) longer than its largest piece is a set of pieces, not one object
TOLERANCE_MM = 1.0


@dataclass(frozen=True)
class Pieces:
    count: int
    diameters_3d: tuple[float, ...]  # of the pieces measured, longest first
    axial: tuple[float, ...]  # their axial diameters, same order
    source: str = "label map"  # "label map" | "components" | "detections"

    @property
    def largest_3d(self) -> float:
        return max(self.diameters_3d, default=0.0)

    @property
    def largest_axial(self) -> float:
        return max(self.axial, default=0.0)

    def text(self, name: str) -> str:
        """``nodule: 6 pieces, largest 32.0 mm (each 32.0, 21.9, … mm)``."""
        each = ", ".join(f"{d:.1f}" for d in self.diameters_3d[:8]) + (", …" if len(self.diameters_3d) > 8 or
                                                                      self.count > len(self.diameters_3d) else "")
        what = {"detections": f"{self.count} detections"}.get(self.source, f"{self.count} pieces")
        return f"{name}: {what}, largest {self.largest_3d:.1f} mm (3D Ø of each: {each} mm)"


def _is_set(whole_3d, largest: float) -> bool:
    try:
        whole = float(whole_3d)
    except (TypeError, ValueError):
        return True  # nothing recorded for the whole: the pieces are what there is
    return not np.isfinite(whole) or whole > largest + TOLERANCE_MM


def label_pieces(label_map, label: int, whole_3d=None) -> Pieces | None:
    """The pieces of ``label`` in ``label_map`` when they are a set (see the module notes), else None."""
    from scipy import ndimage

    from ai.features import diameters_mm, slice_axis

    mask = np.asarray(label_map.array) == int(label)
    box = ndimage.find_objects(mask.astype(np.uint8))
    if not box or box[0] is None:
        return None
    components, count = ndimage.label(mask[box[0]])  # face-connected, as ai.features counts them
    if count < 2:
        return None
    sizes = np.bincount(components.reshape(-1))[1:]
    boxes = ndimage.find_objects(components)
    spacing, s_axis = label_map.geometry.spacing_zyx, slice_axis(label_map.geometry)
    measured = []
    for n in np.argsort(-sizes, kind="stable")[:MAX_PIECES]:
        piece = components[boxes[n]] == n + 1
        measured.append(diameters_mm(piece, spacing, s_axis))
    measured.sort(key=lambda d: -d[1])
    pieces = Pieces(int(count), tuple(d for _a, d in measured), tuple(a for a, _d in measured))
    return pieces if _is_set(whole_3d, pieces.largest_3d) else None


def component_pieces(structure: Mapping, structures: Iterable[Mapping]) -> Pieces | None:
    """The pieces of a whole-label record from the same result's per-component records, when there are some."""
    parts = [s for s in structures if int(s.get("component") or 0) > 0 and s.get("label") == structure.get("label")]
    if len(parts) < 2:
        return None
    parts.sort(key=lambda s: -float(s.get("diameter_3d_mm") or 0.0))
    pieces = Pieces(len(parts), tuple(float(s.get("diameter_3d_mm") or 0.0) for s in parts),
                    tuple(float(s.get("axial_diameter_mm") or 0.0) for s in parts), "components")
    return pieces if _is_set(structure.get("diameter_3d_mm"), pieces.largest_3d) else None


def _related(structure_name: str, detection: Mapping) -> bool:
    name = str(structure_name or "").lower().replace("_", " ").strip()
    label = str(detection.get("label") or "").lower().replace("_", " ").strip()
    return bool(name) and bool(label) and (name in label or label in name)


def detection_pieces(structure: Mapping, detections: Iterable[Mapping]) -> Pieces | None:
    """The pieces of a structure from the result's detections of that kind (e.g. "nodule candidate" for the
    "nodule" structure), each with its own measured diameter, when there are two or more."""
    found = [d for d in detections if _related(structure.get("name", ""), d)]
    if len(found) < 2:
        return None

    def diameter(det, key):
        features = det.get("features") or {}
        value = features.get(key) if isinstance(features, Mapping) else None
        return float(value if value is not None else det.get("diameter_mm") or 0.0)

    found.sort(key=lambda d: -diameter(d, "diameter_3d_mm"))
    pieces = Pieces(len(found), tuple(diameter(d, "diameter_3d_mm") for d in found),
                    tuple(diameter(d, "axial_diameter_mm") for d in found), "detections")
    return pieces if _is_set(structure.get("diameter_3d_mm"), pieces.largest_3d) else None


def structure_pieces(structures: list[Mapping], detections: list[Mapping], label_map=None) -> dict[int, Pieces]:
    """``{index in structures: Pieces}`` for each whole-label structure that is a set of pieces."""
    out: dict[int, Pieces] = {}
    for j, s in enumerate(structures):
        if int(s.get("component") or 0) != 0:
            continue
        pieces = component_pieces(s, structures)
        if pieces is None and label_map is not None and s.get("label") is not None:
            try:
                pieces = label_pieces(label_map, int(s["label"]), s.get("diameter_3d_mm"))
            except (TypeError, ValueError):
                pieces = None
        if pieces is None and label_map is None:
            pieces = detection_pieces(s, detections)
        if pieces is not None:
            out[j] = pieces
    return out
