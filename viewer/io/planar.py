"""2D images beside volumes: radiographs, mammograms, ultrasound, nuclear medicine, cine.

A :class:`PlanarSeries` is a list of :class:`PlanarImage` in display order (InstanceNumber, then acquisition
time); each image keeps its own size, calibration, orientation letters and frames (a cine loop is one image with
many frames). Pixels stay as stored (the Modality LUT, VOI and presentation are applied at display time by
:mod:`viewer.core.grayscale`, on a lookup table rather than on every pixel); PALETTE COLOR becomes RGB here and
YBR is converted by pydicom's decoders. An image that cannot be decoded is skipped with its reason and the rest
of the series opens. Sizes were checked at index time (:data:`viewer.io.dicom_header.MAX_DECODED_BYTES`), so
nothing absurd is allocated here.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from radview_base.cancel import Cancelled
from viewer.io.dicom_header import FrameRecord
from viewer.io.dicom_index import SeriesEntry
from viewer.io.errors import LoadError
from viewer.io.pixel_reader import PixelDecodeError, read_frame
from viewer.io.planar_header import ImageDisplay, read_display


@dataclass
class PlanarImage:
    """One 2D image (one file): ``frames`` ``(n, rows, cols)`` stored values, or ``(n, rows, cols, 3)`` RGB."""

    display: ImageDisplay
    frames: np.ndarray
    header: object  # the pydicom dataset without pixel data (LUT sequences, overlays)
    stored_range: tuple[int, int] = (0, 0)

    @property
    def is_color(self) -> bool:
        return self.frames.ndim == 4

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def overlay(self, group: int) -> np.ndarray | None:
        """Overlay plane ``group`` (0x6000…) as a boolean (rows, cols) mask at the image's pixels, or None."""
        try:
            bits = self.header.overlay_array(group)
        except Exception:
            return None
        bits = np.asarray(bits)
        if bits.ndim == 3:
            bits = bits[0]
        origin = self.header.get((group, 0x0050))
        r0, c0 = (int(origin.value[0]) - 1, int(origin.value[1]) - 1) if origin is not None else (0, 0)
        mask = np.zeros(self.shape, dtype=bool)
        rows, cols = self.shape
        r1, c1 = min(rows, r0 + bits.shape[0]), min(cols, c0 + bits.shape[1])
        if r1 > max(r0, 0) and c1 > max(c0, 0):
            mask[max(r0, 0):r1, max(c0, 0):c1] = bits[max(-r0, 0):r1 - r0, max(-c0, 0):c1 - c0] != 0
        return mask


@dataclass
class PlanarSeries:
    """A 2D series: ``kind`` "projection", "stack", "cine" (or "secondary"), its images and what was skipped."""

    kind: str
    images: list[PlanarImage]
    meta: dict
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def modality(self) -> str:
        return str(self.meta.get("modality") or "")


def _palette_to_rgb(arr: np.ndarray, header) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(arr, header)
    if rgb.dtype != np.uint8:  # 16-bit palette entries: the top byte is what a display shows
        rgb = (rgb >> 8).astype(np.uint8) if np.issubdtype(rgb.dtype, np.integer) else rgb.astype(np.uint8)
    return rgb


def _to_rgb8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    shift = max(0, bits_stored - 8)
    return (np.clip(arr, 0, None) >> shift).astype(np.uint8) if np.issubdtype(arr.dtype, np.integer) \
        else np.clip(arr, 0, 255).astype(np.uint8)


def _read_image(frames: list[FrameRecord], cancel: threading.Event | None) -> PlanarImage:
    f = frames[0].file
    display, header = read_display(f.path)
    out = None
    for k, fr in enumerate(sorted(frames, key=lambda r: r.frame)):
        if cancel is not None and cancel.is_set():
            raise Cancelled("load cancelled")
        arr = read_frame(f, fr.frame)
        if f.photometric == "PALETTE COLOR":
            arr = _palette_to_rgb(arr, header)
        elif arr.ndim == 3:
            arr = _to_rgb8(arr, f.bits_stored)
        if out is None:
            out = np.empty((len(frames),) + arr.shape, dtype=arr.dtype)
        out[k] = arr
    if out.ndim == 3 and np.issubdtype(out.dtype, np.integer):
        stored_range = (int(out.min()), int(out.max()))
    else:
        finite = out[np.isfinite(out)] if out.ndim == 3 else out
        stored_range = (float(finite.min()), float(finite.max())) if finite.size else (0, 0)
    return PlanarImage(display=display, frames=out, header=header, stored_range=stored_range)


def series_meta(entry: SeriesEntry) -> dict:
    f0 = entry.frames[0].file
    return {"series_uid": entry.series_uid, "series_key": entry.key, "study_uid": entry.study_uid,
            "modality": entry.modality, "description": entry.description, "series_number": entry.series_number,
            "patient_name": f0.patient["name"], "patient_id": f0.patient["id"],
            "patient_birth_date": f0.patient["birth_date"], "patient_sex": f0.patient["sex"],
            "study_date": f0.study["date"], "study_time": f0.study["time"], "series_date": entry.date,
            "series_time": entry.time, "institution": f0.study.get("institution", ""),
            "accession": f0.study.get("accession", ""), "manufacturer": f0.series.get("manufacturer", ""),
            "kind": entry.kind}


def load_planar(entry: SeriesEntry, progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> PlanarSeries:
    """Read every image of a 2D series; an image that cannot be decoded is skipped with its reason."""
    if not entry.loadable or not entry.planar:
        raise LoadError(entry.refusal or f"{entry.key} is not a series of 2D images")
    by_path: dict[str, list[FrameRecord]] = {}
    for fr in entry.frames:
        by_path.setdefault(fr.file.path, []).append(fr)
    images, skipped = [], []
    total = len(entry.images)
    for i, display in enumerate(entry.images):
        if cancel is not None and cancel.is_set():
            raise Cancelled("load cancelled")
        try:
            images.append(_read_image(by_path[display.path], cancel))
        except Cancelled:
            raise
        except (PixelDecodeError, OSError, ValueError, KeyError, MemoryError, RuntimeError) as exc:
            reason = str(exc).replace(display.path + ": ", "") or type(exc).__name__
            skipped.append((display.path, reason))
        if progress is not None:
            progress(i + 1, total)
    if not images:
        reasons = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped[:3])
        raise LoadError(f"none of the {total} images of {entry.key} could be decoded ({reasons})")
    warnings = list(entry.warnings)
    if skipped:
        warnings.append(f"{len(skipped)} of {total} images skipped: "
                        + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped[:3]))
    return PlanarSeries(kind=entry.kind, images=images, meta=series_meta(entry), warnings=warnings, skipped=skipped)
