"""ai.metrics against hand-computed cases: overlap, surface distances, volumes, detection P/R/F1 and FROC."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from ai.metrics import (
    ReferenceNodule,
    ScoredDetection,
    detection_metrics,
    froc,
    segmentation_metrics,
    surface,
    surface_distances,
)

SPACING = (2.0, 1.0, 0.5)  # (z, y, x) mm: one voxel is 1 mm³ = 0.001 mL


def _box(shape, z, y, x, label=1, dtype=np.uint8):
    a = np.zeros(shape, dtype)
    a[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = label
    return a


# --- segmentation: overlap and volumes -----------------------------------------------------------------------
def test_two_cubes_shifted_by_two_voxels_along_x():
    """4×4×4 cubes, the prediction 2 voxels further along x (spacing 0.5 mm there, 1 and 2 mm across).

    Overlap 4·4·2 = 32 of 64 + 64: Dice 64/128 = 0.5, IoU 32/96 = 1/3.
    Each cube has 4³ − 2³ = 56 surface voxels. Of the prediction's: its x-high face (16 voxels, outside the
    reference) lies 2 voxels = 1.0 mm from the reference's x-high face; the ring of the plane before (12
    voxels) 1 voxel = 0.5 mm; the 4 inner voxels of its x-low face lie inside the reference, 0.5 mm from the
    reference's x-high face (its x-low face is 1.0 mm away, its side faces at least 1 mm); the 24 ring voxels
    of the overlapping planes lie on both surfaces: 0. The reference is the mirror image. Union: 112
    distances, 48 × 0, 32 × 0.5, 32 × 1.0 → HD 1.0 = 2 × 0.5, HD95 1.0, ASD (16 + 32) / 112 = 3/7.
    """
    ref = _box((8, 8, 10), (2, 6), (2, 6), (2, 6))
    pred = _box((8, 8, 10), (2, 6), (2, 6), (4, 8))
    (m,) = segmentation_metrics(pred, ref, SPACING)
    assert (m.label, m.name) == (1, "label 1")
    assert m.dice == pytest.approx(0.5) and m.iou == pytest.approx(1 / 3)
    assert (m.tp_voxels, m.fp_voxels, m.fn_voxels) == (32, 32, 32)
    assert m.hd_mm == pytest.approx(1.0) and m.hd95_mm == pytest.approx(1.0)
    assert m.asd_mm == pytest.approx(3 / 7)
    assert m.volume_pred_ml == pytest.approx(0.064) and m.volume_ref_ml == pytest.approx(0.064)
    assert m.volume_diff_ml == pytest.approx(0.0) and m.volume_diff_pct == pytest.approx(0.0)
    d_pr, d_rp = surface_distances(pred == 1, ref == 1, SPACING)
    assert sorted(d_pr) == sorted(d_rp) == [0.0] * 24 + [0.5] * 16 + [1.0] * 16


def test_hd95_is_the_percentile_of_both_directed_sets_together():
    """A 4×4×40 bar moved one voxel (0.5 mm) along its length: each bar has 40·16 − 38·4 = 488 surface voxels,
    20 of which (its end face, 16, and the 4 inner voxels of the other end) lie 0.5 mm from the other
    surface. 40 of 976 distances (4.1 %) are non-zero: HD 0.5 mm but HD95 0; ASD 0.5 · 40 / 976."""
    ref = _box((8, 8, 44), (2, 6), (2, 6), (1, 41))
    pred = _box((8, 8, 44), (2, 6), (2, 6), (2, 42))
    (m,) = segmentation_metrics(pred, ref, SPACING)
    assert m.hd_mm == pytest.approx(0.5)
    assert m.hd95_mm == 0.0
    assert m.asd_mm == pytest.approx(0.5 * 40 / 976)
    assert m.dice == pytest.approx(2 * 39 * 16 / (2 * 40 * 16))


def test_the_image_border_counts_as_outside():
    """The whole 3×3×3 image against its first two x planes. Surfaces: all 26 border voxels of the full
    cube; all 18 voxels of the slab. The full cube's x = 2 plane (9 voxels) is 0.5 mm from the slab's;
    the slab's centre voxel (1, 1, 1) is on its surface (face x = 2 is open) but inside the cube, 0.5 mm
    (the x step, the smallest) from the cube's surface. 10 × 0.5 mm over 44 → ASD 5/44, HD 0.5."""
    pred = np.ones((3, 3, 3), np.uint8)
    ref = pred.copy()
    ref[:, :, 2] = 0
    assert surface(pred).sum() == 26 and surface(ref).sum() == 18
    (m,) = segmentation_metrics(pred, ref, SPACING)
    assert m.hd_mm == pytest.approx(0.5)
    assert m.asd_mm == pytest.approx(5 / 44)
    assert m.dice == pytest.approx(2 * 18 / 45) and m.iou == pytest.approx(18 / 27)
    assert m.volume_pred_ml == pytest.approx(0.027) and m.volume_ref_ml == pytest.approx(0.018)
    assert m.volume_diff_ml == pytest.approx(0.009) and m.volume_diff_pct == pytest.approx(50.0)
    assert (m.tp_voxels, m.fp_voxels, m.fn_voxels) == (18, 9, 0)


def test_distances_agree_with_an_exact_euclidean_distance_transform():
    """Blobby shapes, anisotropic spacing: the k-d tree distances equal scipy's EDT of the other surface."""
    rng = np.random.default_rng(7)
    shape = (18, 30, 26)
    spacing = (2.5, 0.7, 0.9)
    pred = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    ref = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    sp, sr = surface(pred), surface(ref)
    edt_to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    edt_to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    assert np.allclose(np.sort(d_pr), np.sort(edt_to_ref[sp]))
    assert np.allclose(np.sort(d_rp), np.sort(edt_to_pred[sr]))
    (m,) = segmentation_metrics(pred.astype(np.uint8), ref.astype(np.uint8), spacing)
    both = np.concatenate([edt_to_ref[sp], edt_to_pred[sr]])
    assert m.hd95_mm == pytest.approx(np.percentile(both, 95))
    assert m.asd_mm == pytest.approx(both.mean()) and m.hd_mm == pytest.approx(both.max())
    assert m.hd_mm > 0 and m.dice < 1


def test_several_labels_names_and_one_sided_or_absent_labels():
    pred = np.zeros((6, 6, 6), np.int16)
    ref = np.zeros((6, 6, 6), np.int16)
    pred[1:3, 1:3, 1:3] = 1
    ref[1:3, 1:3, 1:3] = 1  # identical: perfect
    pred[4:6, 4:6, 4:6] = 2  # only in the prediction (8 voxels)
    ref[0, 5, 5] = 5  # only in the reference (1 voxel)
    metrics = segmentation_metrics(pred, ref, SPACING, names={1: "liver", 2: "spleen", 3: "kidney"})
    by = {m.label: m for m in metrics}
    assert [m.label for m in metrics] == [1, 2, 3, 5]
    assert by[1].name == "liver" and by[1].dice == 1.0 and by[1].hd95_mm == 0.0 and by[1].asd_mm == 0.0
    assert by[2].name == "spleen" and by[2].dice == 0.0 and by[2].iou == 0.0
    assert math.isnan(by[2].hd95_mm) and math.isnan(by[2].asd_mm) and math.isnan(by[2].hd_mm)
    assert by[2].note == "only in the prediction" and math.isnan(by[2].volume_diff_pct)
    assert by[2].volume_pred_ml == pytest.approx(0.008) and by[2].volume_diff_ml == pytest.approx(0.008)
    assert by[3].note == "absent in both" and (by[3].dice, by[3].iou, by[3].hd95_mm) == (1.0, 1.0, 0.0)
    assert by[3].volume_diff_pct == 0.0
    assert by[5].name == "label 5" and by[5].note == "only in the reference" and by[5].fn_voxels == 1
    assert by[5].volume_diff_pct == pytest.approx(-100.0)
    text = json.dumps([m.as_dict() for m in metrics], allow_nan=False)  # NaN → null: strict JSON
    assert json.loads(text)[1]["hd95_mm"] is None
    calls = []
    only = segmentation_metrics(pred, ref, SPACING, labels=[5, 1], progress=lambda *a: calls.append(a))
    assert [m.label for m in only] == [1, 5] and calls == [(1, 2), (2, 2)]


def test_mismatched_shapes_and_non_label_arrays_are_refused():
    with pytest.raises(ValueError, match="shapes/grids must match.*\\(4, 4, 4\\).*\\(4, 4, 5\\)"):
        segmentation_metrics(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), SPACING)
    with pytest.raises(ValueError, match="not a label map"):
        segmentation_metrics(np.zeros((4, 4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), SPACING)
    with pytest.raises(ValueError, match="spacing_zyx"):
        segmentation_metrics(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), (1.0, 0.0, 1.0))


# --- detection ------------------------------------------------------------------------------------------------
REFS = [ReferenceNodule((0.0, 0.0, 0.0), 10.0), ReferenceNodule((50.0, 0.0, 0.0), 6.0),
        ReferenceNodule((0.0, 50.0, 0.0), 8.0)]
DETS = [
    ScoredDetection((1.0, 1.0, 1.0), 0.9),  # in ref 0, not its best: ignored
    ScoredDetection((0.0, 0.0, 4.9), 0.95),  # in ref 0 (4.9 < 5): its match
    ScoredDetection((50.0, 0.0, 3.01), 0.8),  # just outside ref 1 (3.01 > 3): FP
    ScoredDetection((50.0, 2.99, 0.0), 0.7),  # just inside ref 1: its match
    ScoredDetection((100.0, 100.0, 100.0), 0.6),  # nowhere: FP
    ScoredDetection((0.0, -4.0, 0.0), 0.3),  # in ref 0 again: ignored
]


def test_detection_precision_recall_f1_with_duplicates_and_the_radius_edge():
    m = detection_metrics(DETS, REFS)
    assert (m.tp, m.fp, m.fn, m.ignored, m.n_detections, m.n_references) == (2, 2, 1, 2, 6, 3)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(4 / 7)
    assert [(x.detection, x.reference, x.score) for x in m.matches] == [(1, 0, 0.95), (3, 1, 0.7)]
    assert m.matches[0].distance_mm == pytest.approx(4.9) and m.matches[1].distance_mm == pytest.approx(2.99)
    high = detection_metrics(DETS, REFS, min_score=0.75)  # keeps 0.9, 0.95, 0.8
    assert (high.tp, high.fp, high.fn, high.ignored) == (1, 1, 2, 1)
    assert high.precision == pytest.approx(0.5) and high.recall == pytest.approx(1 / 3)
    assert high.f1 == pytest.approx(0.4)
    assert json.loads(json.dumps(m.as_dict()))["matches"][1]["reference"] == 1


def test_detection_inputs_as_tuples_mappings_and_api_detections():
    from ai.api import Detection

    det = Detection((0.0, 0.0, 4.0), 5.0, 0.1, 20.0, "solid", 0.5)
    m = detection_metrics([det, ((50.0, 0.0, 0.0), 0.2)], [((0.0, 0.0, 0.0), 10.0),
                                                           {"center_lps_mm": [50, 1, 0], "diameter_mm": 4}])
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)


def test_detection_zero_cases_have_no_division_by_zero():
    none = detection_metrics([], REFS)
    assert (none.tp, none.fp, none.fn, none.precision, none.recall, none.f1) == (0, 0, 3, 1.0, 0.0, 0.0)
    no_refs = detection_metrics(DETS[:2], [])
    assert (no_refs.tp, no_refs.fp, no_refs.fn, no_refs.precision, no_refs.recall, no_refs.f1) == (0, 2, 0, 0.0,
                                                                                                   1.0, 0.0)
    empty = detection_metrics([], [])
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 1.0, 1.0)


# --- FROC -----------------------------------------------------------------------------------------------------------
CASES = [
    ([((0, 0, 1), 0.9), ((100, 0, 0), 0.8), ((30, 1, 0), 0.6), ((0, 1, 0), 0.5)],
     [((0, 0, 0), 10.0), ((30, 0, 0), 10.0)]),
    ([((50, 50, 50), 0.7), ((0, 0, 2), 0.4), ((60, 60, 60), 0.3)], [((0, 0, 0), 10.0)]),
]


def test_froc_on_two_scans_by_hand():
    """References are hit at scores 0.9, 0.6 (scan 1) and 0.4 (scan 2); false positives score 0.8, 0.7, 0.3;
    the 0.5 detection is a second hit on a nodule (ignored). Per threshold (sensitivity, FP/scan):
    0.9 (1/3, 0), 0.8 (1/3, 0.5), 0.7 (1/3, 1), 0.6 (2/3, 1), 0.5 (2/3, 1), 0.4 (1, 1), 0.3 (1, 1.5).
    Step-wise at 1/8, 1/4, 1/2: 1/3; at 1, 2, 4, 8: 1. CPM (3 · 1/3 + 4) / 7 = 5/7."""
    r = froc(CASES)
    assert r.thresholds == (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    assert r.sensitivities == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    assert r.fps_per_scan == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.5])
    assert r.sensitivity_at == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0])
    assert r.cpm == pytest.approx(5 / 7)
    assert (r.n_scans, r.n_references, r.n_detections) == (2, 3, 7)
    # every operating point is detection_metrics at that threshold, summed over the scans
    for t, s, f in zip(r.thresholds, r.sensitivities, r.fps_per_scan):
        per_case = [detection_metrics(d, refs, min_score=t) for d, refs in CASES]
        assert sum(m.tp for m in per_case) / 3 == pytest.approx(s)
        assert sum(m.fp for m in per_case) / 2 == pytest.approx(f)
    assert froc(CASES, fp_per_scan=(0.5, 1.5)).sensitivity_at == pytest.approx([1 / 3, 1.0])


def test_froc_zero_cases():
    no_dets = froc([([], [((0, 0, 0), 5.0)])], fp_per_scan=(1, 2))
    assert no_dets.thresholds == () and no_dets.sensitivity_at == (0.0, 0.0) and no_dets.cpm == 0.0
    no_refs = froc([([((0, 0, 0), 0.5)], [])], fp_per_scan=(1, 2))
    assert no_refs.sensitivity_at == (1.0, 1.0) and no_refs.fps_per_scan == (1.0,)
    with pytest.raises(ValueError, match="at least one case"):
        froc([])


def test_ai_metrics_imports_neither_torch_nor_the_viewer():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = "import sys, ai.metrics; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'viewer')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
