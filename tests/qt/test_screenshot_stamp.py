"""Exports say what they show: a screenshot with AI content in view carries the stamp band ("AI result, not
reviewed — not a diagnosis", or "reviewed by … at …") and a legend of the labels shown, below the image and
covering none of it; a screenshot without AI content has neither; the crosshair is left out unless asked for.

The demo CT in the main window; real rendering, compared pixel by pixel. The band is found by its own colour
(``viewer.qt.capture.stamp.BAND_COLOR``), the legend by its swatches' label colours, the stamp's text by its
amber (not reviewed) or white (reviewed) pixels on the band.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage

from ai.api import InferenceResult, Provenance
from viewer.core.ai_bridge import layers_from_result
from viewer.core.layers import LabelLayer, default_color
from viewer.io.volume import LabelMap
from viewer.logic.export_stamp import export_stamp
from viewer.qt.capture.screenshot import ScreenshotOptions, render, stamp_of
from viewer.qt.capture.stamp import BAND_COLOR, WARNING_COLOR

PROV = Provenance("test-lungs", "Test lungs", "2.1", "classical image analysis, not a learned network", "cpu",
                  "float32", 0.3, "2026-01-02T00:00:00Z", {})
NODULE, LUNG_LEFT = (1, "nodule"), (2, "lung_left")
BOX = (slice(200, 236), slice(330, 370))


def to_array(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : 3 * w].reshape(h, w, 3).astype(np.int16)


def near(img: np.ndarray, rgb, tol: int = 12) -> np.ndarray:
    return np.abs(img - np.array(rgb)).max(axis=-1) <= tol


def band_rows(img: np.ndarray) -> int:
    """How many rows at the bottom are the stamp band (its own colour in the margins at both ends of the row)."""
    colour = BAND_COLOR.getRgb()[:3]
    band = near(img[:, :3], colour, 1).all(axis=1) & near(img[:, -3:], colour, 1).all(axis=1)
    n = 0
    while n < len(band) and band[len(band) - 1 - n]:
        n += 1
    return n


@pytest.fixture
def window(qtbot, demo_series_window):
    demo_series_window.set_layout("1x1")
    qtbot.wait(50)
    return demo_series_window


def ai_label_layer(volume, k: int, *, other_slice: bool = False):
    """An AI result with a nodule box and a 'lung_left' block on slice ``k`` (or far from it)."""
    g = volume.geometry
    labels = np.zeros(g.shape_zyx, np.uint8)
    z = slice(2, 5) if other_slice else slice(k - 2, k + 3)
    labels[z, 150:190, 320:400] = LUNG_LEFT[0]
    labels[z, BOX[0], BOX[1]] = NODULE[0]
    result = InferenceResult(g, PROV, labels, dict([NODULE, LUNG_LEFT]))
    return layers_from_result(result, g)[0]


def test_an_ai_label_layer_brings_the_band_and_its_legend(window, qtbot):
    view = window.layout_widget.active
    session = window.session
    plain = to_array(render(view))
    assert plain.shape[:2] == (view.height(), view.width()) and band_rows(plain) == 0
    layer = ai_label_layer(session.volume, view.k)
    session.add_layer(layer)
    qtbot.wait(50)
    view = window.layout_widget.active
    stamp = stamp_of(view)
    assert stamp.lines == ("AI result, not reviewed — not a diagnosis (Test lungs, version 2.1)",)
    assert [(e.name, e.color) for e in stamp.legend] == [("nodule", default_color(1, "nodule")),
                                                          ("lung_left", default_color(2, "lung_left"))]
    img = to_array(render(view))
    h, w = view.height(), view.width()
    band = img[h:]
    assert img.shape[1] == w and band_rows(img) == img.shape[0] - h > 30  # the band is added below the image
    assert not near(img[:h], BAND_COLOR.getRgb()[:3], 0).all(axis=1).any()  # ... and covers none of it
    assert near(band, WARNING_COLOR.getRgb()[:3], 25).sum() > 150  # the stamp's amber text
    for _label, name in (NODULE, LUNG_LEFT):  # a swatch of each label shown
        assert near(band, default_color(_label, name), 3).sum() > 40, name
    # twice the size: the same band, twice as tall (legible at print size)
    two = to_array(render(view, ScreenshotOptions(scale=2.0)))
    assert two.shape[1] == 2 * w and abs(two.shape[0] - 2 * img.shape[0]) <= 2
    assert abs(band_rows(two) - 2 * band_rows(img)) <= 2


def test_no_ai_content_no_band(window, qtbot, demo_labels):
    view = window.layout_widget.active
    session = window.session
    h = view.height()
    plain_labels = LabelLayer(LabelMap(demo_labels.array, demo_labels.geometry, dict(demo_labels.labels)),
                              name="labels.nii.gz")  # a segmentation file: not AI
    session.add_layer(plain_labels)
    qtbot.wait(50)
    img = to_array(render(window.layout_widget.active))
    assert img.shape[0] == h and band_rows(img) == 0 and stamp_of(view).empty
    ai_elsewhere = ai_label_layer(session.volume, view.k, other_slice=True)  # AI labels, none on this slice
    session.add_layer(ai_elsewhere)
    qtbot.wait(50)
    assert stamp_of(window.layout_widget.active).empty
    assert to_array(render(window.layout_widget.active)).shape[0] == h
    view.set_slice(3)  # ... until a slice shows them
    assert stamp_of(window.layout_widget.active).lines
    session.update_layer(ai_elsewhere, visible=False)  # hidden: no AI content in view again
    assert to_array(render(window.layout_widget.active)).shape[0] == h


def test_a_reviewed_result_says_who_and_when(window, qtbot):
    from viewer.core import review

    view = window.layout_widget.active
    session = window.session
    session.add_layer(ai_label_layer(session.volume, view.k))
    result = review.ai_results(session)[0]
    review.decide_result(session.annotations, result, "accepted", "alice", "2026-02-03T10:00:00+01:00")
    qtbot.wait(50)
    view = window.layout_widget.active
    assert stamp_of(view).lines == ("reviewed by alice at 2026-02-03T10:00:00+01:00 — not a diagnosis "
                                    "(Test lungs, version 2.1)",)
    band = to_array(render(view))[view.height():]
    assert near(band, (235, 235, 235), 40).sum() > 150  # white text: reviewed
    text = band[: band.shape[0] // 2]  # the stamp's lines (the legend is below them)
    assert near(text, WARNING_COLOR.getRgb()[:3], 25).sum() < 5  # no amber warning


def test_the_layout_export_stamps_once_for_all_panes(window, qtbot):
    window.set_layout("1x3")
    qtbot.wait(50)
    layout = window.layout_widget
    session = window.session
    session.add_layer(ai_label_layer(session.volume, layout.views["axial"].k))
    qtbot.wait(50)
    img = to_array(render(layout))
    assert img.shape[0] > layout.height() and band_rows(img) == img.shape[0] - layout.height()
    assert export_stamp(session, [(v.plane, v.k) for v in layout.views.values()]).lines == stamp_of(layout).lines


def cursor_xy(view) -> tuple[int, int]:
    _k, row, col = view.plane.from_world(view.session.cursor_lps)
    row_mm, col_mm = view.plane.pixel_spacing
    p = view.mapFromScene(view.vb.mapViewToScene(QPointF((col + 0.5) * col_mm, (row + 0.5) * row_mm)))
    return round(p.x()), round(p.y())


def test_the_crosshair_is_left_out_unless_asked(window, qtbot):
    view = window.layout_widget.active
    assert view.hline.isVisible() and view.vline.isVisible()  # on screen
    without = to_array(render(view))
    with_lines = to_array(render(view, ScreenshotOptions(include_crosshair=True)))
    assert view.hline.isVisible() and view.vline.isVisible()  # the screen keeps its crosshair
    differ = np.abs(with_lines - without).max(axis=-1) > 8
    x, y = cursor_xy(view)
    rows, cols = np.flatnonzero(differ.mean(axis=1) > 0.5), np.flatnonzero(differ.mean(axis=0) > 0.5)
    assert len(rows) and len(cols), "the crosshair is not drawn when asked for"
    assert abs(rows.mean() - y) <= 2 and abs(cols.mean() - x) <= 2  # where the cursor is
    assert len(rows) <= 3 and len(cols) <= 3  # two lines, nothing else changed
    assert differ.sum() < 3 * (differ.shape[0] + differ.shape[1])


def test_an_ai_finding_alone_brings_the_band(window, qtbot):
    from ai.api import Detection

    view = window.layout_widget.active
    session = window.session
    g = session.volume.geometry
    centre = tuple(g.index_to_world((view.k, 218, 350)))
    result = InferenceResult(g, PROV, None, {}, (Detection(centre, 12.0, 0.9, 30.0, "solid", 0.8, "nodule",
                                                           "lung_left"),))
    _labels, markers = layers_from_result(result, g)
    session.add_layer(markers)
    qtbot.wait(50)
    view = window.layout_widget.active
    stamp = stamp_of(view)
    assert stamp.lines == ("AI result, not reviewed — not a diagnosis (Test lungs, version 2.1)",)
    assert [(e.name, e.kind) for e in stamp.legend] == [("AI findings", "marker")]
    img = to_array(render(view))
    assert img.shape[0] > view.height() and band_rows(img) == img.shape[0] - view.height()
    view.set_slice(view.k + 40)  # the marker does not reach that slice: nothing AI in view
    assert stamp_of(window.layout_widget.active).empty
