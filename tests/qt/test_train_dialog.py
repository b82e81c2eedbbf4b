"""AI → Train model…: a real (tiny) training runs in a child process while the window keeps serving events, the
dialog draws its curve, and "Add to models" makes Run AI's registry list the result; Cancel stops the child.

Tiny phantoms and a tiny U-Net (as ``tests/ai/test_train_loop.py``), so a run takes seconds.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the child trains

AI_TESTS = Path(__file__).resolve().parents[1] / "ai"
if str(AI_TESTS) not in sys.path:
    sys.path.insert(0, str(AI_TESTS))

from stall_probe import STALL_BOUND_S, StallProbe  # noqa: E402
from training_cases import TINY_TRAIN_ARGS, process_gone, write_dataset  # noqa: E402

TINY = TINY_TRAIN_ARGS
_gone = process_gone


@pytest.fixture
def window(new_window):
    w = new_window(size=(1200, 800))
    yield w
    w.close()


LONG = ("--steps-per-epoch", "3", "--patience", "100000")  # a run that never stops early: only Cancel ends it


def _dialog(window, tmp_path, out_name, extra):
    dialog = window.ai.open_train_dialog()
    dialog.extra = TINY + extra
    dialog.data_edit.setText(str(write_dataset(tmp_path / "data", [11, 12, 13])))
    dialog.out_edit.setText(str(tmp_path / "models" / out_name))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    return dialog


def test_train_model_runs_off_the_gui_draws_its_curve_and_adds_the_model(qtbot, window, tmp_path):
    action = window.action_registry.action("ai.train")
    assert action.text().replace("&", "") == "Train model…"
    action.trigger()
    dialog = window.ai.train_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.close()
    dialog = _dialog(window, tmp_path, "tiny-lungs", ("--steps-per-epoch", "4"))
    dialog.labels_edit.setText("lung_left, lung_right")
    dialog.minutes_spin.setValue(0.2)  # 12 s, or fewer when the validation Dice stops improving (patience)
    probe = StallProbe().start()
    assert dialog.start()
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.snapshot is not None and dialog.snapshot.finished, timeout=90000)
    gap = probe.stop()
    snap = dialog.snapshot
    assert snap.state == "done", "\n".join(snap.log)
    assert gap < STALL_BOUND_S, f"the GUI stalled {gap * 1000:.0f} ms during the training"
    assert probe.ticks > 100
    steps = [p.step for p in snap.points]
    assert len(snap.points) >= 3 and steps == sorted(steps) and steps[0] == 0
    assert len(dialog.loss_curve.getData()[0]) >= 2 and len(dialog.dice_curve.getData()[0]) >= 3
    assert (tmp_path / "models" / "tiny-lungs" / "model.toml").exists()
    assert dialog.add_button.isEnabled() and "Done" in dialog.status_label.text()
    assert "tiny-lungs" not in window.ai.registry().ids()
    dialog.add_button.click()
    assert dialog.added is not None and dialog.added.id == "tiny-lungs"
    assert "tiny-lungs" in window.ai.registry().ids()  # Run AI lists it at once
    assert "Added" in dialog.status_label.text()
    if os.environ.get("RADVIEW_TRAIN_SCREENSHOT"):
        dialog.grab().save(os.environ["RADVIEW_TRAIN_SCREENSHOT"])
    dialog.close()


def test_cancel_stops_the_child_and_the_dialog_says_cancelled(qtbot, window, tmp_path):
    dialog = _dialog(window, tmp_path, "long", LONG)
    dialog.minutes_spin.setValue(30)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.snapshot is not None and any(p.step > 0 for p in dialog.snapshot.points),
                    timeout=90000)
    pid = dialog.run.pid
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.snapshot.finished, timeout=30000)
    assert dialog.snapshot.state == "cancelled"
    assert "cancelled" in dialog.status_label.text().lower()
    assert _gone(pid)
    assert dialog.start_button.isEnabled() and not dialog.add_button.isEnabled()
    dialog.close()


def test_closing_the_window_cancels_a_running_training(qtbot, new_window, tmp_path):
    w = new_window(size=(1000, 700))
    dialog = _dialog(w, tmp_path, "closed", LONG)
    assert dialog.start()
    run = dialog.run
    w.close()
    assert run.cancel_event.is_set()
    qtbot.waitUntil(lambda: run.wait(0), timeout=30000)
    assert _gone(run.pid)


def test_the_dialog_is_kept_and_a_run_cancelled_by_closing_it_ends_as_cancelled(qtbot, window, tmp_path):
    dialog = _dialog(window, tmp_path, "closed", LONG)
    assert dialog.start()
    dialog.close()
    qtbot.waitUntil(lambda: dialog.snapshot is not None and dialog.snapshot.finished, timeout=30000)
    assert dialog.snapshot.state == "cancelled" and _gone(dialog.run.pid)
    assert window.ai.open_train_dialog() is dialog and dialog.start_button.isEnabled()
    dialog.close()


def test_a_request_without_data_is_not_started(window):
    dialog = window.ai.open_train_dialog()
    assert not dialog.start() and "Not started" in dialog.status_label.text()
    dialog.close()


# --- reviewed results in radview's store as the data ------------------------------------------------------------
@pytest.fixture(scope="module")
def reviewed_store(tmp_path_factory):
    from reviewed_store import make_store

    tmp = tmp_path_factory.mktemp("reviewed")
    store, images, _ = make_store(tmp)  # P1 accepted, P2 edited, P3 rejected, P4 not reviewed, P5 on another grid
    return tmp, store, images


def _reviewed_dialog(window, reviewed_store, tmp_path):
    tmp, store, images = reviewed_store
    dialog = window.ai.open_train_dialog()
    dialog.extra = TINY + LONG
    panel = dialog.reviewed_panel
    panel.store_dir, panel.study_db = store, tmp / "no-db"
    panel.images_edit.setText(str(images))
    dialog.out_edit.setText(str(tmp_path / "models" / "reviewed"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    return dialog, panel


def _rows(panel):
    from PySide6.QtCore import Qt

    t = panel.table
    return {t.item(r, 0).text(): (t.item(r, 1).text(), t.item(r, 0).checkState() == Qt.Checked,
                                  bool(t.item(r, 0).flags() & Qt.ItemIsEnabled), t.item(r, 4).text())
            for r in range(t.rowCount())}


def test_reviewed_results_are_listed_and_exported_off_the_gui_then_trained_on(qtbot, window, reviewed_store,
                                                                             tmp_path):
    from ai.training.dataset import open_dataset

    dialog, panel = _reviewed_dialog(window, reviewed_store, tmp_path)
    assert dialog.data_edit.isVisible() and not panel.isVisible()
    probe = StallProbe().start()
    dialog.reviewed_radio.setChecked(True)  # the store is listed in the background
    assert panel.listing_running and panel.listing is None
    assert panel.isVisible() and not dialog.data_edit.isVisible() and dialog.dataset_edit.isVisible()
    qtbot.waitUntil(lambda: panel.listing is not None, timeout=60000)
    rows = _rows(panel)
    assert {p: r[0] for p, r in rows.items()} == {"P1": "accepted", "P2": "edited", "P3": "rejected",
                                                  "P4": "not reviewed", "P5": "accepted"}
    assert [p for p, r in sorted(rows.items()) if r[1]] == ["P1", "P2"]  # the reviewed ones ticked
    assert [p for p, r in sorted(rows.items()) if r[2]] == ["P1", "P2"]  # only they can be ticked
    assert rows["P3"][3].startswith("rejected") and rows["P4"][3].startswith("not reviewed")
    assert "another grid than its image" in rows["P5"][3] and rows["P1"][3].endswith(f"(folder {reviewed_store[2]})")
    if os.environ.get("RADVIEW_REVIEWED_SCREENSHOT"):
        dialog.grab().save(os.environ["RADVIEW_REVIEWED_SCREENSHOT"])

    assert dialog.start()  # the export runs first, in the background; then the training starts on it
    assert dialog.export_job is not None and dialog.running and not dialog.start_button.isEnabled()
    assert dialog.run is None and "Exporting 2 reviewed case(s)" in dialog.status_label.text()
    qtbot.waitUntil(lambda: dialog.run is not None or dialog.export_job is None, timeout=60000)
    gap = probe.stop()
    assert dialog.run is not None, dialog.status_label.text()
    assert gap < STALL_BOUND_S, f"the GUI stalled {gap * 1000:.0f} ms while listing and exporting"
    data = tmp_path / "models" / "reviewed-data"
    assert dialog.run.request.data == str(data) and dialog.exported.root == str(data)
    dataset = open_dataset(data)
    assert {c.patient for c in dataset.cases} == {"P1", "P2"} and dataset.labels == ("lung_left", "lung_right")
    assert sorted(c.patient_id for c, _ in dialog.exported.left_out) == ["P3", "P4", "P5"]
    dialog.cancel()  # the training from a folder is tested above: here it only has to start on the export
    qtbot.waitUntil(lambda: dialog.snapshot is not None and dialog.snapshot.finished, timeout=30000)
    assert _gone(dialog.run.pid) and dialog.start_button.isEnabled()
    dialog.close()


def test_a_reviewed_dataset_training_would_refuse_is_not_started_and_says_why(qtbot, window, reviewed_store,
                                                                              tmp_path):
    from PySide6.QtCore import Qt

    dialog, panel = _reviewed_dialog(window, reviewed_store, tmp_path)
    dialog.reviewed_radio.setChecked(True)
    qtbot.waitUntil(lambda: panel.listing is not None, timeout=60000)
    panel.table.item(next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 0).text() == "P2"),
                     0).setCheckState(Qt.Unchecked)
    assert [c.patient_id for c in panel.checked_cases()] == ["P1"]
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.export_job is None, timeout=60000)
    assert dialog.run is None and dialog.start_button.isEnabled()
    assert "Not started: the dataset would be refused" in dialog.status_label.text()
    assert "at least 2 patients" in dialog.status_label.text()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    for r in range(panel.table.rowCount()):
        panel.table.item(r, 0).setCheckState(Qt.Unchecked)
    assert not dialog.start() and "no reviewed case is ticked" in dialog.status_label.text()
    dialog.close()
