"""Load an indexed series into a :class:`Volume` (``(z, y, x)``, modality values, LPS geometry).

The output dtype is chosen from the header before any pixel is read, so the
array is allocated once: integer data stays integer when the rescale maps it
into a small integer range (CT int16 stays int16); non-integer slopes give
float32. Native pixel data is read straight from its byte offset into its
output slice (one ``preadv`` per frame, no Python file object) and rescaled
there while the slice is in the CPU cache; frames are read on
``default_workers`` threads (two for native data, where there are two cores).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from viewer.io.dicom_header import FrameRecord, ImageFile
from viewer.io.dicom_index import Cancelled, SeriesEntry
from viewer.io.errors import LoadError
from viewer.io.pixel_reader import (
    PixelDecodeError,
    frame_shape,
    read_bytes_into,
    read_frame,
    read_native_into,
    stored_dtype,
)
from viewer.io.slice_stack import drop_warning
from viewer.io.volume import Volume

ProgressFn = Callable[[int, int], None]
SliceFn = Callable[[int, np.ndarray], None]


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
    ``workers``: threads to use (default: ``default_workers``). With more than
    one, ``progress`` and ``on_slice`` may be called from the worker threads
    (``progress`` counts still arrive in order; slices arrive as they finish,
    not in z order); ``cancel`` stops every worker.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}")
    if not entry.loadable:
        raise LoadError(entry.refusal or "series cannot be loaded")
    plan = entry.plan
    if plan is None:
        raise LoadError(f"{entry.key} is a series of {len(entry.images)} 2D images without a common grid "
                        f"({entry.kind}): it opens as 2D images (viewer.io.planar.load_planar), not as a volume")
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


def load_path(path: str, series: str | None = None, index_progress=None, progress: ProgressFn | None = None,
              scaling: str = "display") -> Volume:
    """The volume at ``path``: an image file (NIfTI/NRRD/MetaImage), a DICOM SEG file, or one series of a DICOM folder.

    ``series`` is a series key or SeriesInstanceUID (``KeyError`` naming the known ones when absent);
    None picks the largest loadable volume (``LoadError`` listing the refusals when there is none).
    """
    from viewer.io import loaders

    best = loaders.examine(path)[0]
    if best.kind != loaders.DICOM_FILES:  # an image file, or a DICOM SEG on its own grid (modality "SEG")
        return loaders.load(best)
    index = loaders.load(best, progress=index_progress)
    if series:
        entry = index.find(series)
    else:
        entry = index.largest_volume()
        if entry is None:
            reasons = "; ".join(f"{s.key}: {s.refusal}" for s in index.series if s.refusal)
            raise LoadError(f"no loadable image series in {path}" + (f" ({reasons})" if reasons else ""))
    return load_series(entry, progress=progress, scaling=scaling)


def _load(entry, plan, times, all_frames, dtype, check, timepoint, progress, cancel, on_slice, workers, scaling):
    f0 = all_frames[0].file
    fill = _background(all_frames, dtype, scaling)
    nz, ny, nx = plan.geometry.shape_zyx
    comp = () if f0.samples_per_pixel == 1 else (f0.samples_per_pixel,)
    shifted = plan.inplane_shift_px is not None
    # The frames are read straight into the output volume; a resampled series keeps its source slices (in the
    # output type, unless a tilt shifts them) and interpolates the grid from them afterwards.
    store = np.dtype(np.float32) if shifted else np.dtype(dtype)
    n_store = len(plan.frames[0]) if plan.resample_z else nz
    shape = (len(times), n_store, ny, nx) + comp
    try:
        out = np.empty(shape, dtype=store)
    except MemoryError as exc:
        gb = np.prod(shape) * store.itemsize / 1e9
        raise LoadError(f"not enough memory to load this series ({gb:.1f} GB)") from exc
    if plan.missing:
        for t in range(len(times)):
            out[t, plan.missing] = fill

    jobs = [(ti, k, fr) for ti, t in enumerate(times) for k, fr in enumerate(plan.frames[t])]
    total = len(jobs)
    zs = [int(round(z)) for z in plan.slice_index]
    recipes = _native_recipes(jobs, out.dtype, scaling) if not shifted else [None] * total
    done = 0
    lock = threading.Lock()
    failed: dict[tuple[int, int], tuple[str, str]] = {}  # (time point, source slice) → (path, reason)
    live = on_slice is not None and not shifted and not plan.resample_z

    def work(i):
        nonlocal done
        ti, k, fr = jobs[i]
        z = zs[k]
        target = out[ti, k] if plan.resample_z else out[ti, z]
        recipe = recipes[i]
        try:
            if recipe is not None:
                _read_native_fast(fr, target, recipe)
            else:
                _read_rescaled(fr, target, rescale_of(fr, scaling), check)
                if shifted:
                    _shift_inplane(target, plan.inplane_shift_px[k], fill)
        except (PixelDecodeError, OSError) as exc:  # this slice only: it is left out, the series still opens
            target[...] = fill
            with lock:
                failed[(ti, k)] = (fr.file.path, _reason(exc))
        if progress is not None:
            with lock:  # several workers: keep the reported counts in order
                done += 1
                progress(done, total)
        if live and ti == 0:
            on_slice(z, target)

    n_workers = workers or default_workers(total, native=f0.is_native)
    _run_parallel(total, work, n_workers, cancel)
    if len(failed) == total:
        path, reason = next(iter(failed.values()))
        raise LoadError(f"no slice of this series could be read ({os.path.basename(path)}: {reason})")

    gaps: list[float] = []
    if plan.resample_z:
        out, gaps = _resample_along_z(out, plan, dtype, {key for key in failed}, fill)
    else:
        gaps = sorted({float(zs[k]) for _, k in failed})
        if shifted:
            out = _cast(out, dtype)
    warnings = list(entry.warnings)
    if failed:
        items = [failed[key] for key in sorted(failed)]
        warnings.append(drop_warning(plan, items, total, gaps, bridged=plan.resample_z and not gaps))
    volume = Volume(out[0], plan.geometry, meta=_meta(entry, dtype, timepoint, scaling), warnings=warnings)
    volume.meta["dropped"] = list(entry.dropped) + [failed[key] for key in sorted(failed)]
    volume.meta["instance_numbers"] = image_numbers(plan, times[0], {k for ti, k in failed if ti == 0})
    if timepoint is None:
        volume.meta["timepoints"] = out  # (t, z, y, x); the Volume shows time point 0
    return volume


def _reason(exc: BaseException) -> str:
    """One line for the user; the file is named beside it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, PixelDecodeError) else f"{type(exc).__name__}: {text}"


#: Default number of threads (the caller's included) for native pixel data. Reading native pixels is a kernel
#: memcpy from the page cache (GIL released), plus the page faults of the new volume and the in-place rescale;
#: a second thread overlaps them (measured on 2 cores: ~1.6× faster); bounded by memory bandwidth and the page
#: faults, more threads are not expected to gain much (3 and 4 did not on 2 cores).
NATIVE_WORKERS = 2


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_workers(n_frames: int, native: bool = True) -> int:
    """Threads load_series uses by default for ``n_frames`` frames (the caller's thread included)."""
    if not native:
        return min(8, _usable_cpus())  # decoding is CPU-bound
    return min(NATIVE_WORKERS, _usable_cpus(), max(1, n_frames // 8))  # tiny series: not worth a thread


def _run_parallel(n: int, body: Callable[[int], None], n_workers: int, cancel: threading.Event | None) -> None:
    """Call ``body(i)`` for every ``i`` in ``range(n)`` on ``n_workers`` threads, the caller's included.

    Each worker takes a contiguous block of indices, in order (so two threads never fill the same memory
    pages, and the volume fills from each block's start); a worker whose block is done takes indices from
    the end of the largest block left. ``cancel`` is checked before every index. The first exception
    (``Cancelled`` included) stops every worker and is raised in the caller once they have all stopped.
    """
    if n_workers <= 1 or n <= 1:
        for i in range(n):
            if cancel is not None and cancel.is_set():
                raise Cancelled("load cancelled")
            body(i)
        return
    n_workers = min(n_workers, n)
    blocks = [[n * w // n_workers, n * (w + 1) // n_workers] for w in range(n_workers)]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claim(w: int) -> int | None:
        with lock:
            if errors:
                return None
            block = blocks[w]
            if block[0] < block[1]:
                block[0] += 1
                return block[0] - 1
            block = max(blocks, key=lambda b: b[1] - b[0])
            if block[0] < block[1]:
                block[1] -= 1
                return block[1]
            return None

    def run(w: int) -> None:
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("load cancelled")
                i = claim(w)
                if i is None:
                    return
                body(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            with lock:
                errors.append(exc)

    threads = []
    for w in range(1, n_workers):
        t = threading.Thread(target=run, args=(w,), name=f"radview-load-{w}", daemon=True)
        try:
            t.start()
        except RuntimeError:  # no more threads: the others take this worker's block
            break
        threads.append(t)
    run(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@dataclass(frozen=True)
class _NativeRecipe:
    """How to turn one native frame's bytes into modality values in place (slope 1, integer intercept)."""

    raw_dtype: np.dtype  # stored values, read straight into the output slice viewed as this type
    frame_bytes: int
    swap: bool  # big endian
    sign_shift: int  # sign-extend from BitsStored (signed, BitsStored < BitsAllocated)
    mask: object  # keep the BitsStored low bits (unsigned, BitsStored < BitsAllocated), or None
    lowest: int | None  # smallest stored value that maps into the output type, when one can fall below
    highest: int | None  # largest such value, when one can exceed it
    add: object  # the intercept as an output-type scalar, or None


def _native_recipes(jobs, dtype: np.dtype, scaling: str) -> list[_NativeRecipe | None]:
    """A recipe per job whose frame can be read straight into its output slice; None for the others."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return [None] * len(jobs)
    info = np.iinfo(dtype)
    memo: dict[tuple, _NativeRecipe | None] = {}
    recipes = []
    for _, _, fr in jobs:
        f = fr.file
        slope, intercept = rescale_of(fr, scaling)
        key = (f.is_native, f.pixel_tag, f.bits_allocated, f.bits_stored, f.pixel_representation, f.samples_per_pixel,
               f.rows, f.columns, f.big_endian, slope, intercept)
        if key not in memo:
            memo[key] = _native_recipe(f, slope, intercept, dtype, info)
        recipes.append(memo[key])
    return recipes


def _native_recipe(f: ImageFile, slope: float, intercept: float, dtype: np.dtype, info) -> _NativeRecipe | None:
    if not (f.is_native and f.pixel_tag == "PixelData" and f.bits_allocated >= 8 and f.samples_per_pixel == 1
            and slope == 1 and np.isfinite(intercept) and intercept == int(intercept)):
        return None
    try:
        raw_dtype = stored_dtype(f)
    except PixelDecodeError:
        return None  # the general path reports it
    if raw_dtype.itemsize != dtype.itemsize or not info.min <= intercept <= info.max:
        return None  # (an intercept beyond the output type: the general path checks, or falls back to int32)
    intercept = int(intercept)
    ba, bs = f.bits_allocated, f.bits_stored
    fix = 0 < bs < ba
    sign_shift = ba - bs if fix and f.pixel_representation == 1 else 0
    mask = raw_dtype.type((1 << bs) - 1) if fix and f.pixel_representation != 1 else None
    lo, hi = _stored_range(f) if fix else (np.iinfo(raw_dtype).min, np.iinfo(raw_dtype).max)
    # The stored values are reinterpreted as the output type, then the intercept is added in that type: both
    # the stored value and the sum must fit it (checked per slice only where the stored range allows otherwise).
    allowed_lo, allowed_hi = max(info.min, info.min - intercept), min(info.max, info.max - intercept)
    return _NativeRecipe(
        raw_dtype=raw_dtype, frame_bytes=f.rows * f.columns * raw_dtype.itemsize,
        swap=f.big_endian and raw_dtype.itemsize > 1, sign_shift=sign_shift, mask=mask,
        lowest=allowed_lo if lo < allowed_lo else None, highest=allowed_hi if hi > allowed_hi else None,
        add=dtype.type(intercept) if intercept else None)


def _read_native_fast(fr: FrameRecord, target: np.ndarray, recipe: _NativeRecipe) -> None:
    """Read ``fr``'s stored values straight into ``target`` (one output slice) and rescale them in place.

    One open + preadv into the slice; the bit fix, the overflow check and the intercept follow at once,
    while the slice is still in the CPU cache.
    """
    f = fr.file
    raw = target if recipe.raw_dtype == target.dtype else target.view(recipe.raw_dtype)
    if raw.nbytes != recipe.frame_bytes:
        raise PixelDecodeError(f"{f.path}: frame shape {(f.rows, f.columns)} does not match the series {target.shape}")
    got = read_bytes_into(f.path, f.pixel_offset + fr.frame * recipe.frame_bytes, raw, recipe.frame_bytes)
    if got != recipe.frame_bytes:
        raise PixelDecodeError(f"{f.path}: pixel data truncated ({got} of {recipe.frame_bytes} bytes)")
    if recipe.swap:
        raw.byteswap(inplace=True)
    if recipe.sign_shift:
        np.left_shift(raw, recipe.sign_shift, out=raw)
        np.right_shift(raw, recipe.sign_shift, out=raw)
    elif recipe.mask is not None and raw.max() > recipe.mask:  # (reading is cheaper than rewriting)
        np.bitwise_and(raw, recipe.mask, out=raw)
    if recipe.lowest is not None and int(raw.min()) < recipe.lowest:
        raise _Overflow
    if recipe.highest is not None and int(raw.max()) > recipe.highest:
        raise _Overflow
    if recipe.add is not None:
        np.add(target, recipe.add, out=target)


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
        "window": _window(entry.frames[0], scaling),
        "photometric": f0.photometric,
        "lossy": any(fr.file.lossy for fr in entry.frames),
        "slice_thickness": entry.frames[0].slice_thickness,
        "timepoint": timepoint,
        "n_timepoints": entry.n_timepoints,
        "dtype": str(np.dtype(dtype)),
        "scaling": scaling,
        "frame_of_reference_uid": f0.series["frame_of_reference"],
        "series_info": dict(f0.series),  # acquisition date/time, kVp, mAs, kernel, TR/TE, field strength
        "philips_scale": any(fr.philips_scale for fr in entry.frames),  # a choice of scaling applies
    }


def image_numbers(plan, timepoint: int = 0, failed=()) -> list[int | None] | None:
    """Per output slice z, the number PACS gives its image: the InstanceNumber (a frame of a multi-frame file: its
    frame number); None where a slice has no image of its own (a gap, a frame that could not be read: ``failed``
    holds their indices in ``plan.frames[timepoint]``). None when slices were resampled along z."""
    if plan.resample_z:
        return None
    numbers: list[int | None] = [None] * plan.geometry.shape_zyx[0]
    for k, fr in enumerate(plan.frames[timepoint]):
        z = int(round(plan.slice_index[k]))
        if k in failed:
            continue
        if 0 <= z < len(numbers):
            numbers[z] = fr.frame + 1 if fr.file.number_of_frames > 1 else fr.file.instance_number
    return numbers


def _window(fr: FrameRecord, scaling: str):
    """The file's window (center, width) in the values the volume holds (Philips floating-point values: divided
    by slope × scale slope, as the values are)."""
    window = fr.file.window
    if window is None or scaling != "philips-float" or not fr.philips_scale:
        return window
    factor = fr.slope * fr.philips_scale
    return window[0] / factor, window[1] / factor


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
    if fast:
        raw = read_native_into(f, fr.frame, np.empty(frame_shape(f), dtype=raw_dtype))
    else:
        raw = read_frame(f, fr.frame)
        if raw.shape != target.shape:
            raise PixelDecodeError(f"{f.path}: frame shape {raw.shape} does not match the series {target.shape}")
    if target.dtype.kind == "f":
        np.multiply(raw, slope, out=target, casting="unsafe")
        target += intercept
    elif slope == 1 and intercept == 0 and not check:
        np.copyto(target, raw, casting="unsafe")
    else:
        # integer slope/intercept: computed in int64 so a negative slope never meets an unsigned type
        values = raw.astype(np.int64) * int(slope) + int(intercept)
        if check:  # the optimistic int16 output: does this slice fit it?
            info = np.iinfo(target.dtype)
            if values.size and (int(values.min()) < info.min or int(values.max()) > info.max):
                raise _Overflow
        np.copyto(target, values, casting="unsafe")


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


def _resample_along_z(out: np.ndarray, plan, dtype, failed: set, fill) -> tuple[np.ndarray, list[float]]:
    """Unevenly spaced slices (stored in order along the normal) → the regular grid of ``plan``.

    A grid plane that coincides with a slice is that slice's values; any other plane is the linear interpolation
    of the two nearest slices, weighted by the distances between their own positions and the plane. A plane
    that would need a slice that could not be read (``failed``: (time point, slice)) stays empty: returned with
    the result, as the gaps.
    """
    src = np.asarray(plan.slice_index, dtype=float)
    n_src = len(src)
    nz = plan.geometry.shape_zyx[0]
    result = np.empty((out.shape[0], nz) + out.shape[2:], dtype=dtype)
    gaps = set()
    for z in range(nz):
        j = int(np.clip(np.searchsorted(src, z, side="right") - 1, 0, max(n_src - 2, 0)))
        w = 0.0 if n_src == 1 else float(np.clip((z - src[j]) / (src[j + 1] - src[j]), 0.0, 1.0))
        for t in range(out.shape[0]):
            if (w < 1 and (t, j) in failed) or (w > 0 and (t, j + 1) in failed):
                result[t, z] = fill
                gaps.add(float(z))
            elif w == 0:
                result[t, z] = _cast(out[t, j], dtype)
            elif w == 1:
                result[t, z] = _cast(out[t, j + 1], dtype)
            else:
                result[t, z] = _cast(out[t, j] * (1 - w) + out[t, j + 1] * w, dtype)
    return result, sorted(gaps)


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(a), info.min, info.max).astype(dtype)
    return a.astype(dtype, copy=False)
