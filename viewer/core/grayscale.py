"""The DICOM grayscale display pipeline for 2D images (PS3.3 C.11, PS3.14), in the standard's order.

Modality LUT (rescale, or the Modality LUT Sequence: pydicom's ``apply_modality_lut``) → VOI (a window pair with
its VOILUTFunction LINEAR / LINEAR_EXACT / SIGMOID, or a VOI LUT Sequence item: pydicom's ``apply_voi``) →
Presentation LUT shape / MONOCHROME1 inversion, so that bone is bright on every radiograph → 8-bit display.

Integer images are mapped through a lookup table over their stored range (at most 65,536 entries): the pipeline
runs on the table, then one ``np.take`` per frame, which keeps window/level dragging on a 2,500×2,000 radiograph
interactive. The display shutter (rectangular, circular, polygonal) blanks the outside with its presentation
value. No Qt here: the CLI screenshot and the GUI render through the same function.
"""
from __future__ import annotations

import math

import numpy as np

from viewer.io.planar_header import VoiPreset

_LUT_LIMIT = 1 << 16


def modality_values(stored: np.ndarray, header) -> np.ndarray:
    """Stored values → modality values (rescale slope/intercept or the Modality LUT Sequence)."""
    from pydicom.pixels import apply_modality_lut

    stored = np.asarray(stored)
    if stored.dtype.kind == "f" and np.all(np.isfinite(stored)) and np.array_equal(stored, np.round(stored)):
        stored = stored.astype(np.int64)  # a Modality LUT Sequence is indexed by integers
    try:
        return np.asarray(apply_modality_lut(stored, header), dtype=np.float64)
    except Exception:  # malformed LUT or rescale: show the stored values (the index warned about the file)
        return stored.astype(np.float64)


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """A window pair applied as PS3.3 C.11.2.1.2 defines it: values in [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / max(width, 1e-9), -700, 700)))
    if function == "LINEAR_EXACT":
        width = max(width, 1e-9)
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:  # LINEAR with width 1: a threshold at the centre
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _voi_lut(values: np.ndarray, header, index: int) -> np.ndarray:
    from pydicom.pixels import apply_voi

    item = header.VOILUTSequence[index]
    bits = int(item.LUTDescriptor[2]) if len(item.LUTDescriptor) > 2 else 16
    if np.all(np.isfinite(values)) and np.array_equal(values, np.round(values)):
        values = values.astype(np.int64)  # a LUT is indexed by integers (pydicom warns on float input)
    out = np.asarray(apply_voi(values, header, index=index), dtype=np.float64)
    return np.clip(out / float((1 << bits) - 1), 0.0, 1.0)


def full_range_voi(image) -> VoiPreset:
    """A window over the image's whole range of modality values (when the file offers none)."""
    lo, hi = image.stored_range
    domain = np.arange(lo, hi + 1) if float(hi) - float(lo) < _LUT_LIMIT else np.array([lo, hi])
    values = modality_values(domain, image.header)  # a Modality LUT need not be monotonic: its whole output
    lo_m, hi_m = float(values.min()), float(values.max())
    return VoiPreset("full range", (lo_m + hi_m) / 2.0, max(hi_m - lo_m, 1.0), "LINEAR")


def voi_choices(image) -> list[VoiPreset]:
    """The file's own VOIs (window pairs with their explanations, VOI LUT items), then the full range."""
    return [*image.display.voi_presets, full_range_voi(image)]


def default_voi(image) -> VoiPreset:
    return voi_choices(image)[0]


def _apply(values: np.ndarray, image, voi: VoiPreset) -> np.ndarray:
    modality = modality_values(values, image.header)
    if voi.lut_index is not None:
        return _voi_lut(modality, image.header, voi.lut_index)
    return window(modality, float(voi.center), float(voi.width), voi.function)


def display_table(image, voi: VoiPreset, invert: bool = False) -> np.ndarray:
    """uint8 display value for every stored value ``lo…hi`` of an integer image."""
    lo, hi = image.stored_range
    shown = _apply(np.arange(lo, hi + 1, dtype=np.float64), image, voi)
    if image.display.inverted != invert:
        shown = 1.0 - shown
    return np.round(shown * 255.0).astype(np.uint8)


def render(image, frame: int, voi: VoiPreset | None = None, invert: bool = False, shutter: bool = True,
           table: np.ndarray | None = None) -> np.ndarray:
    """Frame ``frame`` of ``image`` as displayed: uint8 ``(rows, cols)`` or RGB ``(rows, cols, 3)``.

    ``invert``: the user's Invert on top of the file's own polarity; ``table``: a cached :func:`display_table`.
    """
    pixels = image.frames[frame]
    if image.is_color:
        out = np.array(pixels, dtype=np.uint8, copy=True)
        if invert:
            np.subtract(255, out, out=out)
    else:
        voi = voi or default_voi(image)
        lo, hi = image.stored_range
        if np.issubdtype(pixels.dtype, np.integer) and hi - lo < _LUT_LIMIT:
            if table is None:
                table = display_table(image, voi, invert)
            index = pixels if lo == 0 else pixels.astype(np.int32) - int(lo)
            out = np.take(table, index, mode="clip")
        else:
            shown = _apply(pixels.astype(np.float64), image, voi)
            shown = np.nan_to_num(shown, nan=0.0)
            if image.display.inverted != invert:
                shown = 1.0 - shown
            out = np.round(shown * 255.0).astype(np.uint8)
    if shutter and image.display.shutter:
        mask = shutter_mask(image.display.shutter, out.shape[:2])
        if mask is not None:
            out[~mask] = shutter_gray(image.display.shutter)
    return out


def shutter_gray(shutter: dict) -> int:
    """ShutterPresentationValue (a 16-bit P-value) as an 8-bit gray."""
    return int(np.clip(int(shutter.get("value", 0)), 0, 0xFFFF)) >> 8


def shutter_mask(shutter: dict, shape: tuple[int, int]) -> np.ndarray | None:
    """True where the image shows through the shutter (every shape given must contain the pixel)."""
    rows, cols = shape
    r, c = np.ogrid[1:rows + 1, 1:cols + 1]  # DICOM shutter coordinates are 1-based
    mask = np.ones(shape, dtype=bool)
    used = False
    if "rectangle" in shutter:
        left, right, upper, lower = shutter["rectangle"]
        mask &= (c >= left) & (c <= right) & (r >= upper) & (r <= lower)
        used = True
    if "circle" in shutter:
        cr, cc, radius = shutter["circle"]
        mask &= (r - cr) ** 2 + (c - cc) ** 2 <= radius ** 2
        used = True
    if "polygon" in shutter:
        mask &= _inside_polygon(shutter["polygon"], rows, cols)
        used = True
    return mask if used else None


def _inside_polygon(vertices, rows: int, cols: int) -> np.ndarray:
    """Even-odd rule over pixel centres; ``vertices`` are (row, column) pairs, 1-based."""
    r = np.arange(1, rows + 1, dtype=np.float64)[:, None]
    c = np.arange(1, cols + 1, dtype=np.float64)[None, :]
    inside = np.zeros((rows, cols), dtype=bool)
    pts = [(float(a), float(b)) for a, b in vertices]
    for (r1, c1), (r2, c2) in zip(pts, pts[1:] + pts[:1]):
        if r1 == r2:
            continue
        crosses = (r1 > r) != (r2 > r)
        c_at = c1 + (r - r1) * (c2 - c1) / (r2 - r1)
        inside ^= crosses & (c < c_at)
    return inside


def frame_interval_ms(display, frame: int) -> float | None:
    """How long frame ``frame`` stays on screen when playing (FrameTimeVector, else the mean frame time)."""
    times = display.frame_times_ms
    if times:
        value = times[min(frame, len(times) - 1)]
        return value if value > 0 and math.isfinite(value) else display.frame_time_ms
    return display.frame_time_ms
