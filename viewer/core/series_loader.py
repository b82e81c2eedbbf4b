"""Load an indexed series into a :class:`Volume` (``(z, y, x)``, modality values, LPS geometry).

The output dtype is chosen from the header before any pixel is read, so the
array is allocated once: integer data stays integer when the rescale maps it
into a small integer range (CT int16 stays int16); non-integer slopes give
float32. Native pixel data is read straight from its byte offset.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from .dicom_header import FrameRecord, ImageFile
from .dicom_index import Cancelled, SeriesEntry
from .pixel_reader import PixelDecodeError, frame_shape, read_frame, read_native_into, stored_dtype
from .volume import Volume

ProgressFn = Callable[[int, int], None]
SliceFn = Callable[[int, np.ndarray], None]


class LoadError(RuntimeError):
    """The series cannot be loaded; the message says why."""


def _stored_range(f: ImageFile) -> tuple[float, float]:
    if f.pixel_tag != "PixelData":
        return -np.inf, np.inf
    bs = f.bits_stored
    if f.pixel_representation == 1:
        return -(2 ** (bs - 1)), 2 ** (bs - 1) - 1
    return 0, 2 ** bs - 1


#: How to turn stored values into modality values.
#: "display": the standard RescaleSlope/Intercept (what the scanner console shows; the default).
#: "philips-float": Philips' floating-point values, (PV·RS + RI) / (RS·SS) with the private
#: scale slope SS (2005,100E), as dcm2niix writes them by default; other vendors unchanged.
SCALINGS = ("display", "philips-float")


def rescale_of(fr: FrameRecord, scaling: str = "display") -> tuple[float, float]:
    """(slope, intercept) that maps ``fr``'s stored values to the requested modality values."""
    if fr.file.samples_per_pixel > 1:
        return 1.0, 0.0  # rescale applies to grayscale only
    if scaling == "philips-float" and fr.philips_scale:
        return 1.0 / fr.philips_scale, fr.intercept / (fr.slope * fr.philips_scale)
    return fr.slope, fr.intercept


def output_dtype(frames: list[FrameRecord], scaling: str = "display") -> np.dtype:
    """Smallest dtype that holds every rescaled value exactly (float32 for non-integer slopes)."""
    f0 = frames[0].file
    base = stored_dtype(f0)
    if base.kind == "f" or f0.samples_per_pixel > 1:
        return base
    rescale = {rescale_of(fr, scaling) for fr in frames}
    if any(s != int(s) or i != int(i) for s, i in rescale):
        return np.dtype(np.float32)
    lo = hi = None
    for fr in frames:
        a, b = _stored_range(fr.file)
        slope, intercept = rescale_of(fr, scaling)
        vals = (a * slope + intercept, b * slope + intercept)
        lo = min(vals) if lo is None else min(lo, *vals)
        hi = max(vals) if hi is None else max(hi, *vals)
    for dt in (base, np.dtype(np.int16), np.dtype(np.int32)):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return np.dtype(np.float32)


def _optimistic_int16(frames: list[FrameRecord], dtype: np.dtype, scaling: str) -> bool:
    """16-bit data whose *possible* range needs int32 (e.g. signed 16-bit CT with intercept -1024) almost
    always fits int16 in practice: load as int16, check each slice, and fall back to int32 on overflow."""
    f0 = frames[0].file
    return (dtype == np.int32 and f0.bits_allocated == 16 and f0.samples_per_pixel == 1
            and all(rescale_of(fr, scaling)[0] == 1 for fr in frames))


class _Overflow(Exception):
    """A slice does not fit the optimistic int16 output."""


def load_series(entry: SeriesEntry, timepoint: int | None = 0, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, on_slice: SliceFn | None = None,
                workers: int | None = None, scaling: str = "display") -> Volume:
    """Load ``entry`` as a Volume; ``timepoint=None`` loads all time points as ``(t, z, y, x)``.

    ``on_slice(z, slice_array)`` is called as each output slice is ready (so a
    viewer can show the first image before the whole series has loaded).
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}")
    if not entry.loadable:
        raise LoadError(entry.refusal or "series cannot be loaded")
    plan = entry.plan
    times = range(plan.n_timepoints) if timepoint is None else [timepoint]
    if timepoint is not None and not 0 <= timepoint < plan.n_timepoints:
        raise LoadError(f"time point {timepoint} out of range (series has {plan.n_timepoints})")
    all_frames = [fr for t in times for fr in plan.frames[t]]
    dtype = output_dtype(all_frames, scaling)
    if _optimistic_int16(all_frames, dtype, scaling):
        try:
            return _load(entry, plan, times, all_frames, np.dtype(np.int16), True, timepoint, progress, cancel,
                         on_slice, workers, scaling)
        except _Overflow:
            pass  # a slice needs int32 after all: read again
    return _load(entry, plan, times, all_frames, dtype, False, timepoint, progress, cancel, on_slice, workers,
                 scaling)


def _load(entry, plan, times, all_frames, dtype, check, timepoint, progress, cancel, on_slice, workers, scaling):
    f0 = all_frames[0].file
    fill = _background(all_frames, dtype, scaling)
    nz, ny, nx = plan.geometry.shape_zyx
    comp = () if f0.samples_per_pixel == 1 else (f0.samples_per_pixel,)
    direct = not plan.resample_z and plan.inplane_shift_px is None
    n_store = len(plan.frames[0]) if plan.resample_z else nz
    shape = (len(times), n_store, ny, nx) + comp
    try:
        out = np.empty(shape, dtype=dtype if direct else np.float32)
    except MemoryError as exc:
        gb = np.prod(shape) * np.dtype(dtype if direct else np.float32).itemsize / 1e9
        raise LoadError(f"not enough memory to load this series ({gb:.1f} GB)") from exc
    if plan.missing:
        for t in range(len(times)):
            out[t, plan.missing] = fill

    jobs = [(ti, k, fr) for ti, t in enumerate(times) for k, fr in enumerate(plan.frames[t])]
    total = len(jobs)
    done = [0]
    lock = threading.Lock()

    def work(job):
        if cancel is not None and cancel.is_set():
            raise Cancelled("load cancelled")
        ti, k, fr = job
        z = int(round(plan.slice_index[k]))
        target = out[ti, k] if plan.resample_z else out[ti, z]
        _read_rescaled(fr, target, rescale_of(fr, scaling), check)
        if plan.inplane_shift_px is not None:
            _shift_inplane(target, plan.inplane_shift_px[k], fill)
        with lock:
            done[0] += 1
            n = done[0]
        if progress is not None:
            progress(n, total)
        if on_slice is not None and ti == 0 and direct:
            on_slice(z, target)

    compressed = not f0.is_native
    n_workers = workers or (min(8, os.cpu_count() or 1) if compressed else 1)
    try:
        if n_workers > 1 and total > 1:
            with ThreadPoolExecutor(n_workers) as pool:
                for _ in pool.map(work, jobs):
                    pass
        else:
            for job in jobs:
                work(job)
    except PixelDecodeError as exc:
        raise LoadError(str(exc)) from exc

    if plan.resample_z:
        out = _resample_along_z(out, plan, dtype)
    elif not direct:
        out = _cast(out, dtype)
    volume = Volume(out[0], plan.geometry, meta=_meta(entry, dtype, timepoint, scaling), warnings=list(entry.warnings))
    if timepoint is None:
        volume.meta["timepoints"] = out  # (t, z, y, x); the Volume shows time point 0
    return volume


def _meta(entry: SeriesEntry, dtype, timepoint, scaling) -> dict:
    f0 = entry.frames[0].file
    return {
        "modality": entry.modality,
        "series_uid": entry.series_uid,
        "series_key": entry.key,
        "study_uid": entry.study_uid,
        "series_number": entry.series_number,
        "description": entry.description,
        "patient": dict(f0.patient),
        "study": dict(f0.study),
        "window": f0.window,
        "photometric": f0.photometric,
        "lossy": any(fr.file.lossy for fr in entry.frames),
        "slice_thickness": entry.frames[0].slice_thickness,
        "timepoint": timepoint,
        "n_timepoints": entry.n_timepoints,
        "dtype": str(np.dtype(dtype)),
        "scaling": scaling,
        "frame_of_reference_uid": f0.series["frame_of_reference"],
    }


def _background(frames: list[FrameRecord], dtype, scaling: str) -> float:
    f = frames[0]
    lo, _ = _stored_range(f.file)
    slope, intercept = rescale_of(f, scaling)
    value = lo * slope + intercept if np.isfinite(lo) else 0
    if f.file.modality == "CT":
        value = max(value, -1024)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        value = min(max(value, info.min), info.max)
    return value


def _read_rescaled(fr: FrameRecord, target: np.ndarray, rescale: tuple[float, float], check: bool = False) -> None:
    """Stored values of ``fr`` → modality values in ``target`` (one output slice)."""
    f = fr.file
    slope, intercept = rescale
    raw_dtype = stored_dtype(f)
    fast = f.is_native and f.pixel_tag == "PixelData" and f.bits_allocated >= 8 and f.samples_per_pixel == 1
    if (fast and slope == 1 and intercept == int(intercept) and target.dtype.kind in "iu"
            and target.dtype.itemsize == raw_dtype.itemsize):
        # Read straight into the output slice (viewed as the stored type) and add the intercept in place,
        # while the slice is hot in the cache. output_dtype (or the check) guarantees the result fits.
        raw = read_native_into(f, fr.frame, target.view(raw_dtype))
        if check or raw_dtype != target.dtype and not _fits(f, target.dtype, intercept):
            info = np.iinfo(target.dtype)
            lo, hi = int(raw.min()), int(raw.max())
            if lo < info.min or hi > info.max or lo + intercept < info.min or hi + intercept > info.max:
                raise _Overflow
        if intercept:
            np.add(target, np.asarray(int(intercept), dtype=target.dtype), out=target)
        return
    if check:
        raise _Overflow  # the optimistic path is only taken where the fast read applies
    if fast:
        raw = read_native_into(f, fr.frame, np.empty(frame_shape(f), dtype=raw_dtype))
    else:
        raw = read_frame(f, fr.frame)
        if raw.shape != target.shape:
            raise PixelDecodeError(f"{f.path}: frame shape {raw.shape} does not match the series {target.shape}")
    if slope == 1 and intercept == 0:
        np.copyto(target, raw, casting="unsafe")
    elif target.dtype.kind == "f":
        np.multiply(raw, slope, out=target, casting="unsafe")
        target += intercept
    else:
        # integer slope/intercept: computed in int64 so a negative slope never meets an unsigned type
        np.copyto(target, raw.astype(np.int64) * int(slope) + int(intercept), casting="unsafe")


def _fits(f: ImageFile, dtype: np.dtype, intercept: float) -> bool:
    """Every possible stored value, and stored value + intercept, fits ``dtype``."""
    lo, hi = _stored_range(f)
    info = np.iinfo(dtype)
    return info.min <= lo and hi <= info.max and info.min <= lo + intercept and hi + intercept <= info.max


def _shift_inplane(img: np.ndarray, shift_rc: tuple[float, float], fill: float) -> None:
    from scipy.ndimage import shift

    if abs(shift_rc[0]) < 1e-6 and abs(shift_rc[1]) < 1e-6:
        return
    s = shift_rc + (0.0,) * (img.ndim - 2)
    img[...] = shift(img, s, order=1, mode="constant", cval=fill, prefilter=False)


def _resample_along_z(out: np.ndarray, plan, dtype) -> np.ndarray:
    """Linear interpolation of unevenly spaced slices (stored in order) onto the uniform grid."""
    src = np.asarray(plan.slice_index, dtype=float)
    n_src = len(src)
    nz = plan.geometry.shape_zyx[0]
    result = np.empty((out.shape[0], nz) + out.shape[2:], dtype=dtype)
    for z in range(nz):
        j = int(np.clip(np.searchsorted(src, z, side="right") - 1, 0, n_src - 2))
        w = float(np.clip((z - src[j]) / (src[j + 1] - src[j]), 0.0, 1.0))
        result[:, z] = _cast(out[:, j] * (1 - w) + out[:, j + 1] * w, dtype)
    return result


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(a), info.min, info.max).astype(dtype)
    return a.astype(dtype, copy=False)
