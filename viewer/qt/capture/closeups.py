"""The report's close-ups: the axial slice of each AI finding, in a window suited to it, labels as outlines.

A close-up is a square of the slice through the finding's centre (four times its diameter, 40-120 mm), in the
lung window for a lung finding (:func:`labels_at` looks for a lung label under it and around it: a nodule is a
hole in a lung mask) and the key images' window otherwise (``viewer.logic.report_findings``), its marker drawn.
The label layers are drawn as thin outlines on the pixel boundaries, in each label's colour, at the close-up's
own resolution: the image under them stays visible (a fill would hide it: a 40 mm crop inside a
lung label is all lung colour). Which close-ups the page has room for is the painter's business; this module
draws up to :data:`~viewer.logic.report_findings.MAX_FINDING_IMAGES` and returns every finding in order, so the
ones not drawn or not placed can be named.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QLineF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen

from viewer.core.slicing import SlicePlane
from viewer.logic.report_content import detection_markers, finding_caption, window_text
from viewer.logic.report_findings import (
    MAX_FINDING_IMAGES,
    FindingRef,
    closeup_window,
    is_lung_finding,
    ordered_findings,
)


@dataclass
class KeyImage:
    image: QImage
    caption: str
    name: str = ""  # a close-up: its finding ("N3")


def crop_mm(detection) -> float:
    return float(np.clip(max(float(detection.get("diameter_mm") or 10.0) * 4.0, 40.0), 40.0, 120.0))


def labels_at(layers, centre_lps, radius_mm: float = 0.0) -> list[str]:
    """The names of the labels of the visible label layers under ``centre_lps`` or within ``radius_mm`` of it (a
    box, in voxels of each layer's grid): a nodule is a hole in a lung mask, the lung lies around it."""
    names = []
    for layer in layers:
        if not getattr(layer, "visible", True):
            continue
        g = layer.label_map.geometry
        centre = np.rint(g.world_to_index(np.asarray(centre_lps, dtype=float))).astype(int)
        reach = np.ceil(float(radius_mm) / np.asarray(g.spacing_zyx, dtype=float)).astype(int)
        lo, hi = np.maximum(centre - reach, 0), np.minimum(centre + reach + 1, np.asarray(g.shape_zyx))
        if np.any(lo >= hi):
            continue
        box = layer.label_map.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        for value in (int(v) for v in np.unique(box) if v):
            if value not in layer.hidden_labels:
                names.append(layer.label_name(value))
    return names


def _edges(mask: np.ndarray):
    """Boundary segments of a boolean (rows, cols) mask in pixel-corner units: ``[(x0, y0, x1, y1), ...]``."""
    out = []
    rows, cols = np.nonzero(mask[:, 1:] != mask[:, :-1])  # between column c and c + 1
    out += [(c + 1, r, c + 1, r + 1) for r, c in zip(rows, cols)]
    rows, cols = np.nonzero(mask[1:, :] != mask[:-1, :])  # between row r and r + 1
    out += [(c, r + 1, c + 1, r + 1) for r, c in zip(rows, cols)]
    return out


def draw_outlines(image: QImage, plane: SlicePlane, k: int, centre_lps, crop: float, layers) -> None:
    """The labels of ``layers`` on slice ``k`` as outlines over ``image``, a ``crop`` mm square around
    ``centre_lps`` drawn as ``viewer.qt.views.slice_image.render_slice`` draws it."""
    rows, cols = plane.shape
    row_mm, col_mm = plane.pixel_spacing
    _k, r, c = plane.from_world(centre_lps)
    left, top = (c + 0.5) * col_mm - crop / 2, (r + 0.5) * row_mm - crop / 2
    w, h = image.width(), image.height()
    px_per_mm = min(w / crop, h / crop)
    ox, oy = (w - crop * px_per_mm) / 2, (h - crop * px_per_mm) / 2
    j0, j1 = max(int(left / col_mm) - 1, 0), min(int((left + crop) / col_mm) + 2, cols)
    i0, i1 = max(int(top / row_mm) - 1, 0), min(int((top + crop) / row_mm) + 2, rows)
    if j0 >= j1 or i0 >= i1:
        return
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setClipRect(int(ox), int(oy), int(crop * px_per_mm), int(crop * px_per_mm))
        for layer in layers:
            if not getattr(layer, "visible", True):
                continue
            values = plane.extract(layer.label_map.array, k)[i0:i1, j0:j1]
            for label in (int(v) for v in np.unique(values) if v):
                if label in layer.hidden_labels:
                    continue
                pen = QPen(QColor(*layer.colors.get(label, (255, 255, 255))))
                pen.setWidthF(max(1.5, w / 180))
                pen.setCapStyle(Qt.FlatCap)
                painter.setPen(pen)
                painter.drawLines([QLineF(ox + ((j0 + x0) * col_mm - left) * px_per_mm,
                                          oy + ((i0 + y0) * row_mm - top) * px_per_mm,
                                          ox + ((j0 + x1) * col_mm - left) * px_per_mm,
                                          oy + ((i0 + y1) * row_mm - top) * px_per_mm)
                                   for x0, y0, x1, y1 in _edges(values == label)])
    finally:
        painter.end()


def render_closeup(volume, ref: FindingRef, layers, markers, window: tuple[float, float, str],
                   px: int = 520) -> KeyImage:
    """The close-up of one finding in ``window`` (width, level, name), labels outlined, markers drawn."""
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    det = ref.detection
    crop = crop_mm(det)
    req = SliceRequest("axial", center_lps=ref.marker.center_lps, crop_mm=crop, size=(px, px), width=window[0],
                       level=window[1], letters=False, font_px=px // 20)
    image, k = render_slice(volume, req, [], markers)
    plane = SlicePlane.for_view("axial", volume.geometry)
    draw_outlines(image, plane, k, ref.marker.center_lps, crop, layers)
    caption = f"{finding_caption(ref.index, det, k, plane.n_slices)}; {window_text(*window)}"
    return KeyImage(image, caption, ref.name)


def finding_images(volume, layers, results, width: float, level: float, window_name: str = "",
                   px: int = 520) -> tuple[list[KeyImage], list[FindingRef]]:
    """Close-ups of the findings, highest score first (at most ``MAX_FINDING_IMAGES``), and every finding in
    that order (the close-ups are the first of them)."""
    found = detection_markers(results)
    markers = [m for m, _r, _i in found]
    refs = ordered_findings(found)
    out = []
    for ref in refs[:MAX_FINDING_IMAGES]:
        around = float(ref.detection.get("diameter_mm") or 10.0) / 2.0 + 5.0  # the finding and a margin
        lung = is_lung_finding(ref.result.provenance, ref.detection, labels_at(layers, ref.marker.center_lps, around))
        out.append(render_closeup(volume, ref, layers, markers, closeup_window(lung, (width, level, window_name)),
                                  px))
    return out, refs
