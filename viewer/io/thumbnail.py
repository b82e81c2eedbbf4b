"""A small 8-bit preview image of a series: its middle frame, windowed and downsampled.

Reads one frame through :mod:`viewer.io.pixel_reader` (never the whole
series), applies the frame's rescale, the file's own window (else a robust
1–99 percentile range), keeps the physical aspect ratio from the pixel
spacing and area-averages down to ``size`` pixels on the longest side.
"""
from __future__ import annotations

import numpy as np

from viewer.io.dicom_header import FrameRecord
from viewer.io.dicom_index import SeriesEntry
from viewer.io.pixel_reader import PixelDecodeError, read_frame
from viewer.io.series_loader import rescale_of


class ThumbnailError(RuntimeError):
    """The series has no frame whose pixels could be turned into a preview."""


def middle_frame(entry: SeriesEntry) -> FrameRecord:
    """The frame a thumbnail shows: middle slice of the first time point, else the middle file's first frame."""
    if entry.plan is not None and entry.plan.frames and entry.plan.frames[0]:
        stack = entry.plan.frames[0]
        return stack[len(stack) // 2]
    if not entry.frames:
        raise ThumbnailError(f"series {entry.key} has no frames")
    ordered = sorted(entry.frames, key=lambda fr: (fr.file.path, fr.frame))
    return ordered[len(ordered) // 2]


def thumbnail_shape(rows: int, cols: int, pixel_spacing, size: int) -> tuple[int, int]:
    """(h, w) with the physical aspect ratio of a rows × cols frame and ``size`` on the longest side."""
    dy, dx = pixel_spacing if pixel_spacing and min(pixel_spacing) > 0 else (1.0, 1.0)
    height, width = rows * dy, cols * dx
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def area_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the first two axes of ``image`` to ``shape``: area average when shrinking, nearest when growing."""
    out = image
    for axis, n_out in enumerate(shape):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        starts = (np.arange(n_out) * n_in // n_out).astype(np.intp)
        sums = np.add.reduceat(out, starts, axis=axis)
        counts = np.diff(np.append(starts, n_in))
        counts[counts < 1] = 1  # repeated start (upsampling): reduceat returned the single element
        out = sums / counts.reshape([-1 if a == axis else 1 for a in range(out.ndim)]).astype(out.dtype)
    return out


def _levels(image: np.ndarray, window) -> tuple[float, float]:
    if window is not None and window[1] and window[1] > 0:
        center, width = window
        return center - width / 2.0, center + width / 2.0
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, (1, 99))
    if hi <= lo:  # (nearly) constant image: full range, or a flat mid-grey
        lo, hi = float(finite.min()), float(finite.max())
    return float(lo), float(hi)


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255 (clipped; NaN → 0)."""
    if hi <= lo:
        return np.full(image.shape, 128 if np.isfinite(lo) else 0, dtype=np.uint8)
    scaled = (image - lo) * (255.0 / (hi - lo))
    np.clip(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0), 0, 255, out=scaled)
    return (scaled + 0.5).astype(np.uint8)


def series_thumbnail(entry: SeriesEntry, size: int = 96) -> np.ndarray:
    """uint8 ``(h, w)`` (grayscale) or ``(h, w, 3)`` (colour) preview of ``entry``'s middle frame.

    Raises :class:`ThumbnailError` with a readable reason when the pixels cannot be
    read or decoded; the caller shows a placeholder.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    fr = middle_frame(entry)
    f = fr.file
    try:
        stored = read_frame(f, fr.frame)
    except PixelDecodeError as exc:
        raise ThumbnailError(str(exc)) from exc
    except (OSError, ValueError, MemoryError) as exc:
        raise ThumbnailError(f"{f.path}: cannot read pixel data ({exc})") from exc
    shape = thumbnail_shape(f.rows, f.columns, fr.pixel_spacing, size)
    if stored.ndim == 3:  # colour: no rescale or window, just bring to 8 bits
        small = area_resize(stored.astype(np.float32), shape)
        if stored.dtype == np.uint8:
            return np.ascontiguousarray((small + 0.5).astype(np.uint8)[..., :3])
        return to_uint8(small, float(small.min()), float(small.max()))[..., :3].copy()
    slope, intercept = rescale_of(fr)
    values = stored.astype(np.float32)
    if slope != 1.0 or intercept != 0.0:
        values *= np.float32(slope)
        values += np.float32(intercept)
    small = area_resize(values, shape)
    out = to_uint8(small, *_levels(small, f.window))
    if f.photometric == "MONOCHROME1":  # low values are white
        np.subtract(255, out, out=out)
    return out
