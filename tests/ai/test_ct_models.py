"""The built-in CT models on real pixels: the demo phantom (with truth) and a real abdominal CT (physical sense).

These run the real torch code on the CPU through the in-process engine.  The demo
study is the generated phantom (its truth label map and nodule list are the reference);
the TCIA pancreas CT has no reference segmentation, so its checks are anatomical facts
read off the images (where the lungs end, which gas pockets are bowel, the liver below
the right lung) plus containment and side checks that any correct result satisfies.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from reference import data_path

from ai.api import InferenceRequest
from ai.engine import Engine
from radview_base.geometry import Geometry

pytest.importorskip("torch")


def _grid(geometry) -> Geometry:
    return Geometry(geometry.shape_zyx, geometry.spacing_zyx, geometry.origin_lps, geometry.direction)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.fixture(scope="module")
def demo():
    from viewer.demo import ensure_demo
    from viewer.io.image_io import read_label_map
    from viewer.io.series_loader import load_path

    paths = ensure_demo()
    vol = load_path(str(paths.dicom_dir), paths.ct_series_uid)
    truth = read_label_map(str(paths.labels_nii))
    nodules = json.loads(paths.nodules_json.read_text())
    return vol, truth, nodules


@pytest.fixture(scope="module")
def demo_lungs(engine, demo):
    vol, _, _ = demo
    return engine.run(InferenceRequest(vol.array, _grid(vol.geometry), "ct-lungs", device="cpu"))


def test_ct_lungs_dice_on_demo(demo, demo_lungs):
    _, truth, _ = demo
    res = demo_lungs
    assert res.label_names[2] == "lung_left" and res.label_names[3] == "lung_right"
    for label in (2, 3):
        d = _dice(res.labels == label, truth.array == label)
        assert d >= 0.97, f"{res.label_names[label]} Dice {d:.4f} < 0.97"
    assert "not a learned network" in res.provenance.method
    assert res.provenance.device.startswith("cpu")


def test_ct_lung_nodules_find_every_nodule_of_6mm_with_few_false_positives(engine, demo):
    vol, truth, nodules = demo
    res = engine.run(InferenceRequest(vol.array, _grid(vol.geometry), "ct-lung-nodules", device="cpu"))
    dets = res.detections

    def matches(d, n):  # a detection matches when its centre lies within the nodule's radius
        return np.linalg.norm(np.subtract(d.center_lps, n["center_lps_mm"])) <= n["diameter_mm"] / 2.0

    for n in nodules:
        if n["diameter_mm"] >= 6.0:
            hit = [d for d in dets if matches(d, n)]
            assert hit, f"missed the {n['diameter_mm']} mm {n['type']} nodule at {n['center_lps_mm']}"
            d = hit[0]
            assert abs(d.diameter_mm - n["diameter_mm"]) <= max(2.5, 0.25 * n["diameter_mm"])
            assert d.kind == ("solid" if n["type"] == "solid" else "subsolid")
            assert d.location == n["label"]
    false_pos = [d for d in dets if not any(matches(d, n) for n in nodules)]
    assert len(false_pos) <= 2, f"{len(false_pos)} false positives: {false_pos}"
    for d in dets:
        assert 0.0 <= d.score <= 1.0 and d.volume_ml > 0
    # the label map holds the nodules, on the request grid
    assert res.labels.shape == vol.array.shape
    assert _dice(res.labels == 8, truth.array == 8) > 0.6


def test_ct_lungs_when_the_field_of_view_cuts_the_body_at_the_sides(engine, demo):
    """Crop 45 mm off each side: the body now touches the image's left and right edges."""
    vol, truth, _ = demo
    g = vol.geometry
    cut = int(round(45.0 / g.spacing_zyx[2]))
    arr = np.ascontiguousarray(vol.array[:, :, cut:-cut])
    t = truth.array[:, :, cut:-cut]
    origin = np.asarray(g.origin_lps) + cut * g.direction_matrix[:, 0] * g.spacing_zyx[2]
    grid = Geometry(arr.shape, g.spacing_zyx, tuple(origin), g.direction)
    body_cols = (t > 0).any(axis=(0, 1))
    assert body_cols[0] and body_cols[-1], "the crop must cut the body at both sides"
    res = engine.run(InferenceRequest(arr, grid, "ct-lungs", device="cpu"))
    for label in (2, 3):
        assert _dice(res.labels == label, t == label) >= 0.97


def test_ct_lungs_in_another_orientation(engine, demo, demo_lungs):
    """The same CT stored flipped left-right and head-first: the models follow the geometry, not the array order."""
    vol, _, _ = demo
    g = vol.geometry
    arr = np.ascontiguousarray(vol.array[::-1, :, ::-1])
    d = g.direction_matrix.copy()
    d[:, 0] *= -1
    d[:, 2] *= -1
    nz, _, nx = arr.shape
    origin = g.index_to_world([nz - 1, 0, nx - 1])
    res = engine.run(InferenceRequest(arr, Geometry(arr.shape, g.spacing_zyx, tuple(origin), d), "ct-lungs",
                                      device="cpu"))
    back = res.labels[::-1, :, ::-1]
    for label in (2, 3):
        assert _dice(back == label, demo_lungs.labels == label) >= 0.995


# ------------------------------------------------------------ real abdominal CT
@pytest.fixture(scope="module")
def pancreas(engine):
    from viewer.io.series_loader import load_path

    vol = load_path(str(data_path("ct-pancreas-tcia")))
    grid = _grid(vol.geometry)
    out = {m: engine.run(InferenceRequest(vol.array, grid, m, device="cpu")).labels
           for m in ("ct-body", "ct-lungs", "ct-bone")}
    return vol, out


def _z_of_slices(geometry) -> np.ndarray:
    return np.array([geometry.index_to_world([k, 0, 0])[2] for k in range(geometry.shape_zyx[0])])


def test_pancreas_lungs_inside_the_body_and_on_their_sides(pancreas):
    vol, out = pancreas
    body, lungs = out["ct-body"] == 1, out["ct-lungs"]
    lung = np.isin(lungs, (2, 3))
    assert lung.sum() * np.prod(vol.geometry.spacing_zyx) / 1000 > 500, "the lung bases must be found"
    assert (lung & ~body).sum() == 0, "lung outside the body"
    xs = np.arange(vol.array.shape[2])
    x_lps = np.array([vol.geometry.index_to_world([0, 0, i])[0] for i in xs])
    body_x = x_lps[np.nonzero(body.any(axis=(0, 1)))[0]]
    mid = 0.5 * (body_x.min() + body_x.max())
    for label, sign in ((2, +1), (3, -1)):  # LPS: +x is the patient's left
        cols = np.nonzero(lungs == label)[2]
        on_side = np.mean(sign * (x_lps[cols] - mid) > 0)
        assert on_side > 0.99, f"label {label}: only {on_side:.1%} on its side"


def test_pancreas_lungs_end_above_the_liver_dome(pancreas):
    vol, out = pancreas
    lungs = out["ct-lungs"]
    z = _z_of_slices(vol.geometry)
    # read off the images: the posterior costophrenic recesses end near z = 332-340 mm; below
    # z = 326 mm there is only abdomen
    assert not np.isin(lungs[z < 326.0], (2, 3)).any()
    # along a vertical line through the right hemidiaphragm (x = -60, y = 30 mm), the liver lies below
    # the lung: find the dome from the raw HU and check the labels on either side of it
    k_idx = np.arange(len(z))
    j, i = np.round(vol.geometry.world_to_index([-60.0, 30.0, z[0]])[1:]).astype(int)
    column = vol.array[:, j, i].astype(float)
    below_air = [k for k in k_idx[1:] if column[k] < -500 and k >= 6 and np.all(column[k - 6:k - 2] > 0)]
    assert below_air, "no liver/lung interface found on the test line"
    k_dome = below_air[0]
    assert np.all(lungs[:k_dome - 2, j, i] != 3), "right lung labelled below the liver dome"
    assert np.mean(lungs[k_dome + 2:, j, i][column[k_dome + 2:] < -500] == 3) > 0.9


def test_pancreas_bowel_gas_is_never_lung(pancreas):
    vol, out = pancreas
    lungs, body = out["ct-lungs"], out["ct-body"] == 1
    z = _z_of_slices(vol.geometry)
    gas = (vol.array < -500) & body
    gas[z >= 326.0] = False
    ml = gas.sum() * np.prod(vol.geometry.spacing_zyx) / 1000
    assert ml > 20, f"expected bowel gas below the lungs, found {ml:.1f} mL"
    assert not np.isin(lungs[gas], (2, 3)).any()
    # gas pockets next to the lung bases, picked on the images (splenic flexure, stomach): HU like air, not lung
    for lps in ((128.4, 40.9, 353.4), (61.1, 14.8, 324.6)):
        k, j, i = np.round(vol.geometry.world_to_index(lps)).astype(int)
        assert vol.array[k, j, i] < -800, f"landmark {lps} is not gas"
        assert lungs[k, j, i] == 0, f"bowel gas at {lps} labelled lung"


def test_pancreas_bone_has_the_vertebral_bodies_and_stays_in_the_body(pancreas):
    vol, out = pancreas
    bone, body = out["ct-bone"] == 7, out["ct-body"] == 1
    assert (bone & ~body).sum() <= 0.001 * bone.sum()
    # vertebral body centres read off axial images at four levels (LPS mm; the spine runs a little left of x = 0)
    for lps in ((6.0, 119.0, 266.0), (12.0, 122.0, 296.0), (6.0, 127.0, 356.0), (10.0, 137.0, 416.0)):
        k, j, i = np.round(vol.geometry.world_to_index(lps)).astype(int)
        patch = bone[k, j - 3:j + 4, i - 3:i + 4]
        assert patch.mean() > 0.9, f"vertebral body at {lps} not bone ({patch.mean():.0%})"
