"""One nodule candidate, measured: its size and density, and the vessels that leave it.

A candidate is segmented around its peak by a local threshold (half-way between its density and
the aerated lung's) and measured by its radial density profile.  Then a shell around it (from
r + max(1.5 mm, 0.3 r) outwards by max(4 mm, min(0.8 r, 8 mm))) is searched for what leaves it:
each piece of dense tissue in that shell (inside the lung) that runs from its inner to its outer
surface is a vessel, as wide as the widest ball inside it where it leaves.  A vessel's branch point
or bend is a "blob" as wide as the vessels that leave it and tubular at its own scale (the Hessian's
smallest curvature near zero), a nodule is wider than its vessels and a blob at its own scale (the blur is
made isotropic first: thick slices must not make a ball look like a tube along z; a nodule that a thinner vessel
runs through is a blob once tissue narrower than its radius is opened away, ``ct_nodule_blob``), and a
vessel confluence at the hilum is crowded (dense tissue fills much of a shell around it, where a nodule has
aerated lung).  A vessel as wide as the candidate does not make it a bend when that vessel ends in it: flow goes
on through a bend or a branch point (Murray's law), so there the other vessels together are as wide as the widest;
a nodule that a vessel runs into has only thinner ones leaving it (this relief holds only in aerated lung, not
amid the hilum's vessels).  A ground-glass nodule that vessels cross is measured at the ground glass's density,
with the solid vessels left out of its radial profile.  The score says how much of a nodule the candidate is, and
the reason says why in words.  The weights of the vessel signs were chosen on seeded demo phantoms
(``radview-cli demo --seed N``), see bench/ai.py.
"""
from __future__ import annotations

import functools

import numpy as np

from ai.runners import ct_nodule_blob as blob_mod

MIN_DIAMETER_MM = 3.0
MAX_DIAMETER_MM = 35.0
SUBSOLID_HU = -300.0
GG_PEAK_ABOVE = 100.0  # a peak this much denser than the ground-glass around it is measured both ways
GG_MAX_SOLID = 0.25  # the vessels that cross a ground-glass nodule fill at most this much of it
VESSEL_RATIO = 0.5  # a vessel wider than this fraction of the candidate's width makes it vessel-like
BRANCH_RATIO = 0.6  # three vessels this wide (relative) leaving it: a branch point
BLOB_MIN = 0.7  # blobness below this makes it tubular
CROWDED = (0.15, 0.3)  # dense fraction of the shell around it: from isolated to amid vessels (a hilum)
ELONGATED = 1.45
CONTINUES = (0.45, 0.7)  # the other vessels' combined width over the widest's: from "it ends here" to "it goes on"
MAX_NODULE_HU = 200.0  # denser on average: bone, contrast-filled vessels
OTHER_TISSUE_HU = 300.0  # a piece this much denser than a ground-glass candidate is another tissue
AIR_HU = -950.0  # airway lumen: darker than aerated lung
MAX_HOLLOW = 0.15  # a candidate with more air than this inside is a ring around an airway
MAX_ELONGATION = 1.8
MIN_PLATEAU = 0.55
PREFILTER_PLATEAU = 0.4  # below this, or elongated beyond PREFILTER_ELONGATION, no vessel search
PREFILTER_ELONGATION = 2.4
WIDER_BOX = 1.5  # a blob wider than its peak's box is measured again in a box this many diameters wide (half)
SEARCH_FLOOR = 0.1  # a shape score under this (vessel signs can only lower it) is not searched for vessels


def shell_radii(radius: float) -> tuple[float, float]:
    """The shell searched for vessels around a candidate of this radius (mm)."""
    r_in = radius + max(1.5, 0.3 * radius)
    return r_in, r_in + max(4.0, min(0.8 * radius, 8.0))


def measure(peak, hu: np.ndarray, lung: np.ndarray | None, spacing_zyx, r_scale_mm: float,
            min_diameter_mm: float = 0.0):
    """``peak`` (k, j, i, response, scale index) on the full-resolution canonical grid ``hu``; ``lung``: the
    lungs (filled) on that grid or None.  A dict of measurements with its ``score`` and ``reason``, or None
    when there is no blob.  A solid peak amid ground-glass density (a vessel crossing a ground-glass
    nodule) is measured both ways, and the better reading is kept.  A blob clearly smaller than
    ``min_diameter_mm`` (1 mm less: the second reading's wider box may move its edge) is not measured further:
    it will not be reported, and most peaks in a lung are such twigs.  A blob wider than the box of its peak's scale
    is measured again in a box that holds it."""
    sp = np.asarray(spacing_zyx, float)
    reach = 2.5 * max(r_scale_mm, 3.0)
    best = None
    for mode in ("auto", "ground-glass"):
        m = _measure_in(peak, hu, lung, sp, reach, False, mode, r_scale_mm, min_diameter_mm - 1.0)
        if m is not None and "wider_than_box" in m:
            # a peak of a small scale on a larger blob (a vessel along it weakens the larger scales' answer):
            # measured again in a box that holds it
            reach = WIDER_BOX * m["wider_than_box"]
            m = _measure_in(peak, hu, lung, sp, reach, False, mode, r_scale_mm, min_diameter_mm - 1.0)
            m = None if m is not None and "wider_than_box" in m else m
        if m is None:
            if mode == "auto":
                continue
            break
        m["score"], m["reason"] = score(m)  # without the vessel signs: an upper bound of the score
        if m["score"] < SEARCH_FLOOR:
            m["reason"] += f"; shape score under {SEARCH_FLOOR}: not searched for vessels"
        elif m["plateau"] / m["diameter"] >= PREFILTER_PLATEAU and m["elongation"] <= PREFILTER_ELONGATION:
            r_out = shell_radii(0.5 * m["diameter"])[1]
            m = _measure_in(peak, hu, lung, sp, max(reach, r_out + float(sp.max())), True, mode, r_scale_mm) or m
            m["score"], m["reason"] = score(m)
        if best is None or m["score"] > best["score"]:
            best = m
        if not m.get("gg_around"):
            break
    return best


@functools.lru_cache(maxsize=32)
def _box_grid(shape, c, sp, last_bin: int):
    """Coordinates (mm) of a box's voxels, their distance to voxel ``c`` and the radial bins of half the smallest
    spacing (capped at ``last_bin``) with their counts.  Boxes around interior peaks of one scale are alike, so
    these are computed once per shape and centre (read-only arrays)."""
    zz, yy, xx = np.meshgrid(*(np.arange(n) * d for n, d in zip(shape, sp)), indexing="ij")
    dist = np.sqrt((zz - c[0] * sp[0]) ** 2 + (yy - c[1] * sp[1]) ** 2 + (xx - c[2] * sp[2]) ** 2)
    step = 0.5 * min(sp)
    bins = np.minimum((dist / step).astype(int), last_bin).ravel()
    counts = np.bincount(bins)
    for a in (zz, yy, xx, dist, bins, counts):
        a.flags.writeable = False
    return zz, yy, xx, dist, bins, counts


def _measure_in(peak, hu, lung, sp, reach: float, with_vessels: bool, mode: str, r_scale_mm: float,
                min_diameter_mm: float = 0.0):
    from scipy import ndimage

    k, j, i = peak[:3]
    half = np.ceil(reach / sp).astype(int) + 1
    lo = np.maximum([k, j, i] - half, 0)
    hi = np.minimum(np.array([k, j, i]) + half + 1, hu.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = hu[box].astype(np.float32)
    in_lung = lung[box] if lung is not None else np.ones(sub.shape, bool)
    c = np.array([k, j, i]) - lo
    cs = tuple(slice(max(0, v - 1), v + 2) for v in c)
    peak_hu = float(sub[cs].mean())
    step = 0.5 * float(sp.min())
    zz, yy, xx, dist, bins, counts = _box_grid(sub.shape, tuple(int(v) for v in c), tuple(float(v) for v in sp),
                                               int(reach / step))
    near = sub[dist <= max(r_scale_mm, 2.0)]
    gg_near = (near > -750.0) & (near < SUBSOLID_HU)
    # a peak denser than the ground-glass around it: a vessel crossing a ground-glass nodule (solid, or itself
    # only ground-glass dense once blurred, as a thin vessel is), which the other reading measures without it
    gg_hu = float(np.median(near[gg_near])) if gg_near.any() else peak_hu
    gg_around = gg_near.mean() > 0.3 and peak_hu > gg_hu + GG_PEAK_ABOVE
    if mode == "ground-glass":
        if not gg_around:
            return None
        peak_hu = gg_hu
    lung_bg = sub[(sub < -700) & in_lung]
    bg = float(np.median(lung_bg)) if lung_bg.size > 20 else -850.0
    thr = float(np.clip(0.5 * (peak_hu + bg), -760.0, -250.0))
    dense_any = sub > thr
    dense = dense_any & (sub < SUBSOLID_HU + 100.0) if peak_hu < SUBSOLID_HU else dense_any
    # radial profile: the radius where less than half of a thin shell is dense.  The ground-glass reading of a
    # peak on a vessel leaves out the solid voxels (the vessels crossing it): they say nothing about how far the
    # ground glass reaches, and at the centre of a nodule that vessels cross they fill the innermost shells
    seen = counts if mode != "ground-glass" else np.bincount(bins, weights=(~(dense_any & ~dense)).ravel()
                                                               .astype(float), minlength=counts.size)
    prof = np.bincount(bins, weights=dense.ravel().astype(float), minlength=counts.size) / np.maximum(seen, 1)
    prof[(seen == 0) & (counts > 0)] = 1.0  # a shell all solid: inside
    radii = (np.arange(prof.size) + 0.5) * step
    filled = counts > 0
    prof, radii = prof[filled], radii[filled]
    below = np.nonzero(prof < 0.5)[0]
    if below.size == 0 or below[0] == 0:
        return None
    radius = float(radii[below[0]])
    diameter = 2.0 * radius
    if not max(MIN_DIAMETER_MM, min_diameter_mm) <= diameter <= MAX_DIAMETER_MM:
        return None
    if diameter > reach:
        return {"wider_than_box": diameter}
    if mode == "ground-glass" and float((dense_any & ~dense)[dist <= radius].mean()) > GG_MAX_SOLID:
        return None  # solid tissue fills much of it: ground glass against a wall or a vessel, not around vessels
    core_sel = radii <= 0.5 * radius
    core = float(prof[core_sel].mean()) if core_sel.any() else float(prof[0])
    hollow = float((sub[dist <= 0.6 * radius] < AIR_HU).mean())  # air inside: a bronchus seen end-on
    # the candidate: its dense voxels connected to the peak (through a vessel crossing it, for ground-glass)
    lab, _ = ndimage.label(dense_any & (dist <= 1.25 * radius))
    cid = lab[tuple(c)]
    if cid == 0:
        return None
    inner = (lab == cid) & dense
    # plateau: as thick at three quarters of its contrast (a blurred twig is not).  A solid candidate's contrast is
    # its core's median density (within half its radius), not its peak's 3×3×3: a peak on a calcified focus or on a
    # vessel crossing it would set the level above the rest of it.  A subsolid one keeps its peak's density (its
    # ground-glass reading already takes a median): a lower level would call the faint haze around vessels a plateau
    level = float(np.median(sub[dist <= 0.5 * radius])) if peak_hu > SUBSOLID_HU else peak_hu
    hi_thr = bg + 0.75 * (level - bg)
    lab_hi, _ = ndimage.label((sub > hi_thr) & (dist <= 1.25 * radius))
    plateau = 0.0
    if lab_hi[tuple(c)]:
        comp_id = int(lab_hi[tuple(c)])
        bbox = ndimage.find_objects(lab_hi, max_label=comp_id)[comp_id - 1]  # the distance inside its own box
        e2 = ndimage.distance_transform_edt(np.pad(lab_hi[bbox] == comp_id, 1), sampling=sp)
        plateau = 2.0 * float(e2.max())
    vox_ml = float(np.prod(sp)) / 1000.0
    volume = float(inner.sum()) * vox_ml
    if not inner.any():
        return None
    mean_hu = float(sub[inner].mean())
    pts = np.stack([zz[inner], yy[inner], xx[inner]], axis=1)
    w = pts.mean(axis=0)
    ev = np.linalg.eigvalsh(np.cov((pts - w).T) + np.diag(sp ** 2 / 12.0)) if len(pts) > 3 else np.ones(3)
    elongation = float(np.sqrt(ev[-1] / max(ev[0], 1e-6)))
    shell_sel = (dist >= 1.5 * radius) & (dist <= 2.0 * radius)
    shell = float(dense[shell_sel].mean()) if shell_sel.any() else 1.0
    vessels = _vessels(dense_any & in_lung, dist, radius, sp, sub, mean_hu) if with_vessels else []
    blob = blob_mod.blobness(sub, c, radius, sp) if with_vessels else 1.0
    m = dict(center=w / sp + lo, diameter=diameter, volume=volume, mean_hu=mean_hu,
             kind="solid" if mean_hu > SUBSOLID_HU else "subsolid", response=peak[3], core=core, shell=shell,
             gg_around=gg_around, hollow=hollow, blobness=blob, blobness_raw=blob, blobness_opened=None,
             elongation=elongation, plateau=plateau, contrast=mean_hu - bg, box=box, mask=inner,
             vessels=vessels, searched=with_vessels)
    # tubular as it is: a vessel, or a nodule with a thinner vessel through it.  Opened only where a blob could
    # still score (the other signs may already say vessel)
    if with_vessels and blob < BLOB_MIN and score(dict(m, blobness=1.0))[0] >= SEARCH_FLOOR:
        m["blobness_opened"] = blob_mod.opened_blobness(sub, c, radius, sp)
        m["blobness"] = max(blob, m["blobness_opened"] or 0.0)
    return m


def _vessels(dense: np.ndarray, dist: np.ndarray, radius: float, sp: np.ndarray, hu: np.ndarray,
             own_hu: float) -> list[float]:
    """Widths (mm) of the dense pieces that cross the shell (``shell_radii``) from its inner to its outer
    surface, widest first.  For a ground-glass candidate only pieces of about its density count: a solid
    vessel that passes a ground-glass nodule is another tissue, not the candidate's continuation."""
    from scipy import ndimage

    r_in, r_out = shell_radii(radius)
    tol = 0.75 * float(sp.max())
    shell = dense & (dist >= r_in) & (dist <= r_out)
    lab, n = ndimage.label(shell, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    sel = lab > 0  # the statistics over the shell's own voxels only (a thin part of the box)
    labs, dist_s = lab[sel], dist[sel]
    dmin = ndimage.minimum(dist_s, labs, idx)
    dmax = ndimage.maximum(dist_s, labs, idx)
    # a piece's width: twice the radius of the widest ball inside the dense tissue it belongs to, where it
    # leaves (the shell's outer half: the candidate's own bulk does not count, nor does the shell's thickness)
    edt = ndimage.distance_transform_edt(np.pad(dense, 1), sampling=sp)[1:-1, 1:-1, 1:-1][sel]
    inscribed = ndimage.maximum(np.where(dist_s >= 0.5 * (r_in + r_out), edt, 0.0), labs, idx)
    # a piece's density matters only around a ground-glass candidate
    piece_hu = ndimage.median(hu[sel], labs, idx) if own_hu < SUBSOLID_HU else np.zeros(n)
    half_voxel = 0.5 * float(np.mean(sp))
    widths = [2.0 * (float(e) + half_voxel) for a, b, e, h in zip(dmin, dmax, inscribed, piece_hu)
              if a <= r_in + tol and b >= r_out - tol and not (own_hu < SUBSOLID_HU and h > own_hu + OTHER_TISSUE_HU)]
    return sorted(widths, reverse=True)


def score(m: dict) -> tuple[float, str]:
    """(0..1, the reason in words).  A nodule is round, a plateau of density, a blob at its own scale
    (the Hessian's three curvatures alike) and wider than the vessels that leave it; a vessel's bend or
    branch point is as wide as its vessels, tubular at its own scale, and often elongated.  Each vessel
    sign takes its share off the shape score."""
    d = m["diameter"]
    ratio = m["plateau"] / max(d, 1e-6)
    # a ground-glass candidate must be a clear plateau: the blurred rim of a vessel or an airway's wall is
    # ground-glass dense too, but thin
    lo, span = (0.6, 0.2) if m["kind"] == "subsolid" else (0.45, 0.3)
    plateau = _ramp(ratio, lo, lo + span)
    round_ = _ramp(MAX_ELONGATION + 0.2 - m["elongation"], 0.0, 0.8)
    widths = [w / d for w in m["vessels"]]
    widest = max(widths, default=0.0)
    n_wide = sum(w >= BRANCH_RATIO for w in widths)
    crowded = _ramp(m.get("shell", 0.0), *CROWDED)
    # a vessel that ends in it tells a nodule only where it stands in aerated lung: amid the hilum's vessels the
    # vessels that go on are often merged with others, or leave the lung
    ends = _ends_here(widths) * (1.0 - crowded)
    blob = m.get("blobness", 1.0)
    signs = {  # vessel sign -> (strength 0..1, weight)
        "ratio": (_ramp(widest, VESSEL_RATIO, VESSEL_RATIO + 0.3) * (1.0 - ends), 0.8),
        "tube": (_ramp(BLOB_MIN - blob, 0.0, 0.2), 0.95),
        "long": (_ramp(m["elongation"], ELONGATED, ELONGATED + 0.4), 0.6),
        "crowded": (crowded, 0.8),
    }
    keep = 1.0
    for strength, weight in signs.values():
        keep *= 1.0 - weight * strength
    if m.get("hollow", 0.0) > MAX_HOLLOW:
        keep, why = 0.0, f"a ring around air ({m['hollow']:.0%} of its core): an airway's wall"
    elif m["mean_hu"] > MAX_NODULE_HU:
        keep, why = 0.0, f"denser than soft tissue ({m['mean_hu']:.0f} HU): bone, or contrast in a vessel"
    elif n_wide >= 3:
        keep, why = 0.0, f"a vessel branch point: {n_wide} vessels almost as wide as it leave it"
    else:
        why = _reason(signs, widths, widest, blob, m["elongation"])
    if keep > 0.0 and widest >= VESSEL_RATIO and ends >= 0.5:
        why += (f"; the vessel {widest:.0%} of its width ends in it (what goes on is thinner): not a vessel's bend "
                f"or branch point")
    raw, opened = m.get("blobness_raw", blob), m.get("blobness_opened")
    if keep > 0.0 and opened is not None and raw < BLOB_MIN <= blob:
        why += (f"; a blob once the tissue narrower than its radius (a vessel through it) is opened away "
                f"(blobness {raw:.2f} -> {opened:.2f})")
    if ratio < lo:
        why += f"; no plateau (as thick at 3/4 contrast over {ratio:.0%} of its width)"
    return float(m["core"] * plateau * round_ * keep), why


def _ends_here(widths: list) -> float:
    """0..1: how clearly the widest vessel ends in the candidate.  A vessel keeps its flow through a bend or a
    branch point (Murray's law: the cubes of the widths that leave equal the cube of the width that comes in), so
    the other vessels together carry as much as the widest; a nodule that a vessel runs into has only thinner
    vessels leaving it, or none."""
    if not widths:
        return 0.0
    rest = float(sum(w ** 3 for w in widths[1:])) ** (1.0 / 3.0)
    return 1.0 - _ramp(rest / widths[0], *CONTINUES)


def _ramp(x: float, a: float, b: float) -> float:
    return float(min(1.0, max(0.0, (x - a) / (b - a))))


def _reason(signs: dict, widths: list, widest: float, blob: float, elongation: float) -> str:
    strongest = max(signs, key=lambda k: signs[k][0] * signs[k][1])
    if signs[strongest][0] * signs[strongest][1] < 0.2:
        if not widths:
            return "round and isolated: a nodule"
        return f"round and wider than the {'vessel' if len(widths) == 1 else f'{len(widths)} vessels'} touching it"
    if strongest == "ratio":
        return f"on a vessel {widest:.0%} of its width: a vessel's bend or a nodule on it"
    if strongest == "crowded":
        return "amid vessels (dense tissue all around it): a vessel confluence"
    if strongest == "tube":
        return f"tubular at its own scale (blobness {blob:.2f}): a vessel"
    return f"elongated ({elongation:.1f}:1): a vessel"
