"""How the report's one page is shared between key images, close-ups of the findings and tables. Qt-free, in mm.

What the page must hold comes first: the title, study lines, provenance and footer (measured by the painter),
the key images at :data:`KEY_MIN_MM` at least and each table's first rows (:data:`MIN_TABLE_ROWS`). What is
left goes, in this order, to

1. the close-ups of the findings — as many as fit, none dropped while there is room: rows of 4, 5 or 6
   (smaller ones before fewer ones); those that still do not fit are named on one line under them;
2. the tables' remaining rows (rows that do not fit are counted on a "… n more" line);
3. the key images, up to their natural height; then larger close-ups.

Whatever is left stays blank at the bottom of the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

KEY_MIN_MM = 45.0
MIN_TABLE_ROWS = 3
GAP_MM = 3.0  # between close-ups
TABLE_GAP_MM = 2.0  # after each table
COLUMN_CHOICES = (4, 5, 6)  # close-ups per row, largest first


@dataclass(frozen=True)
class TableSize:
    rows: int  # rows the table has
    extra_mm: float = 0.0  # notes under it


@dataclass(frozen=True)
class PagePlan:
    key_h: float  # the key images' box height
    shown: int  # close-ups drawn
    cols: int  # close-ups per row
    crop_w: float  # a close-up's side
    crops_h: float  # the close-ups' rows, and the "not shown" line when there is one
    table_rows: list[int] = field(default_factory=list)  # rows shown of each table


def row_budget(tables: list[TableSize], room: float, row_h: float, title_h: float) -> list[int]:
    """How many rows of each table fit in ``room`` mm (a "… n more" line counts as a row)."""
    wanted = [t.rows for t in tables]
    fixed = sum(title_h + row_h + TABLE_GAP_MM + t.extra_mm for t in tables)  # titles, header rows, notes
    rows_room = max(int((room - fixed) // row_h), 0)
    empty_rows = sum(1 for n in wanted if n == 0)  # "none" line
    if sum(wanted) + empty_rows <= rows_room:
        return wanted
    budget = [0] * len(tables)
    left = rows_room - empty_rows - sum(1 for n in wanted if n)  # one line each for "… n more"
    while left > 0 and any(b < n for b, n in zip(budget, wanted)):  # round-robin: each table shows its first rows
        for i, n in enumerate(wanted):
            if left > 0 and budget[i] < n:
                budget[i] += 1
                left -= 1
    return [min(b + (1 if b + 1 == n else 0), n) for b, n in zip(budget, wanted)]


def tables_height(tables: list[TableSize], budget: list[int], row_h: float, title_h: float) -> float:
    """The height the tables take with ``budget`` rows each (as ``viewer.qt.capture.report`` paints them)."""
    total = 0.0
    for table, n in zip(tables, budget):
        more = 1 if n < table.rows else 0
        total += title_h + row_h * (1 + max(n, 1) + more) + table.extra_mm + TABLE_GAP_MM
    return total


def crop_width(width: float, cols: int) -> float:
    return (width - GAP_MM * (cols - 1)) / cols


def plan_page(avail: float, width: float, n_crops: int, n_findings: int, key_natural_h: float, key_caption_h: float,
              crop_caption_h: float | Mapping[int, float], note_h: float, tables: list[TableSize], row_h: float,
              title_h: float) -> PagePlan:
    """Share ``avail`` mm (below the study lines, above provenance and footer) as the module notes say.

    ``n_crops``: close-ups drawn and ready; ``n_findings``: findings in all (the others are named on the line
    of ``note_h`` mm). ``key_caption_h`` includes the gap under the key images' captions; ``crop_caption_h``, the
    close-ups' (per number of columns, when a mapping: narrower close-ups wrap their captions into more lines).
    """
    caption_of = crop_caption_h if isinstance(crop_caption_h, Mapping) else dict.fromkeys(COLUMN_CHOICES,
                                                                                            crop_caption_h)
    minimum = [TableSize(min(t.rows, MIN_TABLE_ROWS), t.extra_mm) for t in tables]
    tables_min = tables_height(minimum, [t.rows for t in minimum], row_h, title_h)
    tables_min += sum(row_h for t in tables if t.rows > MIN_TABLE_ROWS)  # their "… n more" lines
    for shown in range(n_crops, -1, -1):  # the most close-ups that fit
        options = []
        for cols in COLUMN_CHOICES if shown else COLUMN_CHOICES[:1]:
            crop_w = crop_width(width, cols)
            rows = math.ceil(shown / cols)
            crops_h = rows * (crop_w + caption_of[cols] + GAP_MM) + (note_h + 1.0 if shown < n_findings else 0.0)
            room = avail - crops_h - KEY_MIN_MM - key_caption_h
            if room < tables_min and shown:
                continue
            budget = row_budget(tables, room, row_h, title_h)
            spare = room - tables_height(tables, budget, row_h, title_h)
            key_h = min(key_natural_h, KEY_MIN_MM + max(spare, 0.0))
            options.append(((sum(budget), round(key_h, 1), crop_w), PagePlan(key_h, shown, cols, crop_w, crops_h,
                                                                               budget)))
        if options:
            return max(options, key=lambda o: o[0])[1]
    raise AssertionError("unreachable: a plan without close-ups always exists")
