"""AI → Compare with reference segmentation…: the reference layer and the per-structure table in the main window."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from scipy import ndimage
from stall_probe import STALL_BOUND_S, StallProbe

from ai.api import InferenceResult, Provenance
from ai.metrics import segmentation_metrics
from radview_base.geometry import Geometry
from viewer.core.ai_bridge import layers_from_result
from viewer.io.image_io import write_image
from viewer.io.volume import LabelMap, Volume
from viewer.logic.evaluation import pair_labels
from viewer.qt.panels.metrics_panel import NO_AI_TEXT, NO_REFERENCE_TEXT, NOT_VALIDATION

TIMEOUT_MS = 60000


@pytest.fixture
def window(new_window, demo_volume):
    w = new_window()
    w.session.load_volume(demo_volume, preset="lung")
    yield w
    w.close()


def ai_layer(labels: np.ndarray, names: dict, geometry, model: str = "Test lungs"):
    """A label layer exactly as the AI controller builds it from a finished run."""
    prov = Provenance(model.lower().replace(" ", "-"), model, "1.0", "classical image analysis, not a learned network",
                      "cpu", "float32", 0.1, "2026-01-01T00:00:00Z")
    result = InferenceResult(geometry, prov, labels=labels, label_names=names)
    layer, _ = layers_from_result(result, geometry)
    return layer


def wait_compared(qtbot, window):
    qtbot.waitUntil(lambda: not window.comparison.busy and window.comparison.panel.table.isVisible(),
                    timeout=TIMEOUT_MS)


def table_rows(panel):
    return [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())]
            for r in range(panel.table.rowCount())]


def test_ai_lungs_against_the_demo_truth_paired_by_name(window, qtbot, demo_paths, demo_labels):
    """AI ids 1 = lung_left (eroded), 2 = lung_right (shifted) against the truth's 2 and 3: paired by name."""
    truth = demo_labels.array
    labels = np.zeros(truth.shape, np.uint8)
    labels[ndimage.binary_erosion(truth == 2, iterations=2)] = 1
    labels[:, :, 1:][truth[:, :, :-1] == 3] = 2
    window.session.add_layer(ai_layer(labels, {1: "lung_left", 2: "lung_right"}, demo_labels.geometry))
    comparison = window.comparison
    assert comparison.action in window.ai.menu.actions()
    assert comparison.action.text() == "Compare with &reference segmentation…"

    probe = StallProbe().start()
    job = comparison.load_reference(str(demo_paths.labels_nii))
    assert job is not None
    wait_compared(qtbot, window)
    stall = probe.stop()
    print(f"\nreference read + comparison: GUI event loop blocked at most {stall * 1000:.0f} ms")
    assert stall < STALL_BOUND_S, f"the GUI event loop stalled {stall * 1000:.0f} ms"

    ref_layer = comparison.reference
    assert ref_layer in window.session.layers and ref_layer.outline and ref_layer.name == "Reference: labels.nii.gz"
    assert not ref_layer.meta.get("ai")
    assert comparison.dock.isVisible()
    remapped = np.zeros_like(truth)
    remapped[labels == 1], remapped[labels == 2] = 2, 3
    expected = segmentation_metrics(remapped, truth, demo_labels.geometry.spacing_zyx,
                                    {2: "lung_left", 3: "lung_right"}, labels=[2, 3])
    panel = comparison.panel
    assert [r[0] for r in table_rows(panel)] == ["lung_left", "lung_right"]
    for row, m in enumerate(expected):
        values = [panel.cell_value(row, c) for c in range(1, 7)]
        assert values == [m.dice, m.iou, m.hd95_mm, m.asd_mm, m.volume_diff_ml, m.volume_diff_pct]
        assert table_rows(panel)[row][1:] == [f"{m.dice:.3f}", f"{m.iou:.3f}", f"{m.hd95_mm:.1f}", f"{m.asd_mm:.2f}",
                                              f"{m.volume_diff_ml:+.1f}", f"{m.volume_diff_pct:+.1f}"]
    assert 0.8 < expected[0].dice < expected[1].dice < 1.0  # eroded twice vs shifted once
    assert expected[0].volume_diff_ml < 0 and expected[1].hd95_mm == pytest.approx(0.75)
    assert "paired by name" in panel.title_label.text() and "AI: Test lungs" in panel.title_label.text()
    notes = panel.notes_label.text()
    assert "Not compared (no AI label of that name): body, airway, heart, aorta, bone, nodule." in notes
    assert NOT_VALIDATION in notes
    assert "AI label 1 vs reference label 2" in panel.table.item(0, 1).toolTip()

    # a new AI result arrives: the table follows it (the exact truth lungs: perfect agreement)
    exact = np.where(np.isin(truth, (2, 3)), truth, 0).astype(np.uint8)
    window.session.add_layer(ai_layer(exact, {2: "lung_left", 3: "lung_right"}, demo_labels.geometry, "Exact"))
    wait_compared(qtbot, window)
    assert "AI: Exact" in panel.title_label.text()
    assert [r[:5] for r in table_rows(panel)] == [["lung_left", "1.000", "1.000", "0.0", "0.00"],
                                                  ["lung_right", "1.000", "1.000", "0.0", "0.00"]]

    # another series: reference and table are gone
    window.session.load_volume(window.session.volume)
    assert comparison.reference is None and ref_layer not in window.session.layers
    assert not panel.table.isVisible() and panel.message_label.text() == NO_REFERENCE_TEXT


def test_a_reference_on_another_grid_is_refused_and_the_viewer_goes_on(window, qtbot, tmp_path, demo_paths):
    other = tmp_path / "other.nii.gz"
    write_image(LabelMap(np.ones((10, 20, 20), np.uint8), Geometry((10, 20, 20), (2.0, 0.75, 0.75), (0, 0, 0))),
                str(other))
    layers_before = list(window.session.layers)
    window.comparison.load_reference(str(other))
    qtbot.waitUntil(lambda: "was not used as a reference" in window.notices.last_message, timeout=TIMEOUT_MS)
    assert "shape (z, y, x) 10×20×20 vs 160×512×512" in window.notices.last_message
    assert "\n" not in window.notices.last_message
    box = window.notices.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert window.session.layers == layers_before and window.comparison.reference is None
    assert window.comparison.panel.message_label.text() == NO_REFERENCE_TEXT
    # the viewer keeps working: scroll the axial view, then load the right reference
    axial = window.layout_widget.views["axial"]
    axial.setFocus()
    k0 = axial.k
    qtbot.keyClick(axial, Qt.Key_Down)
    assert abs(axial.k - k0) == 1  # one image on (its direction: tests/qt/test_image_numbers.py)
    window.comparison.load_reference(str(demo_paths.labels_nii))
    qtbot.waitUntil(lambda: window.comparison.reference is not None, timeout=TIMEOUT_MS)
    assert window.comparison.panel.message_label.text() == NO_AI_TEXT  # no AI result yet


def test_unnamed_labels_are_paired_by_id_and_a_late_ai_result_is_compared(qtbot, tmp_path, new_window):
    w = new_window(size=None)
    geometry = Geometry((12, 20, 24), (2.5, 0.8, 0.6), (-5.0, 10.0, 3.0))
    w.session.load_volume(Volume(np.zeros(geometry.shape_zyx, np.int16), geometry, meta={"modality": "CT"}))
    ref = np.zeros(geometry.shape_zyx, np.uint8)
    ref[2:8, 4:12, 4:14] = 1
    ref[3:9, 12:18, 14:20] = 2
    write_image(LabelMap(ref, geometry), str(tmp_path / "ref.nrrd"))  # no names beside it: "label 1", "label 2"
    w.comparison.load_reference(str(tmp_path / "ref.nrrd"))
    qtbot.waitUntil(lambda: w.comparison.reference is not None, timeout=TIMEOUT_MS)
    assert w.comparison.panel.message_label.text() == NO_AI_TEXT
    pred = np.zeros_like(ref)
    pred[2:8, 4:12, 5:15] = 1  # moved one voxel along x
    pred[3:9, 12:18, 14:20] = 2
    pred[0, 0, 0] = 3  # only in the AI result
    w.session.add_layer(ai_layer(pred, {}, geometry))
    wait_compared(qtbot, w)
    panel = w.comparison.panel
    expected = segmentation_metrics(pred, ref, geometry.spacing_zyx)
    assert [r[0] for r in table_rows(panel)] == ["label 1", "label 2", "label 3"]
    for row, m in enumerate(expected):
        assert [panel.cell_value(row, c) for c in (1, 2, 4)] == pytest.approx([m.dice, m.iou, m.asd_mm], nan_ok=True)
    assert panel.cell_value(1, 1) == 1.0 and panel.cell_value(0, 1) == pytest.approx(2 * 6 * 8 * 9 / (2 * 480))  # 0.9
    assert table_rows(panel)[2][1:5] == ["0.000", "0.000", "—", "—"]  # no surface to measure to
    assert "paired by label id" in panel.title_label.text()
    # a reference still being read when another series opens is dropped
    w.comparison.load_reference(str(tmp_path / "ref.nrrd"))
    w.session.load_volume(Volume(np.zeros(geometry.shape_zyx, np.int16), geometry, meta={"modality": "CT"}))
    qtbot.waitUntil(lambda: not w.comparison.tasks._running, timeout=TIMEOUT_MS)
    qtbot.wait(50)
    assert w.comparison.reference is None and w.session.layers == []
    assert panel.message_label.text() == NO_REFERENCE_TEXT
    w.close()


def test_pair_labels_by_name_or_by_id():
    by_name = pair_labels({1: "Lung left", 2: "tumour", 4: "label 4"}, {1, 2, 4},
                          {2: "lung_left", 3: "lung_right"}, {2, 3})
    assert by_name.by_name and by_name.pairs == ((1, 2, "Lung left"),)
    assert by_name.ai_only == ("tumour", "label 4") and by_name.ref_only == ("lung_right",)
    by_id = pair_labels({}, {1, 3}, {1: "label 1", 2: "label 2"}, {1, 2})
    assert not by_id.by_name and by_id.pairs == ((1, 1, "label 1"), (2, 2, "label 2"), (3, 3, "label 3"))
    no_common_name = pair_labels({1: "liver"}, {1}, {1: "spleen"}, {1})
    assert not no_common_name.by_name and no_common_name.pairs == ((1, 1, "liver"),)
