"""Procedural chest CT phantom: HU volume, label map and nodule truth.

Everything is defined in millimetres in DICOM patient coordinates (LPS) and
rasterised onto a grid whose arrays are ``(z, y, x)``:

* column index ``i`` increases toward patient left  (+x),
* row index ``j`` increases toward posterior          (+y),
* slice index ``k`` increases toward superior          (+z),

so the grid's direction matrix is the identity and ``Grid.origin_lps`` is the
centre of voxel ``[0, 0, 0]`` (most inferior slice, right-anterior corner).
The phantom is deterministic for a given seed and grid.

The default seed gives the demo study.  Any other seed also varies the patient
(:class:`~viewer.demo.variation.Variation`): the marrow and cortical bone density (down to
osteoporotic marrow), the contrast phase (none, venous, arterial), the body size, a foam pad
under the back that touches the skin, clothing (a thin layer over the front with air pockets
under it), the number, sizes and types of the nodules, where the patient lies in the field of
view, and the lungs' own shape and volume (diaphragm domes, apices, the chest wall's fat).

The anatomy is painted in the patient's own frame (the demo's, centred on x = y = 0); a seeded
patient's offset moves that frame against the grid (``_anatomy_grid``), so every painter is the
demo's, and only the table (and what is reported in LPS: the nodule centres) is placed in the
scanner's frame.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

from viewer.demo.variation import BLOOD_HU, DEFAULT_SEED, NODULE_SPECS, Variation

__all__ = ["LABELS", "DEFAULT_SEED", "NODULE_SPECS", "BLOOD_HU", "Variation", "Grid", "Nodule", "Phantom",
           "make_phantom"]

LABELS: dict[int, str] = {
    1: "body",
    2: "lung_left",
    3: "lung_right",
    4: "airway",
    5: "heart",
    6: "aorta",
    7: "bone",
    8: "nodule",
}
BODY, LUNG_LEFT, LUNG_RIGHT, AIRWAY, HEART, AORTA, BONE, NODULE = range(1, 9)
LUNGS = (LUNG_LEFT, LUNG_RIGHT)

DEFAULT_SHAPE_ZYX = (160, 512, 512)
DEFAULT_SPACING_ZYX = (2.0, 0.75, 0.75)
Z_CENTRE_MM = -101.0  # z of the middle of the scanned range
HU_MIN, HU_MAX = -1024, 3071
BLUR_SIGMA_VOXELS = 0.7
NOISE_SD_HU = 15.0

NODULE_MARGIN_MM = 4.0  # free lung around every nodule (no pleura, mediastinum, airway)
_BODY_HALF_WIDTH_MM = 175.0  # the body is painted no wider (patient frame)
FOV_MARGIN_MM = 3.0  # free air between the widest body (clothing included) and the edge of the field of view

ProgressFn = Callable[[float, str], None]


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Grid:
    """Voxel grid with identity direction in LPS (see module docstring)."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    origin_lps: tuple[float, float, float]

    @classmethod
    def centred(cls, shape_zyx: Sequence[int], spacing_zyx: Sequence[float]) -> "Grid":
        """Grid centred on x = y = 0 and on ``Z_CENTRE_MM`` along z."""
        nz, ny, nx = (int(v) for v in shape_zyx)
        sz, sy, sx = (float(v) for v in spacing_zyx)
        origin = (-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, Z_CENTRE_MM - (nz - 1) / 2 * sz)
        return cls((nz, ny, nx), (sz, sy, sx), tuple(round(v, 6) for v in origin))

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates ``(z_mm, y_mm, x_mm)`` along each array axis."""
        return tuple(
            (o + s * np.arange(n)).astype(np.float32)
            for o, s, n in zip(self.origin_lps[::-1], self.spacing_zyx, self.shape_zyx)
        )

    def lps_to_index_zyx(self, point_lps: Sequence[float]) -> np.ndarray:
        """Continuous ``(k, j, i)`` index of an LPS point."""
        xyz = (np.asarray(point_lps, float) - self.origin_lps) / self.spacing_zyx[::-1]
        return xyz[::-1]


@dataclass(frozen=True)
class Nodule:
    id: int
    center_lps_mm: tuple[float, float, float]
    diameter_mm: float
    type: str  # "solid" | "ground-glass"
    label: str  # "lung_left" | "lung_right"


@dataclass(frozen=True)
class Phantom:
    hu_zyx: np.ndarray  # int16
    labels_zyx: np.ndarray  # uint8, ids of LABELS
    nodules: tuple[Nodule, ...]
    grid: Grid


# ------------------------------------------------------------------ rasterising
@dataclass
class _Box:
    """A sub-block of the grid with its broadcastable coordinates (mm)."""

    slices: tuple[slice, slice, slice]
    z: np.ndarray  # (nz, 1, 1)
    y: np.ndarray  # (1, ny, 1)
    x: np.ndarray  # (1, 1, nx)


class _Canvas:
    """HU + label volumes with bounding-box painting primitives."""

    def __init__(self, grid: Grid, variation: Optional[Variation] = None, offset_x_mm: float = 0.0):
        self.grid = grid  # the patient's own frame (the scanner's grid moved by the patient's offset)
        self.var = variation or Variation()
        self.offset_x_mm = float(offset_x_mm)  # the patient's midline in the scanner's x (for the table)
        self.hu = np.full(grid.shape_zyx, -1000.0, np.float32)
        self.labels = np.zeros(grid.shape_zyx, np.uint8)
        self.z, self.y, self.x = grid.axes_mm()

    def box(self, lo_xyz, hi_xyz) -> Optional[_Box]:
        idx = []
        for ax, (lo, hi) in zip((2, 1, 0), zip(lo_xyz, hi_xyz)):
            o = self.grid.origin_lps[2 - ax]
            s = self.grid.spacing_zyx[ax]
            n = self.grid.shape_zyx[ax]
            a = max(0, math.ceil((lo - o) / s))
            b = min(n, math.floor((hi - o) / s) + 1)
            if b <= a:
                return None
            idx.append(slice(a, b))
        sx, sy, sz = idx
        return _Box(
            (sz, sy, sx),
            self.z[sz][:, None, None],
            self.y[sy][None, :, None],
            self.x[sx][None, None, :],
        )

    def paint(self, box: Optional[_Box], mask, hu, label: Optional[int] = None,
              into: Optional[Sequence[int]] = None, mode: str = "set") -> None:
        """Write ``hu`` (scalar or box-shaped array) where ``mask``.

        ``into`` restricts painting to voxels whose current label is listed;
        ``mode="max"`` keeps the brighter of old and new value.
        """
        if box is None:
            return
        h = self.hu[box.slices]
        lab = self.labels[box.slices]
        m = np.broadcast_to(mask, h.shape)
        if into is not None:
            allowed = np.zeros(h.shape, bool)
            for v in into:
                allowed |= lab == v
            m = m & allowed
        if not m.any():
            return
        value = hu if np.isscalar(hu) else np.broadcast_to(hu, h.shape)[m]
        if mode == "max":
            h[m] = np.maximum(h[m], value)
        else:
            h[m] = value
        if label is not None:
            lab[m] = label

    # shapes ---------------------------------------------------------------
    def capsule(self, a, b, ra: float, rb: Optional[float] = None):
        """Box and mask of a tapered tube segment from ``a`` to ``b`` (LPS mm)."""
        ra = float(ra)
        rb = ra if rb is None else float(rb)
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        r = max(ra, rb)
        box = self.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if box is None:
            return None, None
        d = [float(v) for v in b - a]
        px, py, pz = box.x - float(a[0]), box.y - float(a[1]), box.z - float(a[2])
        l2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        if l2 < 1e-9:
            dist2 = px * px + py * py + pz * pz
            return box, dist2 <= ra * ra
        t = (px * d[0] + py * d[1] + pz * d[2]) / l2
        np.clip(t, 0.0, 1.0, out=t)
        dx = px - t * d[0]
        dy = py - t * d[1]
        dz = pz - t * d[2]
        dist2 = dx * dx + dy * dy + dz * dz
        rr = ra + (rb - ra) * t
        return box, dist2 <= rr * rr

    def tube(self, points, radii, hu, label=None, into=None, mode="set") -> None:
        """Paint a polyline tube (radius per point)."""
        for p0, p1, r0, r1 in zip(points[:-1], points[1:], radii[:-1], radii[1:]):
            box, m = self.capsule(p0, p1, r0, r1)
            self.paint(box, m, hu, label, into, mode)

    def ellipsoid(self, centre, semi_axes, rotation=None):
        """Box and local coordinates ``(u, v, w)`` of a rotated ellipsoid.

        ``rotation`` columns are the ellipsoid axes in LPS.
        """
        c = np.asarray(centre, np.float64)
        s = np.asarray(semi_axes, np.float64)
        rot = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        ext = np.sqrt(((rot * s) ** 2).sum(axis=1))
        box = self.box(c - ext, c + ext)
        if box is None:
            return None, None
        px, py, pz = box.x - float(c[0]), box.y - float(c[1]), box.z - float(c[2])
        r = [[float(v) for v in row] for row in rot]
        uvw = tuple(px * r[0][j] + py * r[1][j] + pz * r[2][j] for j in range(3))
        return box, uvw

    def ball_ok(self, centre, radius: float, label: int) -> bool:
        """True if every voxel within ``radius`` of ``centre`` has ``label``."""
        c = np.asarray(centre, np.float64)
        box = self.box(c - radius, c + radius)
        if box is None:
            return False
        cx, cy, cz = (float(v) for v in c)
        d2 = (box.x - cx) ** 2 + (box.y - cy) ** 2 + (box.z - cz) ** 2
        inside = np.broadcast_to(d2 <= float(radius) ** 2, self.labels[box.slices].shape)
        full = [math.floor(2 * radius / s) for s in self.grid.spacing_zyx]
        if any(sl.stop - sl.start < f for sl, f in zip(box.slices, full)):
            return False  # ball sticks out of the grid
        return bool(np.all(self.labels[box.slices][inside] == label))


def _q2(uvw, semi) -> np.ndarray:
    u, v, w = uvw
    a, b, c = (float(s) for s in semi)
    return (u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2


def _smooth_path(control_xyz, radii, step_mm: float = 4.0):
    """Cubic-spline resampling of a control polyline (and its radii)."""
    p = np.asarray(control_xyz, np.float64)
    r = np.asarray(radii, np.float64)
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
    n = max(2, int(math.ceil(chord[-1] / step_mm)) + 1)
    t = np.linspace(0.0, chord[-1], n)
    if len(p) == 2:
        pts = p[0] + (p[1] - p[0]) * (t / chord[-1])[:, None]
    else:
        pts = CubicSpline(chord, p, bc_type="natural")(t)
    return pts, np.interp(t, chord, r)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# ------------------------------------------------------------------- the torso
class _Torso:
    """Analytic body outline and layer thicknesses, shared by several painters."""

    def __init__(self, rng: np.random.Generator, scale: float = 1.0, fat=(1.0, 1.0, 1.0)):
        self.scale = scale
        self.fat_right, self.fat_left, self.fat_ap = (float(v) for v in fat)
        self.lob_m = (2, 3, 5)
        self.lob_phase = rng.uniform(0, 2 * np.pi, 3)
        self.lob_amp = rng.uniform(0.006, 0.018, 3)
        self.lob_wave = rng.uniform(0.5, 1.5, 3)

    def dims(self, z):
        """Half-width, anterior and posterior half-depth (mm) at height z."""
        s_top = _smoothstep(z / 55.0)
        s_bot = _smoothstep((-150.0 - z) / 100.0)
        a, ba, bp = 158 - 30 * s_top - 6 * s_bot, 100 - 18 * s_top + 6 * s_bot, 95 - 12 * s_top
        if self.scale == 1.0:
            return a, ba, bp
        return a * self.scale, ba * self.scale, bp  # the back stays on the table

    def lobulation(self, theta, z):
        eps = 0.0
        for m, ph, amp, wv in zip(self.lob_m, self.lob_phase, self.lob_amp, self.lob_wave):
            eps = eps + amp * (1 + 0.5 * np.sin(z / 70.0 * wv + ph)) * np.cos(m * theta + ph)
        return eps

    def fat_base(self, theta):
        base = 8.0 + 8.0 * np.sin(theta) ** 2 + np.where(np.cos(theta) < 0, 3.0, 0.0)
        if (self.fat_right, self.fat_left, self.fat_ap) == (1.0, 1.0, 1.0):
            return base
        s2 = np.sin(theta) ** 2
        side = np.where(np.sin(theta) > 0, self.fat_left, self.fat_right)
        return base * (self.fat_ap * (1.0 - s2) + side * s2)

    @staticmethod
    def fat_scale(z):
        return 1 + 0.6 * _smoothstep((-170.0 - z) / 80.0)

    @staticmethod
    def muscle_base(theta):
        pect = 5.0 * np.clip(-np.cos(theta), 0, None) ** 2
        return 11.0 + pect + 25.0 * np.exp(-(theta / 0.3) ** 2)

    @staticmethod
    def muscle_extra(z):
        return 6.0 * _smoothstep((z - 10.0) / 40.0)

    def fat_thickness(self, theta, z):
        return self.fat_base(theta) * self.fat_scale(z)

    def muscle_thickness(self, theta, z):
        return self.muscle_base(theta) + self.muscle_extra(z)

    def radius(self, theta, z):
        """Distance of the skin from the body axis along polar angle ``theta``.

        ``theta`` is measured from posterior (+y) toward patient left (+x).
        """
        a, ba, bp = self.dims(z)
        b = np.where(np.cos(theta) >= 0, bp, ba)
        r_ell = 1.0 / np.sqrt((np.sin(theta) / a) ** 2 + (np.cos(theta) / b) ** 2)
        return r_ell * (1 + self.lobulation(theta, z))

    def chest_wall_point(self, theta, z, depth_mm):
        """LPS point at ``depth_mm`` under the skin along ``theta`` (one side: x sign of sin)."""
        rho = self.radius(theta, z) - depth_mm
        return np.stack([rho * np.sin(theta), rho * np.cos(theta), np.broadcast_to(z, np.shape(rho))], -1)


def _dome_z(x, y, var: Variation):
    """Height of the diaphragm under each lung (right dome higher); a lowered dome is flatter."""
    def dome(top, cx, rise):
        fall = 0.012 * (x - cx) ** 2 + 0.005 * (y + 10) ** 2 + 0.25 * np.clip(y - 20, 0, None)
        return (top + rise) - (80.0 + min(rise, 0.0)) * np.tanh(fall / 80.0)  # deep but bounded recesses

    return np.maximum(dome(-158.0, -50.0, var.dome_right_mm), dome(-170.0, 50.0, var.dome_left_mm))


def _apex_z(x, y, var: Variation):
    return (52.0 + var.apex_mm) - 0.011 * ((np.abs(x) - 48) ** 2 + (y - 12) ** 2)


def _paint_torso(cv: _Canvas, torso: _Torso) -> None:
    """Table, skin/fat/muscle layers, mediastinal fat, abdomen and lungs, slice by slice."""
    x, y = cv.x, cv.y
    # scanner table: curved carbon shells around a foam core, full length, label 0
    X, Y = x[None, :], y[:, None]
    if cv.offset_x_mm != 0.0:  # the table is centred in the scanner, not under the patient's midline
        X = X + np.float32(cv.offset_x_mm)
    top = 100.0 - 0.0007 * X ** 2
    depth = Y - top
    shell = ((depth >= 0) & (depth < 2.5)) | ((depth >= 20) & (depth < 22.5))
    core = (depth >= 2.5) & (depth < 20)
    table = np.where(shell, 300.0, np.where(core, -850.0, np.nan)).astype(np.float32)
    tmask = ~np.isnan(table)
    cv.hu[:, tmask] = table[tmask]
    if cv.var.pad_mm > 0:  # a foam pad on the table; the body painted next lies on it
        pad = (depth < 0) & (depth >= -cv.var.pad_mm)
        cv.hu[:, pad] = np.where((depth[pad] >= -1.0) | (depth[pad] < -cv.var.pad_mm + 1.0), 60.0, -190.0)

    cols = np.flatnonzero(np.abs(x) <= _BODY_HALF_WIDTH_MM)
    rows = np.flatnonzero((y >= -125) & (y <= 110))
    if cols.size == 0 or rows.size == 0:
        return
    cs, rs = slice(cols[0], cols[-1] + 1), slice(rows[0], rows[-1] + 1)
    X, Y = x[cs][None, :], y[rs][:, None]
    X2, Ya2, Yp2 = X ** 2, Y ** 2 * (Y < 0), Y ** 2 * (Y >= 0)
    r = np.sqrt(X ** 2 + Y ** 2)
    theta = np.arctan2(X, Y)
    lob = [np.cos(m * theta + ph) for m, ph in zip(torso.lob_m, torso.lob_phase)]
    dome = _dome_z(X, Y, cv.var)
    apex = _apex_z(X, Y, cv.var)
    gap = np.abs(X) > 4.0
    lung_hu = (-860.0 + 0.35 * Y).astype(np.float32)
    lung_label = np.where(X > 0, LUNG_LEFT, LUNG_RIGHT).astype(np.uint8)
    abdomen_hu = np.where(X < 15.0 - 0.5 * Y, 58.0, 25.0).astype(np.float32)  # liver | other viscera
    fat_base = torso.fat_base(theta).astype(np.float32)
    muscle_base = torso.muscle_base(theta).astype(np.float32)
    for k, z in enumerate(cv.z.astype(np.float64)):
        a, ba, bp = torso.dims(z)
        eps = 0.0
        for lm, amp, wv, ph in zip(lob, torso.lob_amp, torso.lob_wave, torso.lob_phase):
            eps = eps + (amp * (1 + 0.5 * math.sin(z / 70.0 * wv + ph))) * lm
        rho = np.sqrt(X2 / a ** 2 + Ya2 / ba ** 2 + Yp2 / bp ** 2) / (1 + eps)
        inside = rho < 1
        depth = r / np.maximum(rho, 1e-6) - r
        t_fat = fat_base * float(torso.fat_scale(z))
        t_wall = t_fat + muscle_base + float(torso.muscle_extra(z))
        muscle = depth >= t_fat
        cavity = depth >= t_wall
        above = z > dome
        lung = cavity & above & (z < apex) & gap
        val = np.where(cavity, np.where(above, -80.0, abdomen_hu), np.where(muscle, 40.0, -100.0))
        val = np.where(lung, lung_hu, val)
        lab = np.where(lung, lung_label, BODY)
        hs = cv.hu[k, rs, cs]
        ls = cv.labels[k, rs, cs]
        if cv.var.clothing:  # a thin layer over the front, touching the skin in places, air pockets under it
            out = r - r / np.maximum(rho, 1e-6)
            gap_mm = 2.0 + 2.2 * np.sin(3.0 * theta + z / 40.0)
            cloth = ~inside & (Y < 20.0) & (out >= gap_mm) & (out < gap_mm + 1.5)
            hs[cloth] = -150.0
        hs[inside] = val[inside]
        ls[inside] = lab[inside]


# --------------------------------------------------------------- mediastinum
def _paint_heart(cv: _Canvas) -> None:
    """Myocardial envelope split into four contrast-filled chambers, thick LV wall."""
    centre = np.array([25.0, -28.0, -128.0])
    u = np.array([0.62, -0.55, -0.5])  # long axis, base -> apex
    u /= np.linalg.norm(u)
    n = np.array([1.0, 1.0, 0.0])  # right ventricle -> left ventricle
    n -= (n @ u) * u
    n /= np.linalg.norm(n)
    rot = np.stack([u, n, np.cross(u, n)], axis=1)
    semi = np.array([60.0, 46.0, 42.0])
    # pericardial fat replaces lung and chest-wall tissue around the heart
    box, uvw = cv.ellipsoid(centre, semi + 6.0, rot)
    cv.paint(box, _q2(uvw, semi + 6.0) <= 1, -85.0, BODY, into=(*LUNGS, BODY))
    box, uvw = cv.ellipsoid(centre, semi, rot)
    cv.paint(box, _q2(uvw, semi) <= 1, 40.0, HEART)
    along_u, along_n = uvw[0], uvw[1]
    inner = _q2(uvw, semi - 3.0) <= 1
    left = along_n > -4.0
    atria = along_u < -20.0
    walls = ((np.abs(along_n + 4.0) < 1.8) & atria) | ((np.abs(along_u + 20.0) < 1.5) & ~left)
    b = cv.var.blood
    hu = np.where(left, np.where(atria, b(270.0), b(280.0)), np.where(atria, b(200.0), b(225.0))).astype(np.float32)
    cv.paint(box, inner & ~walls, hu, HEART)
    # left ventricle: thick myocardial wall around its own cavity
    lv_centre = centre + 12.0 * u + 12.0 * n
    lv_cavity = np.array([34.0, 17.0, 19.0])
    box, uvw = cv.ellipsoid(lv_centre, lv_cavity + 10.0, rot)
    cv.paint(box, _q2(uvw, lv_cavity + 10.0) <= 1, 40.0, HEART)
    cv.paint(box, _q2(uvw, lv_cavity) <= 1, b(280.0), HEART)


def _paint_mediastinum(cv: _Canvas) -> None:
    """Fat envelopes that keep the lungs out of the central and posterior mediastinum."""
    z_top = float(cv.z.max()) + 5.0
    # (centre x, centre y, semi x, semi y, z low, z high)
    blocks = [(-6.0, -30.0, 38.0, 36.0, -100.0, 15.0), (-8.0, -18.0, 28.0, 32.0, 15.0, z_top),
              (12.0, 22.0, 27.0, 20.0, -200.0, z_top)]
    for cx, cy, ax, ay, z0, z1 in blocks:
        box = cv.box((cx - ax, cy - ay, z0), (cx + ax, cy + ay, z1))
        if box is None:
            continue
        taper = 1.0 - 0.25 * _smoothstep((box.z - (z1 - 25.0)) / 25.0)  # narrower toward the top
        e = ((box.x - cx) / (ax * taper)) ** 2 + ((box.y - cy) / ay) ** 2 <= 1
        cv.paint(box, e, -80.0, BODY, into=LUNGS)


def _paint_great_vessels(cv: _Canvas) -> None:
    """Aorta, pulmonary trunk, SVC/IVC and arch branches, with fat halos."""
    aorta_ctrl = [(-5, -32, -108), (-10, -44, -70), (-12, -48, -40), (-8, -48, -22),
                  (6, -40, -12), (22, -24, -12), (30, -4, -18), (31, 16, -30), (28, 26, -48),
                  (27, 26, -100), (25, 22, -170), (18, 12, -262)]
    aorta_r = [13, 15, 15, 14, 13.5, 13, 13, 12.5, 12.5, 12, 11.5, 11]
    pa_trunk = [(10, -60, -112), (12, -50, -82), (16, -32, -60)]
    pa_right = [(16, -32, -60), (0, -30, -64), (-25, -26, -66), (-48, -12, -70)]
    pa_left = [(16, -32, -60), (34, -16, -54), (50, -4, -58)]
    svc = [(-38, -30, 70), (-38, -32, 0), (-36, -32, -60), (-26, -28, -100)]
    ivc = [(-22, 8, -270), (-24, 4, -200), (-20, 0, -165)]
    branches = [
        ([(-2, -46, -16), (-14, -36, 10), (-26, -26, 40), (-30, -22, 70)], 7.0),
        ([(10, -40, -10), (13, -30, 20), (15, -22, 70)], 4.5),
        ([(24, -24, -10), (34, -16, 20), (50, -10, 45), (62, -8, 70)], 5.5),
    ]
    b = cv.var.blood
    vessels = [(aorta_ctrl, aorta_r, b(260.0), AORTA), (pa_trunk, [14, 14, 13], b(200.0), BODY),
               (pa_right, [11, 11, 10, 9], b(200.0), BODY), (pa_left, [11, 10, 9], b(200.0), BODY),
               (svc, [10, 10, 10, 11], b(160.0), BODY), (ivc, [12, 12, 12], b(110.0), BODY)]
    vessels += [(ctrl, [r] * len(ctrl), b(250.0), BODY) for ctrl, r in branches]
    paths = [(_smooth_path(c, r), hu, lab) for c, r, hu, lab in vessels]
    for (pts, rad), _, _ in paths:  # fat halos first so no vessel is overwritten by another's halo
        cv.tube(pts, rad + 6.0, -80.0, BODY, into=LUNGS)
    for (pts, rad), hu, lab in paths:
        if lab == AORTA:
            cv.tube(pts, rad, 40.0, AORTA, into=(BODY, *LUNGS, HEART, AORTA))
            cv.tube(pts, rad - 2.0, hu, AORTA, into=(BODY, *LUNGS, HEART, AORTA))
        else:
            cv.tube(pts, rad, hu, lab, into=(BODY, *LUNGS))


def _paint_esophagus(cv: _Canvas) -> None:
    pts, rad = _smooth_path([(-2, 14, 70), (0, 16, -60), (8, 12, -150), (30, -4, -205), (50, -14, -222)],
                            [7, 7, 7, 7, 8])
    cv.tube(pts, rad + 4.0, -80.0, BODY, into=LUNGS)
    cv.tube(pts, rad, 40.0, BODY, into=(BODY, *LUNGS))
    keep = pts[:, 2] > -170
    cv.tube(pts[keep], np.full(keep.sum(), 2.0), -900.0, BODY, into=(BODY,))


def _paint_abdomen(cv: _Canvas) -> None:
    """Stomach with an air cap under the left dome."""
    centre, semi = (62.0, -22.0, -240.0), (45.0, 38.0, 38.0)
    box, uvw = cv.ellipsoid(centre, semi)
    inside = _q2(uvw, semi) <= 1
    cv.paint(box, inside, 40.0, BODY, into=(BODY,))
    cv.paint(box, inside & (_q2(uvw, np.subtract(semi, 4)) <= 1), 15.0, BODY, into=(BODY,))
    air = inside & (_q2(uvw, np.subtract(semi, 4)) <= 1) & (box.z > centre[2] + 24)
    cv.paint(box, air, -950.0, BODY, into=(BODY,))


# ----------------------------------------------------------------------- bones
def _paint_spine(cv: _Canvas, rng: np.random.Generator) -> None:
    """Vertebral bodies (cortex + cancellous bone), discs, canal, posterior elements."""
    z_top = float(cv.z.max()) + 12.0
    z_bottom = float(cv.z.min()) - 30.0
    period, height = 28.0, 22.0
    zt = z_top
    while zt > z_bottom:
        zb = zt - height
        zm = 0.5 * (zt + zb)
        rx = 14.0 + 0.025 * (60.0 - zm)
        ry = 12.0 + 0.02 * (60.0 - zm)
        yc = 40.0
        canal_y = yc + ry + 7.0
        cancellous = cv.var.marrow(230.0 + rng.uniform(-25, 25))
        # paravertebral soft tissue pushes the lungs away from the vertebra
        box = cv.box((-rx - 6, yc - ry - 6, zb - 6), (rx + 6, yc + ry + 6, zt + 6))
        if box is not None:
            e = (box.x / (rx + 5)) ** 2 + ((box.y - yc) / (ry + 5)) ** 2 <= 1
            cv.paint(box, e, 15.0, BODY, into=LUNGS)
        # vertebral body
        box = cv.box((-rx, yc - ry, zb), (rx, yc + ry, zt))
        if box is not None:
            e_out = (box.x / rx) ** 2 + ((box.y - yc) / ry) ** 2 <= 1
            e_in = (box.x / (rx - 2.0)) ** 2 + ((box.y - yc) / (ry - 2.0)) ** 2 <= 1
            endplate = (box.z > zt - 1.5) | (box.z < zb + 1.5)
            hu = np.where(e_in & ~endplate, cancellous, cv.var.cortex(950.0)).astype(np.float32)
            cv.paint(box, e_out, hu, BONE)
        # disc below the body
        box = cv.box((-rx, yc - ry, zb - (period - height)), (rx, yc + ry, zb))
        if box is not None:
            e = (box.x / rx) ** 2 + ((box.y - yc) / ry) ** 2 <= 1
            cv.paint(box, e & (box.z < zb), 85.0, BODY)
        # neural arch, canal, cord, spinous and transverse processes
        box = cv.box((-34, canal_y - 14, zb), (34, canal_y + 34, zt))
        if box is not None:
            dx, dy = box.x, box.y - canal_y
            d2 = dx ** 2 + dy ** 2
            upper = box.z > zb + 0.3 * height
            arch = (d2 <= 13.0 ** 2) & (d2 > 8.0 ** 2)
            spinous = (np.abs(dx) <= 3.5) & (dy > 10) & (dy < 30 - 0.3 * (zt - box.z)) & upper
            tp_t = np.clip((np.abs(dx) - 9.0) / 19.0, 0, 1)
            tp = ((np.abs(dx) - 9.0 - 19.0 * tp_t) ** 2 + (dy - 5.0 * tp_t) ** 2 <= 4.5 ** 2) & upper
            cv.paint(box, arch | spinous | tp, cv.var.cortex(600.0), BONE)
            cv.paint(box, d2 <= 8.0 ** 2, 10.0, BODY)
            cv.paint(box, d2 <= 5.0 ** 2, 35.0, BODY)
        zt -= period


def _paint_ribs_sternum_clavicles(cv: _Canvas, torso: _Torso, rng: np.random.Generator) -> None:
    """Curved cortical/medullary rib tubes, costal cartilage, sternum and clavicles."""
    into = (BODY,)
    r_rib = 4.6
    sternum_y = {}

    def sternum_front(z):
        theta = np.pi
        depth = torso.fat_thickness(theta, z) + 0.5 * torso.muscle_thickness(theta, z)
        return -(float(torso.radius(theta, z)) - depth)

    # sternum: manubrium, body, xiphoid; flat ellipse per slice
    for k, z in enumerate(cv.z.astype(np.float64)):
        if not (-168.0 <= z <= -2.0):
            continue
        half_w = 24.0 if z > -42 else (15.0 if z > -150 else 9.0)
        half_d = 6.5 if z > -150 else 4.0
        yc = sternum_front(z)
        sternum_y[k] = yc
        dz = 0.25 * cv.grid.spacing_zyx[0]
        box = cv.box((-half_w, yc - half_d, z - dz), (half_w, yc + half_d, z + dz))
        if box is None:
            continue
        e_out = (box.x / half_w) ** 2 + ((box.y - yc) / half_d) ** 2 <= 1
        e_in = (box.x / (half_w - 1.5)) ** 2 + ((box.y - yc) / (half_d - 1.5)) ** 2 <= 1
        hu = np.where(e_in, cv.var.marrow(240.0), cv.var.cortex(850.0)).astype(np.float32)
        cv.paint(box, e_out, hu, BONE, into=into)

    # ribs: posterior end near the transverse process, running laterally and
    # anteriorly just inside the muscle layer, descending toward the front
    ends = {1: 2.70, 2: 2.80, 3: 2.80, 4: 2.85, 5: 2.85, 6: 2.85, 7: 2.80,
            8: 2.55, 9: 2.35, 10: 2.15, 11: 1.65, 12: 1.15}
    for side in (-1.0, 1.0):
        for i in range(1, 13):
            z_post = 42.0 - 21.5 * (i - 1) + rng.uniform(-1.5, 1.5)
            theta_end = ends[i] + rng.uniform(-0.04, 0.04)
            drop = (30.0 if i == 1 else 78.0 + 2.5 * i) + rng.uniform(-5, 5)
            theta = side * np.linspace(0.22, theta_end, 40)
            s = (np.abs(theta) - 0.22) / (np.pi - 0.22)
            z = z_post - drop * s ** 1.15 + 8.0 * np.sin(np.pi * s)
            depth = torso.fat_thickness(theta, z) + torso.muscle_thickness(theta, z) - r_rib - 0.5
            pts = torso.chest_wall_point(theta, z, depth)
            radius = np.full(len(pts), r_rib)
            radius[:3] = [3.5, 4.2, 4.8]
            cv.tube(pts, radius, cv.var.cortex(800.0), BONE, into=into)
            cv.tube(pts, radius - 1.6, cv.var.marrow(230.0), BONE, into=(BONE,))
            if i <= 7:  # costal cartilage to the sternum edge
                zc = min(max(float(z[-1]) + (4.0 if i > 2 else 0.0), -160.0), -5.0)
                kc = int(round(cv.grid.lps_to_index_zyx((0, 0, zc))[0]))
                yc = sternum_y.get(kc, float(pts[-1, 1]))
                half_w = 24.0 if zc > -42 else 15.0
                end = np.array([side * (half_w - 2.0), yc, zc])
                cart = np.stack([pts[-1], 0.5 * (pts[-1] + end) + (0, -3.0, 0), end])
                cv.tube(cart, np.array([4.5, 4.2, 4.0]), 120.0, BODY, into=into)
        # clavicle
        pts, rad = _smooth_path([(side * 14, -84, 40), (side * 60, -82, 52), (side * 105, -62, 62),
                                 (side * 125, -40, 64)], [7, 6.5, 6, 7])
        cv.tube(pts, rad, cv.var.cortex(800.0), BONE, into=into)
        cv.tube(pts, rad - 1.8, cv.var.marrow(240.0), BONE, into=(BONE,))


# -------------------------------------------------------------- branching trees
def _lung_points(cv: _Canvas, label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random LPS points inside lung ``label``."""
    step = (1, max(1, round(3.0 / cv.grid.spacing_zyx[1])), max(1, round(3.0 / cv.grid.spacing_zyx[2])))
    sub = cv.labels[:: step[0], :: step[1], :: step[2]] == label
    k, j, i = np.nonzero(sub)
    if k.size == 0:
        return np.zeros((0, 3))
    pick = rng.choice(k.size, size=min(n, k.size), replace=False)
    sz, sy, sx = cv.grid.spacing_zyx
    o = cv.grid.origin_lps
    pts = np.stack([o[0] + i[pick] * step[2] * sx, o[1] + j[pick] * step[1] * sy,
                    o[2] + k[pick] * step[0] * sz], axis=1)
    return pts + rng.uniform(-0.5, 0.5, pts.shape) * (sx, sy, sz)


def _grow_tree(root, root_radius: float, targets: np.ndarray, rng: np.random.Generator,
               min_radius: float, fraction: float = 0.45, wiggle: float = 0.12):
    """Recursive attractor-splitting tree.

    Each node grows a fraction of the way toward the centroid of the targets it
    owns, then splits them along their principal axis between two children whose
    radii follow Murray's law (r**3 proportional to the number of targets).
    Returns segments ``(a, b, r_a, r_b, generation)``.
    """
    segments = []
    stack = [(np.asarray(root, float), float(root_radius), targets, 0)]
    while stack:
        start, r, pts, gen = stack.pop()
        if len(pts) == 0:
            continue
        if len(pts) == 1:
            segments.append((start, pts[0], r, max(min_radius, 0.7 * r), gen))
            continue
        centroid = pts.mean(axis=0)
        f = fraction * (0.7 if gen == 0 else 1.0)
        node = start + f * (centroid - start)
        seg = node - start
        length = float(np.linalg.norm(seg))
        if length > 6.0:  # a gentle random bend
            perp = rng.standard_normal(3)
            perp -= (perp @ seg) / (length ** 2) * seg
            perp /= max(np.linalg.norm(perp), 1e-9)
            mid = start + 0.5 * seg + wiggle * length * rng.uniform(0.3, 1.0) * perp
            segments.append((start, mid, r, 0.97 * r, gen))
            segments.append((mid, node, 0.97 * r, 0.94 * r, gen))
        else:
            segments.append((start, node, r, 0.94 * r, gen))
        d = pts - centroid
        axis = np.linalg.svd(d, full_matrices=False)[2][0]
        order = np.argsort(d @ axis, kind="stable")
        half = len(pts) // 2
        for part in (pts[order[:half]], pts[order[half:]]):
            rc = max(min_radius, r * (len(part) / len(pts)) ** (1.0 / 3.0))
            stack.append((node, rc, part, gen + 1))
    return segments


def _paint_pulmonary_vessels(cv: _Canvas, rng: np.random.Generator) -> None:
    """Arterial trees from the hila and venous trees from the left atrium."""
    roots = [
        (LUNG_RIGHT, (-48.0, -12.0, -70.0), 8.0, None),
        (LUNG_LEFT, (50.0, -4.0, -58.0), 8.0, None),
        (LUNG_RIGHT, (-36.0, 2.0, -104.0), 7.0, (-12.0, 8.0, -104.0)),
        (LUNG_LEFT, (38.0, 6.0, -100.0), 7.0, (8.0, 10.0, -102.0)),
    ]
    for lung, root, r0, atrium in roots:
        if atrium is not None:  # vein trunk into the left atrium
            box, m = cv.capsule(atrium, root, r0, r0)
            cv.paint(box, m, cv.var.blood(190.0), BODY, into=(BODY, *LUNGS))
        targets = _lung_points(cv, lung, 1100, rng)
        for a, b, ra, rb, gen in _grow_tree(root, r0, targets, rng, min_radius=0.8):
            box, m = cv.capsule(a, b, ra, rb)
            hu = cv.var.blood(40.0 + 140.0 * min(max((ra - 3.0) / 5.0, 0.0), 1.0))
            into = (*LUNGS, BODY) if gen <= 1 else (lung,)
            cv.paint(box, m, hu, None, into=into, mode="max")


def _paint_airways(cv: _Canvas, rng: np.random.Generator) -> None:
    """Trachea, carina, main bronchi and a few generations of lobar/segmental bronchi."""
    carina = np.array([0.0, -6.0, -45.0])
    trachea = _smooth_path([(0.0, -12.0, float(cv.z.max()) + 10.0), (0.0, -9.0, 0.0), carina], [9, 9, 8.5])
    mains = [
        (LUNG_RIGHT, _smooth_path([carina, (-14, -4, -56), (-26, -2, -70)], [7, 6.8, 6.2], 3.0)),
        (LUNG_LEFT, _smooth_path([carina, (18, -4, -58), (36, -1, -74)], [6.5, 6.2, 5.8], 3.0)),
    ]
    tubes = [(trachea, (BODY, *LUNGS, AIRWAY), (BODY, *LUNGS, AIRWAY))]
    for lung, path in mains:
        tubes.append((path, (BODY, *LUNGS, AIRWAY), (BODY, *LUNGS, AIRWAY)))
        root = path[0][-1]
        targets = _lung_points(cv, lung, 24, rng)
        targets = root + 0.62 * (targets - root)
        for a, b, ra, rb, _gen in _grow_tree(root, float(path[1][-1]), targets, rng,
                                             min_radius=1.2, fraction=0.5, wiggle=0.08):
            tubes.append(((np.array([a, b]), np.array([ra, rb])), (lung,), (lung, AIRWAY)))
    cv.tube(trachea[0], trachea[1] + 6.0, -80.0, BODY, into=LUNGS)  # mediastinal fat around the trachea
    for (pts, rad), wall_into, _ in tubes:
        cv.tube(pts, rad + 0.6 + 0.22 * rad, 40.0, None, into=wall_into, mode="max")
    for (pts, rad), _, lumen_into in tubes:
        cv.tube(pts, rad, -1000.0, AIRWAY, into=lumen_into)


# --------------------------------------------------------------------- nodules
def _place_nodules(cv: _Canvas, rng: np.random.Generator, offset_lps=(0.0, 0.0, 0.0)) -> tuple[Nodule, ...]:
    specs = cv.var.nodule_specs
    sides = [LUNG_RIGHT, LUNG_LEFT] * ((len(specs) + 1) // 2)
    sides = list(rng.permutation(sides[: len(specs)]))
    placed = []
    for idx, ((diameter, kind), lung) in enumerate(zip(specs, sides), start=1):
        r = diameter / 2.0
        candidates = _lung_points(cv, lung, 4000, rng)
        for c in candidates:
            if cv.ball_ok(c, r + NODULE_MARGIN_MM, lung):
                break
        else:
            raise RuntimeError(f"could not place a {diameter} mm nodule in {LABELS[lung]}")
        reach = max(r, *cv.grid.spacing_zyx)
        box = cv.box(c - reach, c + reach)
        cx, cy, cz = (float(v) for v in c)
        inside = (box.x - cx) ** 2 + (box.y - cy) ** 2 + (box.z - cz) ** 2 <= r * r
        # the voxel holding the centre is always part of the nodule, even on coarse grids
        k, j, i = (int(v) for v in np.rint(cv.grid.lps_to_index_zyx(c)))
        inside[k - box.slices[0].start, j - box.slices[1].start, i - box.slices[2].start] = True
        if kind == "solid":
            cv.paint(box, inside, 35.0, NODULE)
        else:
            cv.paint(box, inside, -520.0, NODULE, mode="max")
        lps = np.asarray(c, np.float64) + np.asarray(offset_lps, np.float64)  # patient frame -> scanner's
        placed.append(Nodule(idx, tuple(round(float(v), 3) for v in lps), diameter, kind, LABELS[lung]))
    return tuple(placed)


# ---------------------------------------------------------------------- finish
def _blur(hu: np.ndarray, sigma_voxels: float) -> np.ndarray:
    """Gaussian partial-volume blur, split along z over two threads (exact)."""
    nz = hu.shape[0]
    pad = int(math.ceil(4 * sigma_voxels)) + 1
    bounds = [(0, nz // 2), (nz // 2, nz)] if nz >= 8 else [(0, nz)]

    def part(b):
        lo, hi = max(0, b[0] - pad), min(nz, b[1] + pad)
        out = ndimage.gaussian_filter(hu[lo:hi], sigma_voxels, truncate=4.0, mode="nearest")
        return out[b[0] - lo: out.shape[0] - (hi - b[1])]

    with ThreadPoolExecutor(len(bounds)) as ex:
        return np.concatenate(list(ex.map(part, bounds)), axis=0)


def _fitted_offset(torso: _Torso, var: Variation) -> tuple[float, float, float]:
    """The patient's offset in LPS mm: the Variation's, its x narrowed so that the widest body (clothing
    included) stays ``FOV_MARGIN_MM`` inside the demo's field of view (the same for every grid)."""
    if var.offset_x_mm == 0.0 and var.offset_y_mm == 0.0:
        return (0.0, 0.0, 0.0)
    nz, ny, nx = DEFAULT_SHAPE_ZYX
    sz, _, sx = DEFAULT_SPACING_ZYX
    half_fov = (nx - 1) / 2 * sx
    z = np.linspace(Z_CENTRE_MM - (nz - 1) / 2 * sz, Z_CENTRE_MM + (nz - 1) / 2 * sz, 2 * nz)[:, None]
    theta = np.linspace(-np.pi, np.pi, 721)[None, :]
    x = torso.radius(theta, z) * np.sin(theta)
    cloth = 5.7 if var.clothing else 0.0  # the farthest the clothing stands off the skin
    reach_left = min(float(x.max()) + cloth, _BODY_HALF_WIDTH_MM)
    reach_right = min(float(-x.min()) + cloth, _BODY_HALF_WIDTH_MM)
    hi = max(0.0, half_fov - FOV_MARGIN_MM - reach_left)
    lo = -max(0.0, half_fov - FOV_MARGIN_MM - reach_right)
    return (float(np.clip(var.offset_x_mm, lo, hi)), float(var.offset_y_mm), 0.0)


def _anatomy_grid(grid: Grid, offset) -> Grid:
    """The grid in the patient's own frame: voxel centres at their LPS position less the patient's offset."""
    if not any(offset):
        return grid
    return Grid(grid.shape_zyx, grid.spacing_zyx, tuple(o - d for o, d in zip(grid.origin_lps, offset)))


def make_phantom(seed: int = DEFAULT_SEED,
                 shape_zyx: Sequence[int] = DEFAULT_SHAPE_ZYX,
                 spacing_zyx: Sequence[float] = DEFAULT_SPACING_ZYX,
                 progress: Optional[ProgressFn] = None) -> Phantom:
    """Build the chest phantom on a grid centred on the anatomy.

    The anatomy is defined in millimetres, so a coarser grid (for fast tests)
    shows the same patient. ``progress(fraction, message)`` is optional.
    """
    report = progress or (lambda f, m: None)
    rng = np.random.default_rng(seed)
    grid = Grid.centred(shape_zyx, spacing_zyx)
    variation = Variation.from_seed(seed)
    torso = _Torso(rng, variation.body_scale, (variation.fat_right, variation.fat_left, variation.fat_ap))
    offset = _fitted_offset(torso, variation)
    cv = _Canvas(_anatomy_grid(grid, offset), variation, offset[0])
    steps = [
        ("torso and lungs", lambda: _paint_torso(cv, torso)),
        ("mediastinum", lambda: _paint_mediastinum(cv)),
        ("heart", lambda: _paint_heart(cv)),
        ("great vessels", lambda: _paint_great_vessels(cv)),
        ("esophagus and abdomen", lambda: (_paint_esophagus(cv), _paint_abdomen(cv))),
        ("spine", lambda: _paint_spine(cv, rng)),
        ("ribs and sternum", lambda: _paint_ribs_sternum_clavicles(cv, torso, rng)),
        ("pulmonary vessels", lambda: _paint_pulmonary_vessels(cv, rng)),
        ("airways", lambda: _paint_airways(cv, rng)),
    ]
    for n, (msg, fn) in enumerate(steps):
        report(0.8 * n / len(steps), f"phantom: {msg}")
        fn()
    report(0.8, "phantom: nodules")
    nodules = _place_nodules(cv, rng, offset)
    report(0.85, "phantom: partial-volume blur and noise")
    hu = _blur(cv.hu, BLUR_SIGMA_VOXELS)
    cv.hu = None
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(NOISE_SD_HU)
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    report(1.0, "phantom: done")
    return Phantom(hu.astype(np.int16), cv.labels, nodules, grid)
