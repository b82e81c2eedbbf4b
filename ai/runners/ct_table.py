"""The scanner table (and a pad on it) under the patient, found where it is alone and followed under the body.

Beside the patient, in the columns that hold no more tissue than a table does, the
table's top surface is the first tissue on the table's side (posterior for a supine
patient, anterior for a prone one).  It is the same line on most slices.  A quadratic
fitted per slice to those columns carries the line under the patient, where the
table or a pad touches the back and a threshold alone cannot tell them apart.
"""
from __future__ import annotations

import numpy as np

MAX_TABLE_MM = 30.0  # a column with less tissue than this (in y) holds no patient
MIN_COLUMNS = 6  # columns beside the patient needed to see the table in a slice
MIN_SLICE_FRACTION = 0.5  # the table must be seen in at least this fraction of the slices
MAX_SPREAD_MM = 4.0  # its top must be one line: spread (MAD) of the top rows over the slices


def table_mask(tissue: np.ndarray, spacing_zyx) -> np.ndarray | None:
    """A boolean (z, y, x) mask of the table side of the table's top line, or None when there is no table
    (canonical orientation: y anterior -> posterior)."""
    nz, ny, nx = tissue.shape
    _, sy, sx = spacing_zyx
    counts = tissue.sum(axis=1)  # (z, x)
    has = tissue.any(axis=1)
    free = has & (counts * sy <= MAX_TABLE_MM)  # beside the patient
    rows = np.arange(ny)
    best = None
    for side in ("posterior", "anterior"):
        half = rows >= ny // 2 if side == "posterior" else rows < ny // 2
        t = tissue & half[None, :, None]
        if side == "posterior":
            top = np.where(t.any(axis=1), np.argmax(t, axis=1), -1)  # first tissue row from the front
        else:
            top = np.where(t.any(axis=1), ny - 1 - np.argmax(t[:, ::-1, :], axis=1), -1)
        ok = free & (top >= 0)
        seen = ok.sum(axis=1) >= MIN_COLUMNS
        if seen.mean() < MIN_SLICE_FRACTION:
            continue
        vals = top[ok]
        spread = float(np.median(np.abs(vals - np.median(vals)))) * sy
        # the spread across columns includes the table's curvature: judge it per column over the slices
        per_col = [np.median(np.abs(top[ok[:, i], i] - np.median(top[ok[:, i], i])))
                   for i in range(nx) if ok[:, i].sum() >= max(3, nz // 4)]
        col_spread = float(np.median(per_col)) * sy if per_col else spread
        if col_spread > MAX_SPREAD_MM:
            continue
        if best is None or seen.mean() > best[0]:
            best = (seen.mean(), side, top, ok)
    if best is None:
        return None
    _, side, top, ok = best
    line = _fit_lines(top, ok, spacing_zyx)
    if line is None:
        return None
    r = rows[None, :, None]
    return r >= line[:, None, :] if side == "posterior" else r <= line[:, None, :]


def _fit_lines(top: np.ndarray, ok: np.ndarray, spacing_zyx) -> np.ndarray | None:
    """(z, x) row of the table's top under every column: a quadratic in x per slice (a constant where
    the table shows on one side only), slices without a view of it take their nearest neighbour's."""
    nz, nx = top.shape
    xs = np.arange(nx, dtype=float)
    xn = (xs - nx / 2) / nx
    fits = np.full((nz, nx), np.nan)
    for k in range(nz):
        sel = ok[k]
        if sel.sum() < MIN_COLUMNS:
            continue
        x, y = xn[sel], top[k, sel].astype(float)
        both = (x < -0.05).sum() >= 3 and (x > 0.05).sum() >= 3
        if both:
            coef = np.polyfit(x, y, 2)
            res = y - np.polyval(coef, x)
            keep = np.abs(res) <= max(2.0, 3.0 * np.median(np.abs(res)))
            if keep.sum() >= MIN_COLUMNS:
                coef = np.polyfit(x[keep], y[keep], 2)
            fits[k] = np.polyval(coef, xn)
        else:
            fits[k] = np.median(y)
    have = np.nonzero(~np.isnan(fits[:, 0]))[0]
    if have.size == 0:
        return None
    nearest = have[np.abs(np.arange(nz)[:, None] - have[None, :]).argmin(axis=1)]
    fits = fits[nearest]
    # the table is straight along z: a running median over 5 slices keeps a single bad fit out
    pad = np.pad(fits, ((2, 2), (0, 0)), mode="edge")
    fits = np.median(np.stack([pad[i:i + nz] for i in range(5)]), axis=0)
    return np.round(fits).astype(int)
