"""No two corner texts overlap (``shared/CONVENTIONS.md``, "Corner text"): the real main window at 1280×800 with the
demo study, in the 1×1, 1×3 and 2×2 layouts; every text's box is measured with ``QFontMetricsF`` of the font the
views paint with, and checked against every other text, the orientation letters and the scale bar."""
from __future__ import annotations

import itertools

import pytest
from input_events import move
from PySide6.QtCore import QRectF
from PySide6.QtGui import QFontMetricsF

from viewer.qt.views.corner_layout import layout_foreground
from viewer.qt.views.corner_text import CORNERS, WARNINGS
from viewer.qt.views.slice_foreground import foreground_font, foreground_items, view_scale_bar

WARNING = "irregular slice spacing (1.90 to 2.10 mm): resampled to a uniform 1.90 mm grid by linear interpolation"


@pytest.fixture
def window(qtbot, new_window, demo_paths):
    w = new_window(size=(1280, 800))
    w.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=30000)
    w.session.apply_preset("lung")
    w.session.volume.warnings.append(WARNING)  # a warning: it takes its own line
    yield w
    w.close()


def _boxes(view, fm: QFontMetricsF) -> list[tuple[str, str, QRectF]]:
    """(kind, text, box) of every text the view paints, measured anew from where it is drawn."""
    out = []
    for item in foreground_items(view, fm):
        box = QRectF(item.x, item.baseline - fm.ascent(), fm.horizontalAdvance(item.text), fm.ascent() + fm.descent())
        out.append((item.kind, item.text, box))
    return out


def _overlap(a: QRectF, b: QRectF) -> bool:
    return a.intersects(b) and a.intersected(b).width() > 0.01 and a.intersected(b).height() > 0.01


def _check_view(view, fm: QFontMetricsF) -> list[tuple[str, str, QRectF]]:
    boxes = _boxes(view, fm)
    w, h = view.viewport().width(), view.viewport().height()
    inside = QRectF(0, 0, w, h)
    bar = view_scale_bar(view, fm)
    for kind, text, box in boxes:
        assert inside.contains(box), (view.view, kind, text, box, (w, h))
        assert bar is None or not _overlap(box, bar.rect), (view.view, kind, text, "over the scale bar")
    for (k1, t1, b1), (k2, t2, b2) in itertools.combinations(boxes, 2):
        assert not _overlap(b1, b2), f"{view.view} {w}×{h}: {k1} {t1!r} overlaps {k2} {t2!r}"
    return boxes


@pytest.mark.parametrize("layout", ["1x1", "1x3", "2x2"])
def test_no_corner_text_overlaps_another(window, qtbot, layout):
    w = window
    w.set_layout(layout)
    qtbot.wait(50)
    assert (w.width(), w.height()) == (1280, 800)
    fm = QFontMetricsF(foreground_font())
    views = [v for v in w.layout_widget.views.values() if v.isVisible()]
    assert len(views) == {"1x1": 1, "1x3": 3, "2x2": 3}[layout]
    for view in views:
        move(view.viewport(), view.viewport().rect().center())  # a read-out in the bottom left
        assert view.hover is not None
        texts = view.corner_texts()
        assert texts["top_right"] and texts[WARNINGS] and len(texts["bottom_left"]) == 4
        boxes = _check_view(view, fm)
        shown = {}  # kind → its texts, top to bottom
        for kind, text, _box in sorted(boxes, key=lambda b: (b[2].top(), b[2].left())):
            shown.setdefault(kind, []).append(text)
        # every line is there, whole or elided at its end; the image number and the read-out whole
        for corner in (*CORNERS, WARNINGS):
            assert len(shown.get(corner, [])) == len(texts[corner]), (layout, view.view, corner)
            for full, painted in zip(texts[corner], shown.get(corner, [])):
                assert painted == full or painted.endswith("…") and full.startswith(painted[:-1]), (full, painted)
        assert texts["top_left"][0] in shown["top_left"]
        assert texts["bottom_left"][1] in shown["bottom_left"]  # the value under the mouse
        assert sorted(shown["letter"]) == sorted(view.plane.edge_letters().values())
        # warnings on their own line, below both top blocks
        by_kind = {kind: [box for k, _t, box in boxes if k == kind] for kind in shown}
        lowest_top = max(box.bottom() for kind in ("top_left", "top_right") for box in by_kind[kind])
        assert all(box.top() >= lowest_top for box in by_kind[WARNINGS])
        # no patient data: nothing takes its place over the other texts either
    w.session.set_display(show_patient_data=False)
    for view in views:
        assert all(kind != "top_right" for kind, _t, _b in _check_view(view, fm))


def test_a_tiny_view_drops_what_does_not_fit_instead_of_overlapping(qtbot):
    fm = QFontMetricsF(foreground_font())
    corners = {"top_left": ["Im 120/240", "Z -123.5 mm  Thk 1.25 mm", "Se 4: a long series description"],
               "top_right": ["Patient^Name", "ID 12345", "1950-01-01 F", "Hospital", "Study", "2024-01-01"],
               "bottom_left": ["LPS 1.0, 2.0, 3.0 mm", "-1000 HU", "W 400 L 40 (soft tissue)", "Zoom 1.00×"],
               "bottom_right": ["2024-01-01 09:30:00", "120 kVp  200 mAs", "Kernel B30f", "CT"],
               WARNINGS: ["⚠ " + WARNING]}
    letters = {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    for w, h in ((120, 120), (180, 240), (300, 160), (640, 480)):
        placed = layout_foreground(fm, w, h, corners, letters)
        for a, b in itertools.combinations(placed, 2):
            assert not _overlap(a.rect, b.rect), ((w, h), a.text, b.text)
        assert all(QRectF(0, 0, w, h).contains(p.rect) for p in placed)
        assert [p.text for p in placed if p.kind == "letter"] == list(letters.values())
    roomy = layout_foreground(fm, 1000, 800, corners, letters)
    assert sorted(p.text for p in roomy if p.kind != "letter") == sorted(sum(corners.values(), []))


def test_acquisition_lines_say_what_the_modality_needs():
    from viewer.qt.views.corner_text import acquisition_lines

    ct = {"series_info": {"acquisition_date": "20240315", "acquisition_time": "101700.5", "kvp": 120.0, "mas": 87.5,
                          "kernel": "B30f"}}
    assert acquisition_lines(ct, "CT") == ["2024-03-15 10:17:00", "120 kVp  87.5 mAs", "Kernel B30f", "CT"]
    assert acquisition_lines(ct, "CT", acquisition_date=False) == ["120 kVp  87.5 mAs", "Kernel B30f", "CT"]
    mr = {"series_info": {"date": "20210902", "time": "130004", "tr": 6.501, "te": 2.93, "field_strength": 3.0}}
    assert acquisition_lines(mr, "MR") == ["2021-09-02 13:00:04", "TR 6.5 TE 2.9 ms", "3.0 T", "MR"]
    mr["series_info"]["tr"] = 2300.0
    assert acquisition_lines(mr, "MR")[1] == "TR 2300 TE 2.9 ms"
    assert acquisition_lines({}, "") == []
