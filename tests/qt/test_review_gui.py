"""Reviewing an AI result in the main window: accept / reject findings and the result, with real mouse and keys;
the header, the table, what the views draw, undo / redo, and the decisions coming back with the study."""
from __future__ import annotations

import getpass
import json
from datetime import datetime

import numpy as np
import pytest
from input_events import drag
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QApplication

from ai.api import Detection, InferenceResult, Provenance
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import NOT_REVIEWED, layers_from_result
from viewer.io.volume import Volume
from viewer.qt.main_window import MainWindow

GEOM = Geometry((30, 48, 56), (2.0, 0.8, 0.8), (-20.0, -16.0, -30.0), ((-1, 0, 0), (0, 1, 0), (0, 0, 1)))
STUDY, SERIES = "1.2.826.0.1.9.1", "1.2.826.0.1.9.1.2"
NODULES = (((14, 20, 20), 4.0), ((14, 30, 36), 3.0), ((20, 12, 12), 3.5))  # (z, y, x) centre voxel, radius mm
USER = getpass.getuser()


def _ball(centre, radius):
    zz, yy, xx = np.indices(GEOM.shape_zyx)
    sz, sy, sx = GEOM.spacing_zyx
    cz, cy, cx = centre
    return ((zz - cz) * sz) ** 2 + ((yy - cy) * sy) ** 2 + ((xx - cx) * sx) ** 2 <= radius ** 2


def _volume():
    image = np.full(GEOM.shape_zyx, -850, np.int16)
    for centre, radius in NODULES:
        image[_ball(centre, radius)] = 40
    return Volume(image, GEOM, meta={"modality": "CT", "study_uid": STUDY, "series_uid": SERIES,
                                     "description": "review test"})


def _result():
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[4:26, 4:44, 4:52] = 2
    for centre, radius in NODULES:
        labels[_ball(centre, radius)] = 8
    dets = tuple(Detection(tuple(GEOM.index_to_world(c)), 2 * r, 0.1, 40.0, "solid", 0.9 - 0.1 * i, "nodule",
                           "lung_left") for i, (c, r) in enumerate(NODULES))
    prov = Provenance("test-nodules", "Test nodules", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.3, "2026-01-01T00:00:00Z")
    return InferenceResult(GEOM, prov, labels, {2: "lung_left", 8: "nodule"}, dets)


def _window(qtbot, tmp_path) -> MainWindow:
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat),
                   annotation_dir=str(tmp_path / "annotations"))
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitExposed(w)
    w.session.load_volume(_volume(), preset="lung")
    for layer in layers_from_result(_result(), GEOM):
        w.session.add_layer(layer)
    w.ai.findings_dock.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    yield w
    w.close()


def _click_row(qtbot, panel, row, column=1):
    rect = panel.table.visualItemRect(panel.table.item(row, column))
    qtbot.mouseClick(panel.table.viewport(), Qt.LeftButton, pos=rect.center())


def _marker_texts(view):
    return {i.textItem.toPlainText(): i for i in view._marker_items if hasattr(i, "textItem")}


def _marker_circles(view):
    return [i for i in view._marker_items if not hasattr(i, "textItem")]


def _focus(qtbot, w, widget):
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=2000)


def test_accept_and_reject_change_the_row_the_header_and_the_markers(window, qtbot):
    w = window
    panel = w.ai.findings
    axial = w.layout_widget.views["axial"]
    assert panel.row_count() == 3 and panel.review_label.text() == NOT_REVIEWED
    assert [panel.review_text(r) for r in range(3)] == ["not reviewed"] * 3
    assert panel.buttons["accept"].toolTip().startswith("Accept the selected finding (Y)")
    assert "(Shift+Y)" in panel.buttons["accept_result"].toolTip()

    # N1: click the row (the views jump there), Y accepts it
    _click_row(qtbot, panel, 0)
    assert axial.k == axial.plane.slice_of(panel.centre_of_row(0))
    _focus(qtbot, w, panel.table)
    qtbot.keyClick(panel.table, Qt.Key_Y)
    assert panel.review_text(0) == "✓ accepted" and panel.table.currentRow() == 0  # the selection stays
    assert panel.table.item(0, 0).text() == "✓ N1"  # visible even with the Review column scrolled off
    assert panel.review_label.text() == ("AI result, not reviewed (1 of 3 findings decided, result not yet accepted) "
                                         "— not a diagnosis")
    texts = _marker_texts(axial)
    assert "✓ N1 8 mm solid 0.90" in texts
    # N2 (same axial slice): N rejects it; its marker turns grey and dashed
    _click_row(qtbot, panel, 1)
    qtbot.keyClick(panel.table, Qt.Key_N)
    assert panel.review_text(1) == "✗ rejected"
    assert panel.table.item(1, 0).foreground().color().getRgb()[:3] == (140, 140, 140)
    texts = _marker_texts(axial)
    assert "✗ N2 6 mm solid 0.80" in texts and "✓ N1 8 mm solid 0.90" in texts
    rejected_text = texts["✗ N2 6 mm solid 0.80"]
    assert rejected_text.color.getRgb()[:3] == (150, 150, 150)
    pens = sorted((c.pen().color().getRgb()[:3], c.pen().style()) for c in _marker_circles(axial))
    assert ((150, 150, 150), Qt.DashLine) in pens and ((255, 230, 0), Qt.SolidLine) in pens
    entry = w.session.annotations.review[review.ai_results(w.session)[0].detection_key(1)]
    assert entry["state"] == "rejected" and entry["user"] == USER
    assert datetime.fromisoformat(entry["time"]).utcoffset() is not None  # local time with its offset

    # N3 with the button, then the result as a whole with Shift+Y
    _click_row(qtbot, panel, 2)
    qtbot.mouseClick(panel.buttons["accept"], Qt.LeftButton)
    assert panel.review_text(2) == "✓ accepted"
    assert panel.review_label.text().startswith("AI result, not reviewed (3 of 3 findings decided")
    qtbot.keyClick(panel.table, Qt.Key_Y, Qt.ShiftModifier)
    whole = w.session.annotations.review[review.ai_results(w.session)[0].key]
    assert panel.review_label.text() == f"reviewed by {USER} at {whole['time']} — not a diagnosis"
    assert "Label map: ✓ accepted by" in panel.result_state_label.text()
    label_layer, marker_layer = w.session.layers
    assert label_layer.meta["reviewed"] and label_layer.meta["reviewed_by"] == USER
    assert marker_layer.meta["detection_review"] == ("accepted", "rejected", "accepted")

    # the decisions are in the study's file (autosaved)
    assert w.autosave.flush()
    doc = json.loads((w.autosave.store.path_for(STUDY)).read_text())
    states = {k: v["state"] for k, v in doc["review"].items()}
    assert sorted(states.values()) == ["accepted", "accepted", "accepted", "rejected"]
    assert f"result|test-nodules|{SERIES}" in states

    # rejecting the result: its label map is drawn grey, every undecided marker too
    qtbot.keyClick(panel.table, Qt.Key_N, Qt.ShiftModifier)
    assert panel.review_label.text().startswith(f"AI result rejected by {USER} at ")
    lut = axial.label_luts[id(label_layer)]
    assert tuple(lut[8, :3]) != label_layer.colors[8] and lut[8, 3] < label_layer.lut()[8, 3]
    assert abs(int(lut[8, 0]) - int(lut[8, 2])) < 60  # greyish
    qtbot.keyClick(panel.table, Qt.Key_U)  # N3 back to not reviewed: shown rejected with the result
    assert panel.review_text(2) == "✗ rejected (with the result)"


def test_undo_and_redo_of_decisions_with_ctrl_z_and_ctrl_y(window, qtbot):
    w = window
    panel = w.ai.findings
    _click_row(qtbot, panel, 0)
    _focus(qtbot, w, panel.table)
    qtbot.keyClick(panel.table, Qt.Key_Y)
    qtbot.keyClick(panel.table, Qt.Key_N)  # changed my mind: rejected
    assert panel.review_text(0) == "✗ rejected"
    assert w.measure.undo_action.text() == "&Undo reject finding"
    axial = w.layout_widget.views["axial"]
    _focus(qtbot, w, axial)
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)  # in a view: the same undo stack
    assert panel.review_text(0) == "✓ accepted"
    _focus(qtbot, w, panel.table)
    qtbot.keyClick(panel.table, Qt.Key_Z, Qt.ControlModifier)  # in the panel: the window's Undo
    assert panel.review_text(0) == "not reviewed" and panel.review_label.text() == NOT_REVIEWED
    assert not any(t.startswith(("✓", "✗")) for t in _marker_texts(axial))
    qtbot.keyClick(panel.table, Qt.Key_Y, Qt.ControlModifier)
    assert panel.review_text(0) == "✓ accepted"
    qtbot.keyClick(panel.table, Qt.Key_Y, Qt.ControlModifier)
    assert panel.review_text(0) == "✗ rejected"
    assert "✗ N1 8 mm solid 0.90" in _marker_texts(axial)
    # the context menu: accept all the undecided findings in one step (one undo)
    menu = panel.build_context_menu()
    (action,) = [a for a in menu.actions() if a.text() == "Accept all findings not yet decided"]
    action.trigger()
    assert [panel.review_text(r) for r in range(3)] == ["✗ rejected", "✓ accepted", "✓ accepted"]
    w.measure.undo_action.trigger()
    assert [panel.review_text(r) for r in range(3)] == ["✗ rejected", "not reviewed", "not reviewed"]


def test_decisions_come_back_when_the_study_is_reopened_and_the_model_run_again(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    panel = w.ai.findings
    panel.decide_row(0, review.ACCEPTED)
    panel.decide_row(1, review.REJECTED)
    panel.decide_row(2, review.ACCEPTED)
    panel.decide_result(review.ACCEPTED)
    header = panel.review_label.text()
    assert header.startswith(f"reviewed by {USER} at ")
    w.close()  # writes what is pending

    w2 = _window(qtbot, tmp_path)  # the study reopened, the same model run again (new layers)
    try:
        panel2 = w2.ai.findings
        assert [panel2.review_text(r) for r in range(3)] == ["✓ accepted", "✗ rejected", "✓ accepted"]
        assert panel2.review_label.text() == header
        axial = w2.layout_widget.views["axial"]
        axial.set_slice(axial.plane.slice_of(panel2.centre_of_row(1)))
        assert "✗ N2 6 mm solid 0.80" in _marker_texts(axial)
        assert not w2.session.annotations.undo_stack.can_undo  # a reopened study starts a new history
    finally:
        w2.close()


def test_editing_an_accepted_label_map_asks_for_a_new_decision(window, qtbot):
    w = window
    panel = w.ai.findings
    for row in range(3):
        panel.decide_row(row, review.ACCEPTED)
    panel.decide_result(review.ACCEPTED)
    assert panel.review_label.text().startswith("reviewed by ")
    label_layer = w.session.layers[0]
    axial = w.layout_widget.views["axial"]
    w.session.set_active_label(label_layer, 8)
    _focus(qtbot, w, axial)
    qtbot.keyClick(axial, Qt.Key_B)
    c = axial.viewport().rect().center()
    drag(axial.viewport(), c, c + QPoint(30, 0))
    assert label_layer.meta["edited_by"] == USER
    assert panel.review_label.text().startswith("AI result, not reviewed (3 of 3 findings decided, result not yet")
    assert "decide again" in panel.result_state_label.text() and f"edited by {USER}" in panel.result_state_label.text()
    assert panel.structures_label.text() == "Structures"  # (no structures in this result: the label is hidden)
    panel.decide_result(review.ACCEPTED)  # accepting after the edit: reviewed, and the entry says it was edited
    assert panel.review_label.text().startswith("reviewed by ")
    entry = w.session.annotations.review[f"result|test-nodules|{SERIES}"]
    assert entry["edited_by"] == USER and entry["revision"] == label_layer.meta["revision"]
    assert label_layer.meta["reviewed"]
    # undoing the acceptance and then the stroke: back to the model's label map, accepted as it was
    w.measure.undo_action.trigger()
    w.measure.undo_action.trigger()
    assert "edited_by" not in label_layer.meta and panel.review_label.text().startswith("reviewed by ")


def test_view_positions_are_unchanged_by_review(window, qtbot):
    """Deciding does not move the cursor or the slices (only clicking a row does)."""
    w = window
    panel = w.ai.findings
    _click_row(qtbot, panel, 2)
    before = {name: v.k for name, v in w.layout_widget.views.items()}
    cursor = w.session.cursor_lps.copy()
    panel.decide_current(review.REJECTED)
    panel.decide_result(review.ACCEPTED)
    assert {name: v.k for name, v in w.layout_widget.views.items()} == before
    assert np.allclose(w.session.cursor_lps, cursor)


def test_with_two_results_the_result_box_chooses_which_one_is_decided(window, qtbot):
    w = window
    panel = w.ai.findings
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[4:26, 4:44, 4:28] = 1
    prov = Provenance("test-lungs", "Test lungs", "2.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.1, "2026-01-01T00:00:00Z")
    lungs, none = layers_from_result(InferenceResult(GEOM, prov, labels, {1: "lung_left"}), GEOM)
    assert none is None
    w.session.add_layer(lungs)
    assert panel.result_box.isEnabled() and panel.result_box.count() == 2
    assert panel.result_box.currentText() == "Test lungs"  # the last one added
    assert panel.review_label.text() == f"Test nodules: {NOT_REVIEWED}\nTest lungs: {NOT_REVIEWED}"
    _click_row(qtbot, panel, 1)  # a finding selects its result
    assert panel.result_box.currentText() == "Test nodules"
    assert panel.result_state_label.text().startswith("Test nodules: Label map: not reviewed · 0 of 3 findings")
    panel.select_result(review.ai_results(w.session)[1])
    assert panel.result_state_label.text().startswith("Test lungs: Label map: not reviewed")
    qtbot.mouseClick(panel.buttons["accept_result"], Qt.LeftButton)
    lines = panel.review_label.text().split("\n")
    assert lines[0] == f"Test nodules: {NOT_REVIEWED}" and lines[1].startswith(f"Test lungs: reviewed by {USER} at ")
    assert lungs.meta["reviewed"] and not w.session.layers[0].meta["reviewed"]
