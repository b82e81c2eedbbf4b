"""A radiograph whose only AI result is a classification, in the real window: File → Export → SR and JSON are
enabled and hold its class probabilities and review state (read back with pydicom); the classification is
autosaved and comes back, reviewed, when the radiograph is opened again in a new window."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pydicom
import pytest

AI_TESTS = Path(__file__).resolve().parents[1] / "ai"
EXPORT_TESTS = Path(__file__).resolve().parents[1] / "export"
for folder in (AI_TESTS, EXPORT_TESTS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from classifier_folders import radiograph_folder  # noqa: E402
from test_classification_export import comments, referenced_images, sr_classes  # noqa: E402

from ai.api import ClassificationResult, Provenance  # noqa: E402
from viewer.core import review  # noqa: E402
from viewer.core.ai_bridge import ClassifiedSeries  # noqa: E402
from viewer.logic.exports import NOTHING_MEASURED  # noqa: E402

SHOTS = os.environ.get("RADVIEW_TEST_SHOTS", "")
TIMEOUT_MS = 60000
PROV = Provenance("tiny-xr", "Tiny chest XR classifier", "0.3", "learned network (safetensors)", "cpu", "float32",
                  0.05, "2026-01-01T00:00:00+00:00", {"input_size": [32, 32]})
CLASSES = ("effusion", "nodule", "pneumothorax")
PROBS = (0.876543, 0.3, 0.02)


def _keep(path: Path) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SHOTS, path.name))


def _open(qtbot, window, folder):
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.session.images is not None and bool(window.planar_area.views), timeout=30000)
    return window.session.images


def run_export(qtbot, window, start):
    outcomes = []
    exports = window.exports
    on_done = lambda kind, value: outcomes.append(("finished", value))  # noqa: E731
    on_fail = lambda kind, message: outcomes.append(("failed", message))  # noqa: E731
    exports.finished.connect(on_done)
    exports.failed.connect(on_fail)
    try:
        if start() is None:
            return "refused", outcomes[0][1] if outcomes else None
        qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    finally:
        exports.finished.disconnect(on_done)
        exports.failed.disconnect(on_fail)
    return outcomes[0]


def test_a_radiograph_classification_is_exported_autosaved_and_restored(qtbot, new_window, tmp_path):
    folder, _real = radiograph_folder(tmp_path / "xr")
    window = new_window(size=(1400, 900))
    series = _open(qtbot, window, folder)
    exports = window.exports
    exports.update_actions()
    assert not exports.sr_action.isEnabled() and exports.sr_action.toolTip() == NOTHING_MEASURED

    sop = series.images[0].display.sop_instance_uid
    series_uid = series.meta["series_uid"]
    c = ClassificationResult(CLASSES, PROBS, "sigmoid", (0.5,), "resized as a whole to 32 × 32", (32, 32))
    window.session.add_classification(ClassifiedSeries(PROV, c, series_uid, sop))
    assert exports.sr_action.isEnabled() and exports.json_action.isEnabled()  # the classification is enough
    (result,) = [r for r in review.ai_results(window.session) if r.classification is not None]
    review.decide_result(window.session.annotations, result, review.ACCEPTED, user="alice",
                         time="2026-02-01T10:00:00+00:00")

    menu = exports.menu
    menu.popup(window.mapToGlobal(window.rect().center()))
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    shot = tmp_path / "export-menu-classification.png"
    assert menu.grab().save(str(shot))
    _keep(shot)
    menu.hide()

    kind, out = run_export(qtbot, window, lambda: exports.export_sr(str(tmp_path / "sr.dcm")))
    assert kind == "finished", out
    ds = pydicom.dcmread(out)
    assert sr_classes(ds) == pytest.approx(dict(zip(CLASSES, PROBS)))
    assert sop in referenced_images(ds)
    assert any("accepted by alice" in n for n in comments(ds))
    kind, out = run_export(qtbot, window, lambda: exports.export_findings_json(str(tmp_path / "f.json")))
    assert kind == "finished", out
    doc = json.loads(Path(out).read_text())
    assert doc["classification"]["probabilities"] == list(PROBS)
    assert doc["classification"]["review"]["state"] == "accepted"
    window.close()  # the autosave writes what waits

    again = new_window(size=(1400, 900))  # a new session on the same store
    _open(qtbot, again, folder)
    qtbot.waitUntil(lambda: bool(again.session.classifications), timeout=30000)
    (back,) = again.session.classifications
    assert back.classification.probabilities == PROBS and back.provenance == PROV and back.sop_instance_uid == sop
    (result,) = [r for r in review.ai_results(again.session) if r.classification is not None]
    assert review.result_status(again.session.annotations.review, result).state == "reviewed"
    panel = again.ai.findings
    again.ai.findings_dock.show()
    (view,) = panel.classification_views()
    assert "reviewed by alice" in view.header.text()
    assert again.study_autosave.problems == []
    qtbot.wait(50)
    shot = tmp_path / "classification-restored.png"
    assert again.grab().save(str(shot))
    _keep(shot)
    again.close()


def test_a_damaged_classification_file_is_set_aside_and_reported(qtbot, new_window, tmp_path):
    from viewer.store.classification_store import ClassificationStore, series_keys

    folder, _real = radiograph_folder(tmp_path / "xr")
    window = new_window(size=(1200, 800))
    series = _open(qtbot, window, folder)
    study, series_uid, key = series_keys(series.meta)
    store = ClassificationStore(window.autosave.store.directory)
    path = store.path(study, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"format": "radview-classifications", "version": 1, "series_uid": ')
    window.session.clear()
    _open(qtbot, window, folder)
    qtbot.waitUntil(lambda: bool(window.study_autosave.problems), timeout=30000)
    (problem,) = window.study_autosave.problems
    assert problem.file == path and "not valid JSON" in problem.reason
    assert "could not be read" in window.notices.last_message
    assert window.session.classifications == [] and not path.exists()
    window.close()
