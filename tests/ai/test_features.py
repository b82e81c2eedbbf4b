"""ai.features: volumes, centroids, diameters, sphericity and HU statistics of labelled structures."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import SimpleITK as sitk

from ai.features import detection_features, diameters_mm, label_features, sitk_image, slice_axis, surface_area_mm2
from radview_base.geometry import Geometry


def _grid(shape, spacing, origin=(0.0, 0.0, 0.0), x=(1, 0, 0), y=(0, 1, 0), z=(0, 0, 1)) -> Geometry:
    """A grid whose array x, y, z axes point along the LPS unit vectors ``x``, ``y``, ``z``."""
    return Geometry(shape, spacing, origin, tuple(map(tuple, np.column_stack([x, y, z]))))


def _world(grid: Geometry) -> np.ndarray:
    """LPS position of every voxel centre, (z, y, x, 3)."""
    return grid.index_to_world(np.stack(np.indices(grid.shape_zyx), axis=-1))


def _itk_feret(mask: np.ndarray, grid: Geometry) -> float:
    f = sitk.LabelShapeStatisticsImageFilter()
    f.SetComputeFeretDiameter(True)
    f.Execute(sitk_image(mask.astype(np.uint8), grid))
    return f.GetFeretDiameter(1)


# A sagittal acquisition with flipped axes: columns run anterior (-P), rows inferior (-S), slices to the left (+L).
SAGITTAL = dict(x=(0, -1, 0), y=(0, 0, -1), z=(1, 0, 0))


def test_a_ball_on_an_anisotropic_sagittal_grid():
    grid = _grid((20, 32, 44), (1.5, 0.8, 0.6), (-30.0, 40.0, 100.0), **SAGITTAL)
    assert slice_axis(grid) == 1  # the rows run along S: transverse planes are the y = const planes
    centre_index = np.array([9.4, 15.3, 21.7])
    centre = grid.index_to_world(centre_index)
    r = 10.0
    ball = np.linalg.norm(_world(grid) - centre, axis=-1) <= r
    labels = ball.astype(np.uint8) * 5
    (f,) = label_features(labels, None, grid, {5: "nodule"})
    assert (f.label, f.name, f.component, f.voxels) == (5, "nodule", 0, int(ball.sum()))
    assert f.volume_ml == pytest.approx(ball.sum() * 1.5 * 0.8 * 0.6 / 1000)
    assert f.volume_ml * 1000 == pytest.approx(4 / 3 * math.pi * r ** 3, rel=0.03)
    # the centroid: the mean LPS position of the voxel centres, and within half a voxel of the ball's centre
    assert np.allclose(f.centroid_lps, _world(grid)[ball].mean(axis=0), atol=1e-6)
    assert np.linalg.norm(grid.world_to_index(f.centroid_lps) - centre_index) < 0.5
    # diameters between voxel centres: at most 2r, within one (largest) voxel of it
    assert 2 * r - 1.5 <= f.diameter_3d_mm <= 2 * r + 1e-9
    assert f.diameter_3d_mm == pytest.approx(_itk_feret(ball, grid), abs=1e-9)  # ITK's definition, exactly
    assert 2 * r - 1.5 <= f.axial_diameter_mm <= 2 * r + 1e-9
    assert 0.85 < f.sphericity <= 1.0
    assert math.isnan(f.mean_hu) and math.isnan(f.sd_hu)  # no image: no intensities


def test_a_box_has_exact_volume_centroid_and_diameters():
    grid = _grid((12, 16, 20), (2.0, 0.75, 0.5), (10.0, -20.0, -50.0))
    labels = np.zeros(grid.shape_zyx, np.int16)
    labels[3:8, 4:12, 5:17] = 2  # 5 × 8 × 12 voxels
    (f,) = label_features(labels, None, grid, {2: "box"})
    assert f.voxels == 480
    assert f.volume_ml == pytest.approx(480 * 2.0 * 0.75 * 0.5 / 1000)  # 0.36 mL
    # centre voxel index (z, y, x) = (5, 7.5, 10.5) → LPS (10 + 10.5·0.5, -20 + 7.5·0.75, -50 + 5·2)
    assert f.centroid_lps == pytest.approx((15.25, -14.375, -40.0))
    # between the outermost voxel centres: 4·2 = 8 mm (z), 7·0.75 = 5.25 mm (y), 11·0.5 = 5.5 mm (x)
    assert f.diameter_3d_mm == pytest.approx(math.sqrt(8 ** 2 + 5.25 ** 2 + 5.5 ** 2))  # 11.037
    assert f.axial_diameter_mm == pytest.approx(math.sqrt(5.25 ** 2 + 5.5 ** 2))  # 7.604, the z = const planes


def test_the_axial_diameter_is_measured_in_the_true_transverse_plane_of_a_sagittal_grid():
    # slices (z) to the left 1 mm apart, rows (y) inferior every 2 mm, columns (x) anterior every 0.5 mm
    grid = _grid((40, 10, 50), (1.0, 2.0, 0.5), (0.0, 0.0, 0.0), **SAGITTAL)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    labels[5:36, 4:7, 5:46] = 1  # 30 mm left-right, 4 mm head-foot, 20 mm front-back between voxel centres
    (f,) = label_features(labels, None, grid, {})
    assert f.name == "label 1"
    assert f.axial_diameter_mm == pytest.approx(math.sqrt(30 ** 2 + 20 ** 2))  # 36.06 in the L-P plane
    assert f.diameter_3d_mm == pytest.approx(math.sqrt(30 ** 2 + 20 ** 2 + 4 ** 2))
    # not the array's own slices: the sagittal (P-S) planes would give √(20² + 4²) = 20.4 mm
    assert diameters_mm(labels == 1, grid.spacing_zyx, s_axis=0)[0] == pytest.approx(math.sqrt(20 ** 2 + 4 ** 2))


def test_intensity_statistics_match_numpy_on_the_same_mask():
    grid = _grid((10, 12, 14), (2.5, 0.7, 0.7), x=(-1, 0, 0), y=(0, -1, 0))
    rng = np.random.default_rng(7)
    image = rng.normal(40.0, 25.0, grid.shape_zyx).astype(np.float32)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    labels[2:7, 3:9, 4:12] = 1
    labels[8, 1:3, 1:3] = 3
    feats = label_features(labels, image, grid, {1: "liver", 3: "spleen"})
    assert [(f.label, f.name) for f in feats] == [(1, "liver"), (3, "spleen")]
    for f in feats:
        values = image[labels == f.label].astype(np.float64)
        assert f.mean_hu == pytest.approx(values.mean(), rel=1e-9)
        assert f.sd_hu == pytest.approx(values.std(ddof=1), rel=1e-6)  # the sample standard deviation
        assert (f.min_hu, f.max_hu) == (pytest.approx(values.min()), pytest.approx(values.max()))


def test_components_largest_first_and_capped():
    grid = _grid((30, 30, 40), (1.0, 1.0, 1.0))
    zz, yy, xx = np.indices(grid.shape_zyx)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    balls = [((15, 15, 8), 3), ((15, 15, 20), 6), ((15, 15, 33), 4)]  # sizes: small, large, middle
    counts = []
    for (cz, cy, cx), r in balls:
        ball = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[ball] = 8
        counts.append(int(ball.sum()))
    labels[2:4, 2:4, 2:4] = 2
    labels[4:6, 4:6, 4:6] = 2  # touches the cube above at one corner only: two face-connected components
    feats = label_features(labels, None, grid, {2: "cubes", 8: "nodule"}, components=True)
    assert [(f.label, f.component) for f in feats] == [(2, 0), (2, 1), (2, 2), (8, 0), (8, 1), (8, 2), (8, 3)]
    assert [f.voxels for f in feats[4:]] == sorted(counts, reverse=True)
    assert feats[3].voxels == sum(counts) and all(f.name == "nodule" for f in feats[3:])
    assert [f.diameter_3d_mm for f in feats[4:]] == pytest.approx([12.0, 8.0, 6.0])  # 2r between voxel centres
    assert feats[4].centroid_lps == pytest.approx((20.0, 15.0, 15.0))  # LPS (x, y, z) of index (15, 15, 20)
    capped = label_features(labels, None, grid, {}, components=True, max_components=2)
    assert [(f.label, f.component) for f in capped] == [(2, 0), (2, 1), (2, 2), (8, 0), (8, 1), (8, 2)]


def test_detection_features_measure_the_component_under_the_centre():
    grid = _grid((20, 20, 30), (2.0, 0.8, 0.8), (5.0, 6.0, 7.0))
    labels = np.zeros(grid.shape_zyx, np.uint8)
    labels[8:12, 5:15, 3:13] = 8  # the larger component (400 voxels)
    labels[8:11, 5:10, 20:25] = 8  # the smaller (75 voxels)
    labels[2:4, 2:4, 2:4] = 1
    image = np.full(grid.shape_zyx, -800.0)
    image[8:11, 5:10, 20:25] = 30.0
    f = detection_features(labels, image, grid, grid.index_to_world([9.0, 7.0, 22.0]), names={8: "nodule"})
    assert (f.label, f.name, f.component, f.voxels) == (8, "nodule", 2, 75)
    assert f.mean_hu == 30.0 and f.sd_hu == 0.0
    assert f.centroid_lps == pytest.approx(tuple(grid.index_to_world([9.0, 7.0, 22.0])))
    assert f.diameter_3d_mm == pytest.approx(math.sqrt(4.0 ** 2 + 3.2 ** 2 + 3.2 ** 2))
    assert detection_features(labels, image, grid, grid.index_to_world([10, 10, 8]), label_id=8).component == 1
    assert detection_features(labels, image, grid, grid.index_to_world([10, 10, 8]), label_id=1) is None
    assert detection_features(labels, image, grid, grid.index_to_world([0, 0, 0])) is None  # background
    assert detection_features(labels, image, grid, grid.index_to_world([50, 0, 0])) is None  # off the grid


def test_sphericity_tells_a_ball_from_a_rod_and_a_flat_disc():
    grid = _grid((40, 40, 40), (1.0, 1.0, 1.0))
    zz, yy, xx = np.indices(grid.shape_zyx)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    labels[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 12) ** 2 <= 100] = 1  # ball, r = 10 voxels
    labels[10:30, 20, 35] = 2  # rod 1 × 1 × 20 voxels
    labels[38, 2:40, 2:40][(yy[0, 2:40, 2:40] - 20) ** 2 + (xx[0, 2:40, 2:40] - 20) ** 2 <= 225] = 3  # one slice
    ball, rod, disc = label_features(labels, None, grid, {})
    assert ball.sphericity > 0.95
    assert rod.sphericity < 0.7 and rod.diameter_3d_mm == pytest.approx(19.0) and rod.axial_diameter_mm == 0.0
    assert disc.sphericity < 0.5
    assert disc.diameter_3d_mm == pytest.approx(30.0) == disc.axial_diameter_mm  # a flat set: the hull still works
    assert disc.diameter_3d_mm == pytest.approx(_itk_feret(labels == 3, grid))


def test_the_surface_estimate_is_itks_on_isotropic_grids_and_right_on_anisotropic_ones():
    iso = _grid((24, 24, 24), (1.0, 1.0, 1.0))
    zz, yy, xx = np.indices(iso.shape_zyx)
    blob = ((zz - 12) ** 2 / 64 + (yy - 11) ** 2 / 100 + (xx - 12) ** 2 / 30) <= 1
    f = sitk.LabelShapeStatisticsImageFilter()
    f.Execute(sitk_image(blob.astype(np.uint8), iso))
    assert surface_area_mm2(blob, iso.spacing_zyx) == pytest.approx(f.GetPerimeter(1), rel=1e-9)
    # a 12 mm ball on a 2 × 0.75 × 0.75 mm grid: ITK's isotropic weights would not do; ours get 4πr² within 2 %
    grid = _grid((20, 44, 44), (2.0, 0.75, 0.75))
    ball = np.linalg.norm(_world(grid) - grid.index_to_world([9.5, 21.5, 21.5]), axis=-1) <= 12.0
    assert surface_area_mm2(ball, grid.spacing_zyx) == pytest.approx(4 * math.pi * 144, rel=0.02)
    # a ball of 10 voxels on that grid is a 15 × 15 × 40 mm prolate spheroid: area 2πa²(1 + c·asin(e)/(a·e))
    grid = _grid((24, 24, 24), (2.0, 0.75, 0.75))
    spheroid = ((zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2) <= 100
    a, c = 7.5, 20.0
    e = math.sqrt(1 - a * a / (c * c))
    area = 2 * math.pi * a * a * (1 + c * math.asin(e) / (a * e))  # 1559 mm²
    assert surface_area_mm2(spheroid, grid.spacing_zyx) == pytest.approx(area, rel=0.06)
    (f,) = label_features(spheroid.astype(np.uint8), None, grid, {})
    volume = 4 / 3 * math.pi * a * a * c
    assert f.sphericity == pytest.approx(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area, rel=0.06)  # 0.87


def test_a_lung_sized_structure_takes_a_fraction_of_a_second():
    """ITK's Feret diameter needs ~20 s for one lung of the demo (~130 000 boundary voxels); the hull does not."""
    grid = _grid((120, 320, 320), (2.0, 0.75, 0.75))
    zz, yy, xx = np.ogrid[:120, :320, :320]
    lung = ((zz - 60) / 55.0) ** 2 + ((yy - 160) / 150.0) ** 2 + ((xx - 160) / 100.0) ** 2 <= 1
    labels = lung.astype(np.uint8) * 2
    t0 = time.perf_counter()
    (f,) = label_features(labels, None, grid, {2: "lung"})
    elapsed = time.perf_counter() - t0
    assert f.diameter_3d_mm == pytest.approx(2 * 150 * 0.75, abs=0.5)  # the long (y) axis: 225 mm > 2 · 55 · 2 mm
    assert f.axial_diameter_mm == pytest.approx(2 * 150 * 0.75, abs=0.5)
    assert elapsed < 5.0, f"{elapsed:.2f} s"


def test_empty_and_bad_inputs():
    grid = _grid((4, 5, 6), (1.0, 1.0, 1.0))
    assert label_features(np.zeros(grid.shape_zyx, np.uint8), None, grid, {}) == []
    with pytest.raises(ValueError, match="grid"):
        label_features(np.zeros((4, 5, 7), np.uint8), None, grid, {})
    with pytest.raises(ValueError, match="integers"):
        label_features(np.zeros(grid.shape_zyx, np.float32), None, grid, {})
    with pytest.raises(ValueError, match="negative"):
        label_features(np.full(grid.shape_zyx, -1, np.int32), None, grid, {})
