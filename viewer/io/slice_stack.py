"""Turn a set of 2D frames that share orientation and size into a volume plan.

Frames are sorted by their position along the slice normal (never by instance
number or file name). Repeated positions become time points (4D); missing
slices, irregular spacing and gantry tilt are detected and reported, and the
plan says how the loader places every frame on a regular orthogonal grid.

Odd series still open. Variable slice spacing (a head CT at 4 mm, then 7 mm) is
resampled onto a regular grid at the smallest native spacing: a frame that lies
on a grid plane is kept as it is, a grid plane between two frames is the linear
interpolation of those two, each at its own position. A slice that cannot take
part (no usable position; one lying far away from the rest at an end of the
stack) is dropped with its reason, and the warning says where the gap is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from radview_base.geometry import Geometry
from viewer.io.dicom_header import FrameRecord

POSITION_TOL_MM = 0.01
#: a grid never holds more slices than this many per source image (plus :data:`GRID_SLACK`): the plan stays
#: bounded whatever the positions say
GRID_PER_IMAGE = 8
GRID_SLACK = 64
#: an end slice farther than this from its neighbour (and than OUTLIER_STEPS spacings) is not part of the stack
OUTLIER_MM = 50.0
OUTLIER_STEPS = 20


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
    #: frames left out of the volume, each with its reason (given to plan_stack, or found here: outliers)
    dropped: list[tuple[FrameRecord, str]] = field(default_factory=list)

    @property
    def n_timepoints(self) -> int:
        return len(self.frames)

    def plane_label(self, z: float) -> str:
        """Where output plane ``z`` lies, for a message: ``"z=201.0 mm"`` (the patient axis the slice normal runs
        along), or ``"201.0 mm along the slice normal"`` for oblique slices."""
        g = self.geometry
        n = g.direction_matrix[:, 2]
        point = g.index_to_world(np.array([[z, 0.0, 0.0]]))[0]
        axis = int(np.argmax(np.abs(n)))
        if abs(n[axis]) > 0.9:
            return f"{'xyz'[axis]}={point[axis]:.1f} mm"
        return f"{float(point @ n):.1f} mm along the slice normal"


def drop_warning(plan: StackPlan, dropped: list[tuple[str, str]], n_total: int, gaps: list[float],
                 bridged: bool = False) -> str:
    """``"1 slice of 134 dropped (1-067.dcm: reason); a gap at z=201.0 mm, shown as an empty slice"``.

    ``dropped``: (file path or name, reason) per slice; ``gaps``: output planes left empty; ``bridged``: the
    resampling interpolates across where the slices were (no empty plane).
    """
    n = len(dropped)
    shown = "; ".join(f"{os.path.basename(name)}: {_short(reason, name)}" for name, reason in dropped[:3])
    more = f"; and {n - 3} more" if n > 3 else ""
    text = f"{n} slice{'s' if n != 1 else ''} of {n_total} dropped ({shown}{more})"
    if gaps:
        where = ", ".join(plan.plane_label(z) for z in gaps[:5]) + ("…" if len(gaps) > 5 else "")
        return (f"{text}; {'a gap' if len(gaps) == 1 else f'{len(gaps)} empty slices'} at {where}, "
                f"shown as {'an empty slice' if len(gaps) == 1 else 'empty slices'}")
    if bridged:
        return f"{text}; the resampled grid interpolates across where {'it was' if n == 1 else 'they were'}"
    return f"{text}; no gap in the volume (at an end of the stack)"


def _short(reason: str, name: str) -> str:
    """The reason without a leading ``<path>: `` (the file is named already)."""
    for prefix in (f"{name}: ", f"{os.path.basename(name)}: "):
        if reason.startswith(prefix):
            return reason[len(prefix):]
    return reason


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


def plan_stack(frames: list[FrameRecord], dropped: list[tuple[FrameRecord, str]] | None = None) -> StackPlan:
    """Sort, check and place ``frames`` (one orientation, one size); raise StackError if impossible.

    ``dropped``: frames of the same series already left out, with their reasons (e.g. a NaN position); the plan
    reports them with the gap they leave, together with any it drops itself (an outlier at an end).
    """
    if not frames:
        raise StackError("no frames")
    dropped = list(dropped or [])
    n_total = len(frames) + len(dropped)
    first = frames[0]
    rows, cols = first.file.rows, first.file.columns
    one_file = all(f.file is first.file for f in frames)
    no_geometry = first.orientation is None or any(f.position is None for f in frames)
    if one_file and not dropped and (no_geometry or (len(frames) > 1 and _all_same_position(frames))):
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
    timepoints, outliers = _drop_outliers(timepoints, n)
    dropped.extend(outliers)
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

    slice_index, missing, resample_z, dz, nz = _place_along_normal(t_along, first, warnings)
    # (a resampled grid may start a little above the first slice, so that most slices lie on its planes)
    origin = p0 + (-slice_index[0] * dz) * n if resample_z else p0
    geometry = Geometry((nz, rows, cols), (dz, sy, sx), tuple(origin), np.c_[row, col, n])
    if len(timepoints) > 1:
        warnings.append(f"{len(timepoints)} time points / volumes at each position (4D series)")
    plan = StackPlan(geometry, timepoints, slice_index, shift_px, resample_z, missing, warnings, dropped)
    if dropped:
        what = [(fr.file.path, reason) for fr, reason in dropped]
        warnings.insert(0, drop_warning(plan, what, n_total, [float(k) for k in missing], bridged=resample_z))
    elif missing:
        where = ", ".join(plan.plane_label(k) for k in missing[:5]) + ("…" if len(missing) > 5 else "")
        warnings.append(f"{len(missing)} missing slice(s) (gap in the {dz:.2f} mm spacing at {where}): "
                        "shown as empty slices")
    return plan


def _drop_outliers(timepoints: list[list[FrameRecord]], n: np.ndarray):
    """Leave out slices at either end of the stack that lie far away from the rest (a position typed wrong, a
    stray image): at most three per end. Returns (time points, [(frame, reason)])."""
    stack = timepoints[0]
    if len(stack) < 4:
        return timepoints, []
    t_along = np.array([f.position for f in stack], dtype=float) @ n
    step = float(np.median(np.diff(t_along)))
    limit = max(OUTLIER_MM, OUTLIER_STEPS * step)
    lo, hi = 0, len(stack)
    for _ in range(3):
        if hi - lo >= 4 and t_along[lo + 1] - t_along[lo] > limit:
            lo += 1
    for _ in range(3):
        if hi - lo >= 4 and t_along[hi - 1] - t_along[hi - 2] > limit:
            hi -= 1
    if lo == 0 and hi == len(stack):
        return timepoints, []
    dropped = []
    for k in list(range(lo)) + list(range(hi, len(stack))):
        near = t_along[lo] if k < lo else t_along[hi - 1]
        reason = (f"lies {abs(t_along[k] - near):.0f} mm away from the rest of the stack (its neighbours are "
                  f"{step:.2f} mm apart): not part of this volume")
        dropped.extend((tp[k], reason) for tp in timepoints)
    return [tp[lo:hi] for tp in timepoints], dropped


def _place_along_normal(t_along: np.ndarray, first: FrameRecord, warnings: list[str]):
    """(output z index of every slice, missing output slices, resample?, spacing, number of output slices).

    Evenly spaced slices map one to one; a few absent slices of an even spacing leave empty output slices; any
    other spacing is resampled at the smallest native spacing (never refused: the grid stays bounded).
    """
    if len(t_along) == 1:
        dz = first.slice_thickness or 1.0
        return [0.0], [], False, float(dz), 1
    diffs = np.diff(t_along)
    dz = float(np.median(diffs))
    tol = max(0.01, 0.02 * dz)
    if np.all(np.abs(diffs - dz) <= tol):
        dz = float((t_along[-1] - t_along[0]) / (len(t_along) - 1))
        return [float(k) for k in range(len(t_along))], [], False, dz, len(t_along)
    steps = diffs / dz
    if np.all(np.abs(steps - np.rint(steps)) <= 0.05) and np.all(np.rint(steps) >= 1) \
            and not _runs_of_wider_steps(np.rint(steps)):
        index = np.concatenate([[0.0], np.cumsum(np.rint(steps))])
        if index[-1] + 1 <= 2 * len(t_along) + 2:
            dz = float((t_along[-1] - t_along[0]) / index[-1])
            present = set(int(v) for v in index)
            missing = [k for k in range(int(index[-1]) + 1) if k not in present]
            return [float(v) for v in index], missing, False, dz, int(index[-1]) + 1
    return _resample_plan(t_along, diffs, warnings)


def _runs_of_wider_steps(steps: np.ndarray, run: int = 3) -> bool:
    """Whether ``run`` or more consecutive equal steps wider than one slice occur: a section acquired at a wider
    spacing (4 mm, then 8 mm), not slices missing here and there."""
    count = 0
    for k, s in enumerate(steps):
        count = count + 1 if s > 1 and k > 0 and s == steps[k - 1] else (1 if s > 1 else 0)
        if count >= run:
            return True
    return False


def _native_spacing(diffs: np.ndarray) -> float:
    """The smallest spacing the series was acquired at: the smallest step that occurs at least twice (a one-off
    step between two sections does not count), else the smallest step."""
    ordered = np.sort(diffs)
    for k in range(len(ordered) - 1):
        tol = max(0.01, 0.02 * ordered[k])
        if ordered[k + 1] - ordered[k] <= tol:
            return float(np.mean(ordered[k:k + 2]))
    return float(ordered[0])


def _grid_start(t_along: np.ndarray, dz: float) -> float:
    """Where the first plane of a ``dz`` grid goes (at or within one spacing above the first slice): in phase with
    as many slices as possible, so that they are kept unchanged rather than interpolated."""
    phase = np.mod(t_along - t_along[0], dz)
    ordered = np.sort(phase)
    ring = np.concatenate([ordered - dz, ordered, ordered + dz])  # phases wrap around at dz
    hits = np.searchsorted(ring, phase + POSITION_TOL_MM, side="right") - np.searchsorted(
        ring, phase - POSITION_TOL_MM, side="left")
    best = float(phase[int(np.argmax(hits))])  # (ties: the lowest slice's phase)
    if best > dz - POSITION_TOL_MM:
        best = 0.0
    return float(t_along[0] + best)


def _resample_plan(t_along: np.ndarray, diffs: np.ndarray, warnings: list[str]):
    span = float(t_along[-1] - t_along[0])
    native = _native_spacing(diffs)
    cap = GRID_PER_IMAGE * len(t_along) + GRID_SLACK
    dz = native
    nz = int(np.floor(span / dz + 1e-3)) + 1
    note = ""
    if nz > cap:  # (positions absurd for a volume: keep the grid bounded rather than refuse)
        nz = cap
        dz = span / (nz - 1)
        note = (f" (the smallest native spacing, {native:.2f} mm, would need "
                f"{int(np.floor(span / native)) + 1} slices for {len(t_along)} images)")
    start = _grid_start(t_along, dz)
    if start > t_along[0]:
        nz = min(nz, int(np.floor((t_along[-1] - start) / dz + 1e-3)) + 1)
    index = (t_along - start) / dz
    on_plane = np.abs(index - np.rint(index)) * dz <= POSITION_TOL_MM
    index = np.where(on_plane, np.rint(index), index)  # a slice on a grid plane is that plane, exactly
    lo, hi = float(diffs.min()), float(diffs.max())
    warnings.append(
        f"variable slice spacing ({lo:.2f} to {hi:.2f} mm): resampled onto a regular {dz:.2f} mm grid{note}; "
        f"{int(on_plane.sum())} of {len(t_along)} slices lie on it unchanged, the other planes are linear "
        "interpolations between the two nearest slices at their own positions")
    return [float(v) for v in index], [], True, float(dz), nz


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
