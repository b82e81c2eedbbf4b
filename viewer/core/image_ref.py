"""Measurements on 2D images (radiographs, ultrasound, cine frames): which image they were drawn on, and how
that image measures.

A volume's measurements live in patient coordinates (LPS mm). A 2D image has no such space: its measurements
are drawn in the image's own pixels and measured with the image's own calibration — PixelSpacing, or
ImagerPixelSpacing "at detector" (÷ ERMF where given), or an ultrasound region's deltas inside that region only,
else pixels. :class:`ImageRef` travels with the annotation (JSON ``"image"``), so the value's unit and its
label ("mm at detector", "px (no calibration)") reach the screen, screenshots, the report, the JSON and the SR
(which references the image's SOP instance and frame).

For such an annotation, ``Annotation.points_lps`` holds pixel coordinates ``(column, row, 0)`` (0-based pixel
centres); the JSON writes them as ``"points_image"`` (``[column, row]`` pairs) and no ``points_lps``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from viewer.io.planar_header import Calibration


@dataclass(frozen=True)
class ImageRef:
    sop_instance_uid: str
    frame: int = 1  # 1-based, as DICOM numbers frames
    instance_number: int | None = None
    sop_class_uid: str = ""
    calibration: Calibration = Calibration("none")

    @classmethod
    def of(cls, display, frame: int = 1) -> "ImageRef":
        """The reference to frame ``frame`` (1-based) of the image whose display attributes are ``display``."""
        return cls(display.sop_instance_uid, int(frame), display.instance_number, display.sop_class_uid,
                   display.calibration)

    def calibrated(self, points) -> bool:
        """The calibration holds for every point (``(n, 2+)`` column, row)."""
        return self.calibration.applies([(p[1], p[0]) for p in np.asarray(points, dtype=float)])

    def unit(self, points) -> str:
        return "mm" if self.calibrated(points) else "px"

    def label(self, points) -> str:
        """What the number means: "mm", "mm at detector", …; "px (no calibration)" / "px (outside the region)"."""
        if self.calibrated(points):
            return self.calibration.label
        if self.calibration.spacing_mm is not None:
            return "px (outside the calibrated region)"
        return "px (no calibration)"

    def scaled(self, points) -> np.ndarray:
        """Points as physical (mm) coordinates where calibrated, else as pixels: ``(n, 3)``."""
        p = np.asarray(points, dtype=float).reshape(-1, 3).copy()
        if self.calibrated(p):
            sy, sx = self.calibration.spacing_mm
            p[:, 0] *= sx
            p[:, 1] *= sy
        return p

    def as_dict(self) -> dict:
        cal = self.calibration
        return {"sop_instance_uid": self.sop_instance_uid, "frame": self.frame,
                "instance_number": self.instance_number, "sop_class_uid": self.sop_class_uid,
                "calibration": cal.source, "pixel_spacing_mm": list(cal.spacing_mm) if cal.spacing_mm else None,
                "region": list(cal.region) if cal.region else None, "magnification": cal.magnification}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ImageRef":
        if not isinstance(d, Mapping) or not isinstance(d.get("sop_instance_uid"), str):
            raise ValueError("image must be an object with a sop_instance_uid")
        spacing = d.get("pixel_spacing_mm")
        if spacing is not None:
            spacing = tuple(float(v) for v in spacing)
            if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
                raise ValueError("pixel_spacing_mm must be two positive numbers")
        region = d.get("region")
        region = tuple(int(v) for v in region) if region is not None else None
        if region is not None and len(region) != 4:
            raise ValueError("region must be four numbers")
        magnification = d.get("magnification")
        cal = Calibration(str(d.get("calibration") or "none"), spacing, region,
                          None if magnification is None else float(magnification))
        frame = int(d.get("frame", 1))
        if frame < 1:
            raise ValueError("frame numbers start at 1")
        number = d.get("instance_number")
        return cls(d["sop_instance_uid"], frame, None if number is None else int(number),
                   str(d.get("sop_class_uid") or ""), cal)


def polygon_area(points) -> float:
    """Area of a closed polygon from its (x, y) vertices (shoelace)."""
    p = np.asarray(points, dtype=float)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def image_values(image, frame: int, outline_xy) -> np.ndarray | None:
    """Modality values of the pixels of frame ``frame`` (1-based) whose centres lie inside ``outline_xy``."""
    from viewer.core.grayscale import modality_values

    if image is None or image.is_color or not 1 <= frame <= image.n_frames:
        return None
    rows, cols = image.shape
    xy = np.asarray(outline_xy, dtype=float)
    c0, c1 = max(0, int(np.floor(xy[:, 0].min()))), min(cols - 1, int(np.ceil(xy[:, 0].max())))
    r0, r1 = max(0, int(np.floor(xy[:, 1].min()))), min(rows - 1, int(np.ceil(xy[:, 1].max())))
    if c1 < c0 or r1 < r0:
        return None
    rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    inside = np.zeros(rr.shape, dtype=bool)
    pts = [tuple(p) for p in xy]
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        if y1 == y2:
            continue
        crosses = (y1 > rr) != (y2 > rr)
        inside ^= crosses & (cc < x1 + (rr - y1) * (x2 - x1) / (y2 - y1))
    if not inside.any():
        return None
    stored = image.frames[frame - 1][r0:r1 + 1, c0:c1 + 1][inside]
    return modality_values(stored, image.header)
