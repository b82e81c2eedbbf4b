"""Measurements in the main window: the Measure menu, window-wide undo, saving and reopening a study."""
from __future__ import annotations

import json

import pytest
from input_events import drag
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QApplication

from viewer.qt.main_window import MainWindow


def _window(qtbot, tmp_path) -> MainWindow:
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat),
                   annotation_dir=str(tmp_path / "annotations"))
    qtbot.addWidget(w)
    w.show()
    return w


def _open_demo(qtbot, w) -> None:
    w.open_demo()
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running and w.opener.after_load is None,
                    timeout=60000)


def _draw_length(view, dx=120, dy=30):
    c = view.viewport().rect().center()
    drag(view.viewport(), c - QPoint(dx // 2, dy // 2), c + QPoint(dx // 2, dy // 2))


def test_measure_menu_undo_and_reopening_the_study(qtbot, tmp_path, demo_volume):
    w = _window(qtbot, tmp_path)
    _open_demo(qtbot, w)
    axial = w.layout_widget.views["axial"]
    titles = [a.text().replace("&", "") for a in w.menuBar().actions()]
    assert titles.index("View") < titles.index("Measure") < titles.index("Help")
    w.measure.tool_actions["length"].trigger()  # the menu chooses the tool for every view
    assert w.layout_widget.tools.tool == "length"
    _draw_length(axial)
    _draw_length(axial, 60, -80)
    first, second = list(w.session.annotations)
    assert first.value > 50 and w.measure.undo_action.isEnabled()
    # Ctrl+Z is a window shortcut: it works with the focus anywhere in the window
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    w.browser.setFocus()
    qtbot.keyClick(w.browser, Qt.Key_Z, Qt.ControlModifier)
    assert list(w.session.annotations) == [first]
    assert w.measure.redo_action.isEnabled()
    # the key L / Esc in a view and the menu's check marks agree
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key_Escape)
    qtbot.keyClick(axial, Qt.Key_Escape)
    assert w.measure.tool_actions[""].isChecked()
    w.session.annotations.set_review("ai:nodule:3", "accepted")
    assert w.autosave.flush()
    path = tmp_path / "annotations" / f"{demo_volume.meta['study_uid']}.json"
    doc = json.loads(path.read_text())
    assert [m["id"] for m in doc["measurements"]] == [first.id]
    assert doc["review"]["ai:nodule:3"]["state"] == "accepted"
    gui, write = sorted(w.autosave.schedule_ms), sorted(w.autosave.write_ms)
    print(f"\nautosave in the window: GUI thread {gui[len(gui) // 2]:.3f} ms per change (median; max {gui[-1]:.3f}), "
          f"writer {write[len(write) // 2]:.2f} ms per file (median; max {write[-1]:.2f})")
    w.close()

    # a new window on the same study: the measurement and the review are back, and drawn
    w2 = _window(qtbot, tmp_path)
    _open_demo(qtbot, w2)
    try:
        assert list(w2.session.annotations) == [first]
        assert w2.session.annotations.review["ai:nodule:3"]["state"] == "accepted"
        axial2 = w2.layout_widget.views["axial"]
        axial2.set_slice(axial2.plane.slice_of(first.points[0]))
        assert [a.id for a in axial2.annotation_overlay.in_plane()] == [first.id]
    finally:
        w2.close()


def test_a_damaged_file_is_reported_and_kept(qtbot, tmp_path, demo_volume):
    folder = tmp_path / "annotations"
    folder.mkdir()
    path = folder / f"{demo_volume.meta['study_uid']}.json"
    path.write_text("{ this is not json")
    w = _window(qtbot, tmp_path)
    try:
        _open_demo(qtbot, w)
        assert "damaged" in w.notices.last_message and ".corrupt-" in w.notices.last_message
        assert w.notices.message_box is not None and w.notices.message_box.isVisible()
        kept = [p for p in folder.iterdir() if ".corrupt-" in p.name]
        assert len(kept) == 1 and kept[0].read_text() == "{ this is not json"
        assert len(w.session.annotations) == 0
    finally:
        w.close()


@pytest.mark.parametrize("tool", ["ellipse", "rectangle"])
def test_roi_in_the_window_reports_hu(qtbot, tmp_path, tool):
    w = _window(qtbot, tmp_path)
    try:
        _open_demo(qtbot, w)
        axial = w.layout_widget.views["axial"]
        axial.setFocus()
        qtbot.keyClick(axial, Qt.Key_E if tool == "ellipse" else Qt.Key_R)
        _draw_length(axial, 60, 40)
        (roi,) = list(w.session.annotations)
        assert roi.kind == tool and roi.stats["mean"] is not None and -1100 < roi.stats["mean"] < 3000
        assert roi.stats["area_mm2"] > 100
    finally:
        w.close()
