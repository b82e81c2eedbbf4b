"""A classification model run from the real window on a radiograph (the real ``RG1_J2KI.dcm`` of ../shared/data,
else a generated DX image) through the real engine child process: the findings panel's table of class
probabilities (sorted, bars, model and version, "AI — not reviewed", "not a diagnosis"), its review as a whole
(accept, undo), the PDF report's table, and a screenshot of the table; and a classification of a 3D volume."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

AI_TESTS = Path(__file__).resolve().parents[1] / "ai"
if str(AI_TESTS) not in sys.path:
    sys.path.insert(0, str(AI_TESTS))

from classifier_folders import CLASSES, radiograph_folder, write_radiograph_classifier  # noqa: E402
from stall_probe import STALL_BOUND_S, StallProbe  # noqa: E402

from ai.api import ClassificationResult, Provenance  # noqa: E402
from viewer.core import review  # noqa: E402
from viewer.core.ai_bridge import ClassifiedSeries  # noqa: E402

#: where the screenshots are also copied, to be looked at (RADVIEW_TEST_SHOTS overrides; "" keeps them in tmp only)
SHOTS = os.environ.get("RADVIEW_TEST_SHOTS", "")


def _keep(path: Path) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SHOTS, path.name))


@pytest.fixture
def window(new_window):
    w = new_window(size=(1400, 900))
    yield w
    w.close()
    assert not w.ai.has_service or not w.ai.service.thread.isRunning()


def test_a_radiograph_is_classified_from_the_window_and_its_table_reviewed(qtbot, window, tmp_path):
    from viewer.qt.panels.classification_table import BAR_COLUMN

    folder, real = radiograph_folder(tmp_path / "xr")
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.session.images is not None and bool(window.planar_area.views), timeout=30000)
    series = window.session.images
    modality = series.images[0].display.modality
    model = write_radiograph_classifier(tmp_path / "models" / "tiny-xr", modality=modality)
    assert window.ai.run_action.isEnabled()  # a 2D series can be classified
    manifest = window.ai.add_model_folder(str(model))
    assert manifest is not None and manifest.task == "classification"
    dialog = window.ai.dialog  # the dialog lists it as available on this radiograph
    assert dialog is not None and dialog.selected_model_id() == "tiny-xr"
    dialog.close()

    probe = StallProbe().start()
    job = window.ai.run_model("tiny-xr", "cpu")
    assert job is not None
    qtbot.waitUntil(lambda: window.ai.current_job is None, timeout=120000)
    assert probe.stop() < STALL_BOUND_S  # the GUI thread never waited on the run (the tests' loose bound)

    (classified,) = window.session.classifications
    c = classified.classification
    assert isinstance(c, ClassificationResult) and c.classes == CLASSES
    assert classified.series_uid == series.meta["series_uid"]
    assert classified.sop_instance_uid == series.images[0].display.sop_instance_uid
    assert "AI result, not reviewed, not a diagnosis" in window.ai.last_status
    panel = window.ai.findings
    assert window.ai.findings_dock.isVisible()
    (view,) = panel.classification_views()
    rows = view.rows()
    assert [r[0] for r in rows] == [name for name, _ in c.ranked()]  # most probable first
    assert [r[1] for r in rows] == [f"{p:.3f}" for _, p in c.ranked()]
    assert [r[2].startswith("flagged") for r in rows] == [name in c.flagged() for name, _ in c.ranked()]
    bars = [view.table.item(r, BAR_COLUMN).data(0x0100) for r in range(len(rows))]  # Qt.UserRole: the bar
    assert bars == [p for _, p in c.ranked()]
    header = view.header.text()
    assert "Tiny chest XR classifier" in header and "0.3" in header
    assert "AI — not reviewed" in header and "not a diagnosis" in header
    assert not panel.empty_label.isVisible()

    shot = tmp_path / ("classification-table-rg1.png" if real else "classification-table-generated.png")
    qtbot.wait(50)
    assert window.ai.findings_dock.grab().save(str(shot))
    _keep(shot)
    whole = tmp_path / "classification-window.png"
    assert window.grab().save(str(whole))
    _keep(whole)

    # review as a whole, like a label map: Accept result (Shift+Y's button), one undo step
    (result,) = [r for r in panel.results() if r.classification is not None]
    panel.user = "alice"
    panel.select_result(result)
    panel.buttons["accept_result"].click()
    entry = window.session.annotations.review[review.result_key("tiny-xr", series.meta["series_uid"])]
    assert entry["state"] == "accepted" and entry["user"] == "alice" and entry["kind"] == "result"
    assert "reviewed by alice" in view.header.text() and "not a diagnosis" in view.header.text()
    reviewed = tmp_path / "classification-table-reviewed.png"
    qtbot.wait(50)
    assert window.ai.findings_dock.grab().save(str(reviewed))
    _keep(reviewed)
    menu = panel.build_classification_menu(result)
    assert [a.text().split("\t")[0] for a in menu.actions()][:2] == ["✓ Accept classification",
                                                                     "✗ Reject classification"]
    window.session.annotations.undo()
    assert "AI — not reviewed" in panel.classification_views()[0].header.text()

    # the PDF report lists the table (a 2D series' report)
    from test_report import has, pdf_text

    out = window.export_report(str(tmp_path / "classification-report.pdf"))
    assert out
    _keep(Path(out))
    text = pdf_text(out)
    top, p = c.ranked()[0]
    assert has(text, "AI classification", top, f"{p:.3f}", "Tiny chest XR classifier")

    # another series: the classification goes with it
    window.session.clear()
    assert window.session.classifications == [] and panel.classification_views() == []


def test_a_volume_classification_shows_its_table(window, demo_volume, tmp_path):
    window.session.load_volume(demo_volume, preset="lung")
    prov = Provenance("ct-phase", "CT phase", "2.0", "learned network (safetensors)", "cpu", "float32", 0.4,
                      "2026-01-01T00:00:00+00:00", {"input_size": [16, 64, 64]})
    c = ClassificationResult(("non-contrast", "arterial", "venous"), (0.1, 0.25, 0.65), "softmax",
                             preprocessing="resized as a whole to 16 × 64 × 64", image="volume")
    window.session.add_classification(ClassifiedSeries(prov, c, demo_volume.meta["series_uid"]))
    panel = window.ai.findings
    (view,) = panel.classification_views()
    assert view.rows() == [("venous", "0.650", "most probable"), ("arterial", "0.250", ""),
                           ("non-contrast", "0.100", "")]
    assert "CT phase" in view.header.text() and "single-label, softmax" in view.header.text()
    assert panel.review_label.text() == review.NOT_REVIEWED and "AI — not reviewed" in view.header.text()
    shot = tmp_path / "classification-table-volume.png"
    assert panel.grab().save(str(shot))
    _keep(shot)
    window.session.load_volume(demo_volume, preset="lung")  # (re)loading drops it
    assert panel.classification_views() == []
