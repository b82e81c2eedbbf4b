"""The findings panel lists the measured structures of an AI result (ai.features) and jumps to their centroids."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from ai.api import Detection, InferenceResult, Provenance
from ai.features import detection_features, label_features
from radview_base.geometry import Geometry
from viewer.core.ai_bridge import layers_from_result
from viewer.core.session import Session
from viewer.io.volume import Volume
from viewer.qt.panels.findings_panel import STRUCTURE_COLUMNS, FindingsPanel

GEOM = Geometry((30, 40, 50), (2.0, 0.8, 0.8), (-20.0, -16.0, -30.0), ((-1, 0, 0), (0, 1, 0), (0, 0, 1)))
BALL_A = ((20, 25, 35), 6.0)  # (z, y, x) index of the centre, radius (mm)
BALL_B = ((20, 10, 12), 3.5)


def _ball(centre, radius):
    zz, yy, xx = np.indices(GEOM.shape_zyx)
    sz, sy, sx = GEOM.spacing_zyx
    cz, cy, cx = centre
    return ((zz - cz) * sz) ** 2 + ((yy - cy) * sy) ** 2 + ((xx - cx) * sx) ** 2 <= radius ** 2


def _case():
    """A volume, its label map (a 10 × 20 × 25-voxel "lung" box, two nodules) and an AI result with features."""
    image = np.full(GEOM.shape_zyx, -850, np.int16)
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[2:12, 5:25, 5:30] = 2
    for (centre, radius), hu in ((BALL_A, 40), (BALL_B, -300)):
        ball = _ball(centre, radius)
        labels[ball] = 8
        image[ball] = hu + (np.indices(GEOM.shape_zyx)[2][ball] % 3) * 10  # a ramp: SD > 0
    grid = GEOM
    names = {2: "lung_left", 8: "nodule"}
    structures = label_features(labels, image, grid, names, components=True)
    a = detection_features(labels, image, grid, grid.index_to_world(BALL_A[0]), label_id=8, names=names)
    det = Detection(a.centroid_lps, a.diameter_3d_mm, a.volume_ml, a.mean_hu, "solid", 0.9, "nodule", "lung_left",
                    {"axial_diameter_mm": a.axial_diameter_mm, "diameter_3d_mm": a.diameter_3d_mm,
                     "sphericity": a.sphericity, "sd_hu": a.sd_hu, "plateau_mm": 2.5})
    prov = Provenance("test-nodules", "Test nodules", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.4, "2026-01-01T00:00:00Z")
    result = InferenceResult(grid, prov, labels, names, (det,), structures=tuple(structures))
    return Volume(image, GEOM, meta={"modality": "CT"}), result


@pytest.fixture
def shown(qtbot):
    volume, result = _case()
    session = Session()
    session.load_volume(volume)
    panel = FindingsPanel(session)
    qtbot.addWidget(panel)
    panel.resize(700, 600)
    panel.show()
    label_layer, marker_layer = layers_from_result(result, GEOM)
    session.add_layer(label_layer)
    session.add_layer(marker_layer)
    return session, panel, result, label_layer


def _cells(table, row):
    return [table.item(row, c).text() for c in range(table.columnCount())]


def test_the_structures_of_a_result_reach_the_label_layer_and_the_panel(shown):
    session, panel, result, label_layer = shown
    assert label_layer.meta["structures"] == result.structures and len(result.structures) == 5
    assert panel.structure_count() == 5 and panel.structure_table.isVisible() and panel.structures_label.isVisible()
    assert panel.row_count() == 1 and panel.table.isVisible() and not panel.empty_label.isVisible()
    table = panel.structure_table
    assert tuple(table.horizontalHeaderItem(c).text() for c in range(table.columnCount())) == STRUCTURE_COLUMNS
    assert [table.item(r, 0).text() for r in range(5)] == ["left lung", "left lung #1", "nodule", "nodule #1",
                                                           "nodule #2"]
    # the box, by hand: 5000 voxels × 1.28 mm³ = 6.40 mL; axial Ø between voxel centres √(15.2² + 19.2²)
    # = 24.49 mm; 3D Ø √(18² + 15.2² + 19.2²) = 30.39 mm; HU -850 everywhere (SD 0)
    box = _cells(table, 0)
    assert box[:4] == ["left lung", "6.40", "24.5", "30.4"] and box[5:] == ["-850", "0"]
    assert math.hypot(15.2, 19.2) == pytest.approx(24.49, abs=0.005)
    # the nodules: each cell is its StructureFeatures, rounded
    for row in (3, 4):
        f = result.structures[row]
        assert _cells(table, row)[1:] == [f"{f.volume_ml:.2f}", f"{f.axial_diameter_mm:.1f}",
                                          f"{f.diameter_3d_mm:.1f}", f"{f.sphericity:.2f}", f"{f.mean_hu:.0f}",
                                          f"{f.sd_hu:.0f}"]
    big = result.structures[3]
    assert big.voxels == int(_ball(*BALL_A).sum()) and float(_cells(table, 3)[4]) > 0.85
    assert float(box[4]) < float(_cells(table, 3)[4])  # the box is less round than the ball
    assert 10.4 <= big.diameter_3d_mm <= 12.0 + 1e-9  # 2r = 12 mm, measured between voxel centres (within one voxel)
    assert "voxels" in table.item(3, 2).toolTip() and "centroid" in table.item(3, 0).toolTip()


def test_a_detection_row_shows_its_measured_features_as_a_tooltip(shown):
    _session, panel, result, _layer = shown
    det = result.detections[0]
    tip = panel.table.item(0, 2).toolTip()
    assert f"axial Ø {det.features['axial_diameter_mm']:.1f} mm" in tip
    assert f"3D Ø {det.features['diameter_3d_mm']:.1f} mm" in tip
    assert f"sphericity {det.features['sphericity']:.2f}" in tip and f"SD {det.features['sd_hu']:.0f} HU" in tip
    assert "plateau mm: 2.5" in tip


def test_clicking_a_structure_moves_the_cursor_to_its_centroid(shown, qtbot):
    session, panel, result, _layer = shown
    table = panel.structure_table
    nodule_b = result.structures[4]
    rect = table.visualItemRect(table.item(4, 1))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())
    assert np.allclose(session.cursor_lps, nodule_b.centroid_lps, atol=1e-6)
    assert np.allclose(GEOM.world_to_index(session.cursor_lps), BALL_B[0], atol=1e-6)  # the ball's centre voxel
    # sort by 3D diameter (header click): the first row is then the smallest structure, nodule #2
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(3) + header.sectionSize(3) // 2
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, header.height() // 2))
    diameters = [float(table.item(r, 3).text()) for r in range(5)]
    assert diameters == sorted(diameters) and table.item(0, 0).text() == "nodule #2"
    lung_row = [table.item(r, 0).text() for r in range(5)].index("left lung")
    panel.jump_to_structure(lung_row)
    assert np.allclose(session.cursor_lps, result.structures[0].centroid_lps, atol=1e-6)


def test_structures_leave_with_their_layer(shown):
    session, panel, _result, label_layer = shown
    session.remove_layer(label_layer)
    assert panel.structure_count() == 0 and not panel.structure_table.isVisible()
    assert panel.row_count() == 1 and panel.table.isVisible()
