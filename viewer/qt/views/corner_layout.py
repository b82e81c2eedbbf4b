"""Where a 2D view's corner texts, orientation letters and scale bar go, so that no two of them overlap.

``shared/CONVENTIONS.md``: no two texts overlap at 1×1, 1×3 or 2×2 in a 1280×800 window; warnings take their own
line instead of printing over patient text. :func:`layout_foreground` places every line of every corner in the
viewport's pixels:

* the orientation letters sit at the middle of each edge and the scale bar at the bottom centre; text flows
  around them;
* the top-left and top-right blocks share their rows when each pair of lines fits side by side; otherwise (a
  narrow view, 1×3) the top-right block goes below the top-left one, still right-aligned. The bottom blocks do
  the same upward (bottom right above bottom left). Both move a row away from the edge when a line of their
  first row would reach the edge's letter. Warnings take their own rows below the top blocks;
* every line is elided (``QFontMetricsF.elidedText``) to the room its row leaves it: from its side of the view to
  the first text, letter or bar it would otherwise touch; a line with no room left is dropped, never drawn over
  another.

Pure geometry on ``QFontMetricsF``: the painter (:mod:`viewer.qt.views.slice_foreground`) draws what this
returns, and tests check the same boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFontMetricsF

MARGIN = 6.0  # from the view's edges
GAP = 8.0  # between two texts on one row
SCALE_BAR_BAND = 17.0  # the scale bar and its label, along the bottom edge
SCALE_BAR_LENGTHS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)
#: the order lines claim their room in (letters and the scale bar first)
PRIORITY = ("top_left", "warnings", "bottom_left", "top_right", "bottom_right")


@dataclass(frozen=True)
class Placed:
    """One text as painted: ``kind`` is a corner, "warnings" or "letter"; ``x`` its left, ``baseline`` its
    baseline; ``rect`` its box (advance × ascent + descent)."""

    kind: str
    text: str
    x: float
    baseline: float
    rect: QRectF


@dataclass(frozen=True)
class ScaleBar:
    """The scale bar: ``x0``, ``y0`` the left end of its line, ``length_px``, its label and its box (ticks, label)."""

    x0: float
    y0: float
    length_px: float
    length_mm: int
    label: str
    rect: QRectF


def text_rect(fm: QFontMetricsF, x: float, baseline: float, text: str) -> QRectF:
    return QRectF(x, baseline - fm.ascent(), fm.horizontalAdvance(text), fm.ascent() + fm.descent())


def scale_bar(fm: QFontMetricsF, w: float, h: float, mm_per_px: float) -> ScaleBar | None:
    """The bar along the bottom edge: the longest round length up to a quarter of the width, 1 cm ticks."""
    if not mm_per_px or not math.isfinite(mm_per_px):
        return None
    target_mm = w * 0.25 * mm_per_px
    length_mm = max((n for n in SCALE_BAR_LENGTHS_MM if n <= target_mm), default=None)
    if length_mm is None:
        return None
    length_px = length_mm / mm_per_px
    label = f"{length_mm // 10} cm" if length_mm >= 10 else f"{length_mm} mm"
    x0, y0 = (w - length_px) / 2, h - 8
    label_rect = text_rect(fm, x0 + length_px + 4, y0 + 3, label)
    rect = QRectF(x0, y0 - 5, length_px + 1, 6).united(label_rect)
    return ScaleBar(x0, y0, length_px, length_mm, label, rect)


def letter_positions(fm: QFontMetricsF, w: float, h: float, letters: dict[str, str]) -> list[Placed]:
    """The orientation letters at the middle of each edge (the bottom one above the scale bar)."""
    out = []
    for edge, text in letters.items():
        tw = fm.horizontalAdvance(text)
        if edge == "left":
            x, y = MARGIN, h / 2 + fm.ascent() / 2
        elif edge == "right":
            x, y = w - MARGIN - tw, h / 2 + fm.ascent() / 2
        elif edge == "top":
            x, y = (w - tw) / 2, MARGIN + fm.ascent()
        else:
            x, y = (w - tw) / 2, h - SCALE_BAR_BAND - fm.descent()
        out.append(Placed("letter", text, x, y, text_rect(fm, x, y, text)))
    return out


def _fits_side_by_side(fm: QFontMetricsF, w: float, left: list[str], right: list[str]) -> bool:
    """Every row's left and right lines fit next to each other."""
    room = w - 2 * MARGIN
    return all(fm.horizontalAdvance(a) + fm.horizontalAdvance(b) + GAP <= room for a, b in zip(left, right))


def _block_rows(fm: QFontMetricsF, w: float, left: list[str], right: list[str], letter: str,
                first_kinds: tuple[str, str]) -> list[tuple[str, str, int]]:
    """(kind, text, row) of two facing blocks: side by side when they fit, else the right one after the left one;
    both a row further from the edge when a line of their first row would reach the edge's centred letter."""
    if _fits_side_by_side(fm, w, left, right):
        rows = [(first_kinds[0], t, i) for i, t in enumerate(left)] + \
               [(first_kinds[1], t, i) for i, t in enumerate(right)]
    else:
        rows = [(first_kinds[0], t, i) for i, t in enumerate(left)] + \
               [(first_kinds[1], t, len(left) + i) for i, t in enumerate(right)]
    if letter:
        beside = (w - fm.horizontalAdvance(letter)) / 2 - MARGIN - GAP
        if any(row == 0 and fm.horizontalAdvance(t) > beside for _kind, t, row in rows):
            rows = [(kind, t, row + 1) for kind, t, row in rows]
    return rows


def _rows(fm: QFontMetricsF, w: float, corners: dict[str, list[str]], letters: dict[str, str]) -> list[tuple]:
    """(kind, text, row, from the top?) of every line: row 0 is the top (or the bottom) row."""
    tl, tr = corners.get("top_left", []), corners.get("top_right", [])
    bl, br = corners.get("bottom_left", []), corners.get("bottom_right", [])
    top = _block_rows(fm, w, tl, tr, letters.get("top", ""), ("top_left", "top_right"))
    first_warning = max((row + 1 for _kind, _t, row in top), default=0)
    top += [("warnings", text, first_warning + i) for i, text in enumerate(corners.get("warnings", []))]
    # bottom blocks: row 0 is the lowest, so each block is given bottom-up
    bottom = _block_rows(fm, w, bl[::-1], br[::-1], letters.get("bottom", ""), ("bottom_left", "bottom_right"))
    rows = [(kind, t, row, True) for kind, t, row in top] + [(kind, t, row, False) for kind, t, row in bottom]
    order = {kind: n for n, kind in enumerate(PRIORITY)}
    return sorted(rows, key=lambda r: (order[r[0]], r[2]))


def _room(band: QRectF, left_aligned: bool, w: float, taken: list[QRectF]) -> float:
    """How wide a line anchored at its side of the view may be on ``band`` before it touches a taken box."""
    if left_aligned:
        limit = w - MARGIN
        for r in taken:
            if r.top() < band.bottom() and r.bottom() > band.top() and r.right() > MARGIN:
                limit = min(limit, r.left() - GAP)
        return limit - MARGIN
    limit = MARGIN
    for r in taken:
        if r.top() < band.bottom() and r.bottom() > band.top() and r.left() < w - MARGIN:
            limit = max(limit, r.right() + GAP)
    return w - MARGIN - limit


def layout_foreground(fm: QFontMetricsF, w: float, h: float, corners: dict[str, list[str]],
                      letters: dict[str, str], bar: ScaleBar | None = None) -> list[Placed]:
    """Every text of a ``w`` × ``h`` view placed: the letters, then the corner lines, elided to fit, none
    overlapping another or the scale bar; lines that find no room are left out."""
    placed = letter_positions(fm, w, h, letters)
    taken = [p.rect for p in placed] + ([bar.rect] if bar is not None else [])
    line_h = fm.lineSpacing()
    min_room = fm.horizontalAdvance("W…")
    for kind, text, row, from_top in _rows(fm, w, corners, letters):
        if not text:
            continue
        if from_top:
            baseline = MARGIN + fm.ascent() + row * line_h
        else:
            baseline = h - SCALE_BAR_BAND - fm.descent() - row * line_h
        band = QRectF(0, baseline - fm.ascent(), w, fm.ascent() + fm.descent())
        if band.top() < 0 or band.bottom() > h:
            continue
        left_aligned = kind in ("top_left", "bottom_left", "warnings")
        room = _room(band, left_aligned, w, taken)
        if room < min(min_room, fm.horizontalAdvance(text)):
            continue
        shown = text if fm.horizontalAdvance(text) <= room else fm.elidedText(text, Qt.ElideRight, room)
        if not shown:
            continue
        tw = fm.horizontalAdvance(shown)
        x = MARGIN if left_aligned else w - MARGIN - tw
        item = Placed(kind, shown, x, baseline, text_rect(fm, x, baseline, shown))
        placed.append(item)
        taken.append(item.rect)
    return placed
