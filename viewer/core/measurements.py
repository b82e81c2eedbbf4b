"""Measurement geometry in patient coordinates (LPS mm): pure functions on point arrays.

Every function takes the annotation kind and its points (``(n, 3)`` LPS) and
knows nothing of screens or Qt. Point layouts per kind:

==========  ======================================================================
kind        points
==========  ======================================================================
length      two end points
angle       three points; the angle is at the middle one (the vertex)
ellipse     the end points of the major axis, then of the minor axis (as DICOM
            SCOORD3D ELLIPSE)
rectangle   four corners in drawing order (a closed polygon, first point not
            repeated)
arrow       the tip, then the tail
==========  ======================================================================

ROI statistics sample the volume's voxels of the slice the ROI was drawn on
whose centres lie inside the shape (nearest slice along the array axis
closest to the plane's normal); area is the shape's exact area.
"""
from __future__ import annotations

import math

import numpy as np

KINDS = ("length", "angle", "ellipse", "rectangle", "arrow")
N_POINTS = {"length": 2, "angle": 3, "ellipse": 4, "rectangle": 4, "arrow": 2}
UNITS = {"length": "mm", "angle": "deg", "ellipse": "", "rectangle": "", "arrow": ""}
ROI_KINDS = ("ellipse", "rectangle")
#: Points of the sampled outline of an ellipse.
ELLIPSE_SEGMENTS = 72


def _pts(points) -> np.ndarray:
    return np.asarray(points, dtype=float).reshape(-1, 3)


# --- values ---------------------------------------------------------------------------
def length_mm(points) -> float:
    """Distance (mm) between the two end points."""
    p = _pts(points)
    return float(np.linalg.norm(p[1] - p[0]))


def angle_deg(points) -> float:
    """Angle (degrees, 0-180) at the middle point between the arms to the first and the third."""
    p = _pts(points)
    u, v = p[0] - p[1], p[2] - p[1]
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0))))


def roi_area_mm2(kind: str, points) -> float:
    p = _pts(points)
    if kind == "ellipse":
        return float(math.pi * np.linalg.norm(p[1] - p[0]) / 2 * np.linalg.norm(p[3] - p[2]) / 2)
    if kind == "rectangle":
        return float(np.linalg.norm(np.cross(p[1] - p[0], p[3] - p[0])))
    raise ValueError(f"{kind} is not a region of interest")


# --- shapes from a drag ------------------------------------------------------------------
def ellipse_from_corners(corner_a, corner_b, right, down) -> np.ndarray:
    """The ellipse inscribed in the box with opposite corners ``corner_a``/``corner_b``.

    ``right``/``down`` are the in-plane unit vectors (LPS) the box is aligned
    with (the view's screen axes). Returns the four axis end points, major axis first.
    """
    a, b = np.asarray(corner_a, float), np.asarray(corner_b, float)
    right, down = np.asarray(right, float), np.asarray(down, float)
    centre = (a + b) / 2
    half_w = abs((b - a) @ right) / 2
    half_h = abs((b - a) @ down) / 2
    horizontal = [centre - half_w * right, centre + half_w * right]
    vertical = [centre - half_h * down, centre + half_h * down]
    return np.array(horizontal + vertical if half_w >= half_h else vertical + horizontal)


def rectangle_from_corners(corner_a, corner_b, right, down) -> np.ndarray:
    """The four corners (in order around) of the box with opposite corners ``corner_a``/``corner_b``."""
    a, b = np.asarray(corner_a, float), np.asarray(corner_b, float)
    right, down = np.asarray(right, float), np.asarray(down, float)
    w, h = (b - a) @ right, (b - a) @ down
    return np.array([a, a + w * right, a + w * right + h * down, a + h * down])


def _ordered_ellipse(centre, axis_1, axis_2) -> np.ndarray:
    """Axis end points from the centre and two semi-axis vectors, major axis first."""
    if np.linalg.norm(axis_2) > np.linalg.norm(axis_1):
        axis_1, axis_2 = axis_2, axis_1
    return np.array([centre - axis_1, centre + axis_1, centre - axis_2, centre + axis_2])


# --- outlines and editing --------------------------------------------------------------------
def outline(kind: str, points, segments: int = ELLIPSE_SEGMENTS) -> np.ndarray:
    """The drawn shape as a polyline (LPS); closed shapes repeat their first point at the end."""
    p = _pts(points)
    if kind == "ellipse":
        centre = (p[0] + p[1]) / 2
        a, b = (p[1] - p[0]) / 2, (p[3] - p[2]) / 2
        t = np.linspace(0, 2 * math.pi, segments + 1)
        return centre + np.outer(np.cos(t), a) + np.outer(np.sin(t), b)
    if kind == "rectangle":
        return np.vstack([p, p[:1]])
    return p


def is_closed(kind: str) -> bool:
    return kind in ROI_KINDS


def moved_points(points, delta) -> np.ndarray:
    return _pts(points) + np.asarray(delta, dtype=float)


def with_handle_moved(kind: str, points, index: int, target) -> np.ndarray:
    """The points after dragging handle ``index`` (one of the points) to ``target``.

    Lines, angles and arrows move that point. A rectangle keeps the opposite
    corner and its edge directions. An ellipse keeps the opposite end of that
    axis, and the other axis is re-centred.
    """
    p = _pts(points).copy()
    target = np.asarray(target, dtype=float)
    if kind == "rectangle":
        opposite = p[(index + 2) % 4]
        e1, e2 = p[1] - p[0], p[3] - p[0]
        n1, n2 = np.linalg.norm(e1), np.linalg.norm(e2)
        if n1 == 0 or n2 == 0:
            p[index] = target
            return p
        u, v = e1 / n1, e2 / n2
        d = target - opposite
        du, dv = (d @ u) * u, (d @ v) * v
        # edges 0→1 and 2→3 run along u, 1→2 and 3→0 along v
        along_u_next = index in (0, 2)
        corners = {index: opposite + du + dv, (index + 2) % 4: opposite,
                   (index + 1) % 4: opposite + (dv if along_u_next else du),
                   (index - 1) % 4: opposite + (du if along_u_next else dv)}
        return np.array([corners[i] for i in range(4)])
    if kind == "ellipse":
        pair = (0, 1) if index < 2 else (2, 3)
        other = (2, 3) if index < 2 else (0, 1)
        fixed = p[pair[1] if index == pair[0] else pair[0]]
        axis = p[index] - fixed
        n = np.linalg.norm(axis)
        if n == 0:
            return p
        unit = axis / n
        new_end = fixed + max((target - fixed) @ unit, 0.0) * unit
        centre = (fixed + new_end) / 2
        half_other = (p[other[1]] - p[other[0]]) / 2
        return _ordered_ellipse(centre, (new_end - fixed) / 2, half_other)
    p[index] = target
    return p


# --- ROI statistics ----------------------------------------------------------------------------
def _inside_grid(kind: str, points, linear) -> np.ndarray:
    """Which grid points lie inside the shape; ``linear(w, c)`` gives ``(q - c) · w`` over the grid."""
    p = _pts(points)
    eps = 1e-9
    if kind == "ellipse":
        centre = (p[0] + p[1]) / 2
        a, b = (p[1] - p[0]) / 2, (p[3] - p[2]) / 2
        aa, bb = a @ a, b @ b
        if aa == 0 or bb == 0:
            return np.zeros(linear(a, centre).shape, bool)
        return (linear(a, centre) / aa) ** 2 + (linear(b, centre) / bb) ** 2 <= 1 + eps
    e1, e2 = p[1] - p[0], p[3] - p[0]
    n1, n2 = e1 @ e1, e2 @ e2
    if n1 == 0 or n2 == 0:
        return np.zeros(linear(e1, p[0]).shape, bool)
    s, t = linear(e1, p[0]) / n1, linear(e2, p[0]) / n2
    return (s >= -eps) & (s <= 1 + eps) & (t >= -eps) & (t <= 1 + eps)


def slice_axis_for_normal(geometry, normal) -> int:
    """The array axis (0=z, 1=y, 2=x) whose direction is closest to ``normal``."""
    cos = np.abs(geometry.direction_matrix.T @ np.asarray(normal, float))  # for x, y, z
    return 2 - int(np.argmax(cos))


def roi_pixel_values(volume, kind: str, points, normal) -> np.ndarray | None:
    """Values of the voxels of the ROI's slice whose centres lie inside it; None off the volume or for colour."""
    if volume is None or volume.is_color:
        return None
    g = volume.geometry
    axis = slice_axis_for_normal(g, normal)
    shape = np.asarray(g.shape_zyx)
    ring = outline(kind, points)
    idx = g.world_to_index(ring)
    k = int(np.rint(idx[:, axis].mean()))
    if not 0 <= k < shape[axis]:
        return None
    lo = np.clip(np.floor(idx.min(axis=0)) - 1, 0, shape - 1).astype(int)
    hi = np.clip(np.ceil(idx.max(axis=0)) + 1, 0, shape - 1).astype(int)
    o1, o2 = (a for a in range(3) if a != axis)
    d1, d2 = np.arange(hi[o1] - lo[o1] + 1), np.arange(hi[o2] - lo[o2] + 1)
    first = np.zeros(3)
    first[axis], first[o1], first[o2] = k, lo[o1], lo[o2]
    base = g.index_to_world(first)
    step1, step2 = g.axes_lps[2 - o1], g.axes_lps[2 - o2]  # LPS step of one voxel along each in-plane axis

    def linear(w, c):  # (voxel centre - c) · w over the (o1, o2) grid, without building the points
        return (base - c) @ w + d1[:, None] * (step1 @ w) + d2[None, :] * (step2 @ w)

    mask = _inside_grid(kind, points, linear)
    index = [slice(None)] * 3
    index[axis], index[o1], index[o2] = k, slice(lo[o1], hi[o1] + 1), slice(lo[o2], hi[o2] + 1)
    return np.asarray(volume.array[tuple(index)][mask], dtype=float)


def roi_stats(volume, kind: str, points, normal) -> dict:
    """mean, sd (population), min, max of the voxels inside (None where there are none) and area_mm2."""
    values = roi_pixel_values(volume, kind, points, normal)
    stats = {"mean": None, "sd": None, "min": None, "max": None, "area_mm2": roi_area_mm2(kind, points)}
    if values is not None and values.size:
        stats.update(mean=float(values.mean()), sd=float(values.std()), min=float(values.min()),
                     max=float(values.max()))
    return stats


# --- where a shape crosses another plane ------------------------------------------------------
def cross_section(kind: str, points, normal, point, half_thickness: float) -> list[np.ndarray]:
    """The parts of the shape within ``half_thickness`` mm of the plane (``normal``, ``point``).

    Returns polylines (LPS, ``(n, 3)``): the whole outline when it lies in
    the slab, edges that lie in it, and where the shape crosses the plane: a
    chord (two points) for a closed shape, single points for lines.
    """
    ring = outline(kind, points)
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    d = (ring - np.asarray(point, float)) @ n
    near = np.abs(d) <= half_thickness
    if near.all():
        return [ring]
    pieces: list[np.ndarray] = []
    crossings: list[np.ndarray] = []
    for i in range(len(ring) - 1):
        d0, d1 = d[i], d[i + 1]
        if near[i] and near[i + 1]:
            pieces.append(ring[i:i + 2])
        elif d0 == 0 or d0 * d1 < 0:
            t = d0 / (d0 - d1)
            crossings.append(ring[i] + t * (ring[i + 1] - ring[i]))
    if not is_closed(kind) and d[-1] == 0:
        crossings.append(ring[-1])
    if not crossings:
        return pieces
    pts = np.unique(np.round(np.array(crossings), 6), axis=0)
    if is_closed(kind) and len(pts) >= 2:
        direction = pts[-1] - pts[0]
        order = np.argsort(pts @ direction)
        pts = pts[order]
        pieces.extend(pts[i:i + 2] for i in range(0, len(pts) - 1, 2))
    else:
        pieces.extend(p[None, :] for p in pts)
    return pieces
