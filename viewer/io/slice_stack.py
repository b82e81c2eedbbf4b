"""Turn a set of 2D frames that share orientation and size into a volume plan.

Frames are sorted by their position along the slice normal (never by instance
number or file name). Repeated positions become time points (4D); missing
slices, irregular spacing and gantry tilt are detected and reported, and the
plan says how the loader places every frame on a regular orthogonal grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radview_base.geometry import Geometry
from viewer.io.dicom_header import FrameRecord

POSITION_TOL_MM = 0.01


class StackError(ValueError):
    """The frames cannot form a volume; the message says why."""


@dataclass
class StackPlan:
    """How to assemble frames into ``(t,) z, y, x`` arrays on ``geometry``."""

    geometry: Geometry
    frames: list[list[FrameRecord]]  # [timepoint][sorted along the normal]
    slice_index: list[float]  # output z index (may be fractional before resampling) of each sorted frame
    inplane_shift_px: list[tuple[float, float]] | None = None  # (rows, cols) to shift each frame (tilt)
    resample_z: bool = False  # slice_index not integer: interpolate along z
    missing: list[int] = field(default_factory=list)  # output slices with no source frame
    warnings: list[str] = field(default_factory=list)

    @property
    def n_timepoints(self) -> int:
        return len(self.frames)


def _normal(orientation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:], dtype=float)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    n = np.cross(row, col)
    return row, col, n / np.linalg.norm(n)


def _split_timepoints(frames: list[FrameRecord], n: np.ndarray) -> list[list[FrameRecord]]:
    """Group frames by position; equal counts per position become time points."""
    positions = np.array([f.position for f in frames], dtype=float)
    order = np.lexsort((np.arange(len(frames)), positions @ n))
    groups: list[list[FrameRecord]] = []
    last = None
    for idx in order:
        p = positions[idx]
        if last is not None and np.linalg.norm(p - last) <= POSITION_TOL_MM:
            groups[-1].append(frames[idx])
        else:
            groups.append([frames[idx]])
            last = p
    counts = {len(g) for g in groups}
    if len(counts) > 1:
        hist = sorted(counts)
        raise StackError(
            f"positions are repeated unevenly ({hist[0]} to {hist[-1]} images per position): "
            "an incomplete time series or mixed acquisitions")
    n_time = counts.pop()
    if n_time > 1 and len(groups) == 1:
        raise StackError(
            f"all {n_time} images lie at the same position: a repeated single slice, not a volume")
    for g in groups:
        g.sort(key=lambda f: f.temporal_key)
    return [[g[t] for g in groups] for t in range(n_time)]


def plan_stack(frames: list[FrameRecord]) -> StackPlan:
    """Sort, check and place ``frames`` (one orientation, one size); raise StackError if impossible."""
    if not frames:
        raise StackError("no frames")
    first = frames[0]
    rows, cols = first.file.rows, first.file.columns
    one_file = all(f.file is first.file for f in frames)
    no_geometry = first.orientation is None or any(f.position is None for f in frames)
    if one_file and (no_geometry or (len(frames) > 1 and _all_same_position(frames))):
        return _plan_without_geometry(frames)
    if no_geometry:
        raise StackError(
            f"{len(frames)} images from different files without ImagePositionPatient/ImageOrientationPatient: "
            "they cannot be ordered in space")
    row, col, n = _normal(first.orientation)
    sy, sx = first.pixel_spacing or (1.0, 1.0)
    warnings: list[str] = []
    if first.pixel_spacing is None:
        warnings.append("no PixelSpacing: assuming 1 mm pixels")

    timepoints = _split_timepoints(frames, n)
    stack = timepoints[0]
    if len(timepoints) > 1:
        for t, other in enumerate(timepoints[1:], start=1):
            a = np.array([f.position for f in stack])
            b = np.array([f.position for f in other])
            if np.max(np.linalg.norm(a - b, axis=1)) > POSITION_TOL_MM:
                raise StackError(f"time point {t + 1} has different slice positions from the first")
    positions = np.array([f.position for f in stack], dtype=float)
    p0 = positions[0]
    offsets = positions - p0
    t_along = offsets @ n  # ascending by construction
    inplane = offsets - np.outer(t_along, n)

    shift_px = None
    if len(stack) > 1:
        span = t_along[-1] - t_along[0]
        if span <= POSITION_TOL_MM:
            raise StackError("slices do not advance along the slice normal")
        # In-plane drift proportional to the distance along the normal is a gantry tilt.
        w = inplane[-1] / span
        residual = inplane - np.outer(t_along, w)
        if np.max(np.linalg.norm(residual, axis=1)) > max(0.1, 0.25 * min(sx, sy)):
            raise StackError("slice positions do not lie on a line: images from different stacks mixed together")
        drift_px = np.max(np.abs(inplane @ np.c_[row / sx, col / sy]))
        if drift_px > 0.05:
            tilt_deg = float(np.degrees(np.arctan(np.linalg.norm(w))))
            shift_px = [(float(s @ col / sy), float(s @ row / sx)) for s in inplane]
            warnings.append(
                f"gantry tilt of {tilt_deg:.1f}°: slices resampled onto an orthogonal grid "
                f"(in-plane shift up to {drift_px:.1f} px); the original slices are sheared")

    slice_index, missing, resample_z, dz = _place_along_normal(t_along, first, warnings)
    nz = int(round(slice_index[-1])) + 1 if len(stack) > 1 else 1
    if resample_z:
        nz = int(round((t_along[-1] - t_along[0]) / dz)) + 1
        if nz > 4 * len(stack) + 4:
            raise StackError(f"slice spacing is too irregular to resample ({len(stack)} images would span {nz} slices)")
    geometry = Geometry((nz, rows, cols), (dz, sy, sx), tuple(p0), np.c_[row, col, n])
    if len(timepoints) > 1:
        warnings.append(f"{len(timepoints)} time points / volumes at each position (4D series)")
    return StackPlan(geometry, timepoints, slice_index, shift_px, resample_z, missing, warnings)


def _place_along_normal(t_along: np.ndarray, first: FrameRecord, warnings: list[str]):
    """Output z index of every slice; detects missing slices and uneven spacing."""
    if len(t_along) == 1:
        dz = first.slice_thickness or 1.0
        return [0.0], [], False, float(dz)
    diffs = np.diff(t_along)
    dz = float(np.median(diffs))
    tol = max(0.01, 0.02 * dz)
    if np.all(np.abs(diffs - dz) <= tol):
        dz = float((t_along[-1] - t_along[0]) / (len(t_along) - 1))
        return [float(k) for k in range(len(t_along))], [], False, dz
    steps = diffs / dz
    if np.all(np.abs(steps - np.rint(steps)) <= 0.05) and np.all(np.rint(steps) >= 1):
        index = np.concatenate([[0.0], np.cumsum(np.rint(steps))])
        if index[-1] + 1 > 2 * len(t_along) + 2:
            raise StackError(
                f"slice positions span {index[-1] + 1:.0f} slices of {dz:.2f} mm but there are only "
                f"{len(t_along)} images: too sparse to be one volume")
        dz = float((t_along[-1] - t_along[0]) / index[-1])
        present = set(int(v) for v in index)
        missing = [k for k in range(int(index[-1]) + 1) if k not in present]
        where = ", ".join(f"{t_along[0] + k * dz:.1f}" for k in missing[:5]) + ("…" if len(missing) > 5 else "")
        warnings.append(
            f"{len(missing)} missing slice(s) (gap in the {dz:.2f} mm spacing at {where} mm along the normal): "
            "shown as empty slices")
        return [float(v) for v in index], missing, False, dz
    lo, hi = float(diffs.min()), float(diffs.max())
    dz = lo if lo > 0 else dz
    warnings.append(
        f"irregular slice spacing ({lo:.2f} to {hi:.2f} mm): resampled to a uniform {dz:.2f} mm grid "
        "by linear interpolation between neighbouring slices")
    return [float(v) for v in (t_along - t_along[0]) / dz], [], True, dz


def _all_same_position(frames: list[FrameRecord]) -> bool:
    p = np.array([f.position for f in frames], dtype=float)
    return bool(np.max(np.linalg.norm(p - p[0], axis=1)) <= POSITION_TOL_MM)


def _plan_without_geometry(frames: list[FrameRecord]) -> StackPlan:
    """Frames of one file with no per-frame placement: a stack in file order, in image coordinates."""
    f = frames[0]
    sy, sx = f.pixel_spacing or (1.0, 1.0)
    frames = sorted(frames, key=lambda fr: fr.frame)
    geometry = Geometry((len(frames), f.file.rows, f.file.columns), (f.slice_thickness or 1.0, sy, sx), (0.0, 0.0, 0.0))
    if len(frames) == 1:
        note = "no patient position/orientation: shown in image coordinates"
    else:
        note = (f"{len(frames)} frames without individual positions (a cine loop or an unplaced stack): "
                "shown in file order in image coordinates, not as a volume in patient space")
    return StackPlan(geometry, [frames], [float(k) for k in range(len(frames))], warnings=[note])
