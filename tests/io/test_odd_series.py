"""Series that break naive loaders: loaded with their true geometry and a warning, split, or refused with a reason."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from reference import data_path
from scipy.ndimage import map_coordinates

from viewer.io.dicom_index import scan
from viewer.io.series_loader import LoadError, load_series


def _originals(folder):
    """(pixel value array after rescale, IPP, IOP, PixelSpacing) of every file in the folder."""
    out = []
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        out.append((arr, np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float),
                    np.array(ds.PixelSpacing, float)))
    return out


def _world_of_pixels(ipp, iop, spacing, rows, cols):
    """Position = IPP + column × column-spacing × row-direction + row × row-spacing × column-direction."""
    return ipp + np.outer(cols * spacing[1], iop[:3]) + np.outer(rows * spacing[0], iop[3:])


def test_failing_folder_other_series_still_load():
    index = scan(str(data_path("odd-dicom", "failing")))
    refused = [s for s in index.series if not s.loadable]
    loaded = [load_series(s) for s in index.series if s.loadable]
    assert [s.refusal for s in refused] and all(s.refusal for s in refused)
    assert any("same position" in s.refusal for s in refused)  # notavolume
    assert len(loaded) >= 5  # gantry tilt, 2× slice increment, slice count, 2 orientations
    for vol in loaded:
        assert vol.array.shape == vol.geometry.shape_zyx


def test_not_a_volume_is_refused_with_reason():
    index = scan(str(data_path("odd-dicom", "failing", "notavolume", "001")))
    (entry,) = index.series
    assert not entry.loadable
    assert "same position" in entry.refusal and "not a volume" in entry.refusal
    with pytest.raises(LoadError, match="same position"):
        load_series(entry)


def test_mixed_orientation_is_split_and_each_part_has_its_own_geometry():
    folder = data_path("odd-dicom", "failing", "sliceorientation", "001")
    index = scan(str(folder))
    assert len(index.series) == 2
    assert len({s.series_uid for s in index.series}) == 1 and len({s.key for s in index.series}) == 2
    originals = _originals(folder)
    for entry in index.series:
        assert entry.loadable and "orientation" in entry.warnings[0]
        vol = load_series(entry)
        for arr, ipp, iop, _spacing in originals:
            normal = np.cross(iop[:3], iop[3:])
            if abs(normal @ vol.geometry.slice_normal) < 0.999:
                continue
            k = vol.geometry.world_to_index(ipp)
            assert np.allclose(k, np.rint(k), atol=1e-3)
            assert np.array_equal(vol.array[int(round(k[0]))], arr)


def test_missing_slice_is_reported_and_every_real_slice_is_in_place():
    folder = data_path("odd-dicom", "failing", "sliceincrement", "001")
    (entry,) = scan(str(folder)).series
    assert any("missing slice" in w for w in entry.warnings)
    vol = load_series(entry)
    assert vol.array.shape[0] == 5 and np.isclose(vol.spacing_zyx[0], 5.0)
    rng = np.random.default_rng(0)
    filled = set(range(5))
    for arr, ipp, iop, spacing in _originals(folder):
        rows, cols = rng.integers(0, arr.shape[0], 200), rng.integers(0, arr.shape[1], 200)
        idx = np.rint(vol.geometry.world_to_index(_world_of_pixels(ipp, iop, spacing, rows, cols))).astype(int)
        assert np.array_equal(vol.array[tuple(idx.T)], arr[rows, cols])
        filled.discard(int(idx[0, 0]))
    (missing,) = filled
    assert np.all(vol.array[missing] == vol.array.min())  # shown empty, not invented


@pytest.mark.parametrize("case", ["gantrytilting/001", "sliceincrement/002"])
def test_gantry_tilt_is_resampled_not_sheared(case):
    """First principles: a voxel of ours holds the original image's value at that voxel's physical position.

    The physical position comes from our geometry; where it lies in the original slice comes from that
    file's own ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
    """
    folder = data_path("odd-dicom", "failing", *case.split("/"))
    (entry,) = scan(str(folder)).series
    assert any("gantry tilt" in w for w in entry.warnings)
    vol = load_series(entry)
    g = vol.geometry
    d = g.direction_matrix
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-6), "output grid must be orthogonal"
    rng = np.random.default_rng(1)
    checked = 0
    for arr, ipp, iop, spacing in _originals(folder):
        normal = np.cross(iop[:3], iop[3:])
        k = int(round(g.world_to_index(ipp)[0]))
        idx = np.c_[np.full(3000, k), rng.integers(0, arr.shape[0], 3000), rng.integers(0, arr.shape[1], 3000)]
        world = g.index_to_world(idx)
        rel = world - ipp
        assert np.max(np.abs(rel @ normal)) < 0.01, "our slice must lie in the original slice's plane"
        col = rel @ iop[:3] / spacing[1]
        row = rel @ iop[3:] / spacing[0]
        inside = (row >= 0) & (row <= arr.shape[0] - 1) & (col >= 0) & (col <= arr.shape[1] - 1)
        expected = map_coordinates(arr.astype(float), np.vstack([row[inside], col[inside]]), order=1)
        ours = vol.array[tuple(idx[inside].T)].astype(float)
        assert np.max(np.abs(ours - expected)) <= 0.5 + 1e-6  # integer output rounds
        # a loader that ignored the tilt would put the original pixel (row, col) at our (row, col)
        if np.max(np.abs(row - idx[:, 1])) > 1:
            sheared = arr[idx[inside, 1], idx[inside, 2]].astype(float)
            assert np.mean(np.abs(sheared - expected)) > 5 * np.mean(np.abs(ours - expected)) + 1
        checked += int(inside.sum())
    assert checked > 5000


def test_dicom_objects_each_loads_or_gives_a_reason():
    folder = data_path("dicom-objects")
    outcomes = {}
    for path in sorted(folder.glob("*.dcm")):
        index = scan(str(path))
        if index.skipped:
            assert all(k.reason for k in index.skipped)
            outcomes[path.name] = "skipped: " + index.skipped[0].reason
            continue
        for entry in index.series:
            if not entry.loadable:
                assert entry.refusal
                outcomes[path.name] = "refused: " + entry.refusal
                continue
            try:
                vol = load_series(entry)
            except LoadError as exc:
                assert str(exc)
                outcomes[path.name] = "load error: " + str(exc)
                continue
            assert vol.array.shape[:3] == entry.shape_zyx
            outcomes[path.name] = "loaded"
    # every transfer syntax with a PyPI decoder loads: RLE, JPEG baseline/lossless, JPEG-LS, JPEG 2000, HTJ2K,
    # deflate, big endian
    for name in ("emri_small_RLE.dcm", "JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "JLSL_16_15_1_1F.dcm",
                 "emri_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_2k_lossless.dcm", "US1_J2KR.dcm",
                 "HTJ2KLossless_08_RGB.dcm", "HTJ2K_08_RGB.dcm", "emri_small_big_endian.dcm", "OBXXXX1A_rle.dcm",
                 "SC_rgb_dcmtk_ebcys2_dcmd.dcm", "eCT_Supplemental.dcm"):
        assert outcomes[name] == "loaded", (name, outcomes[name])
    assert outcomes["liver.dcm"].startswith("skipped: DICOM SEG")


def test_compressed_pixels_equal_uncompressed():
    folder = data_path("dicom-objects")
    base = load_series(scan(str(folder / "emri_small.dcm")).series[0]).array
    for name in ("emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_2k_lossless.dcm",
                 "emri_small_big_endian.dcm"):
        assert np.array_equal(load_series(scan(str(folder / name)).series[0]).array, base), name
    rgb = load_series(scan(str(folder / "SC_rgb.dcm")).series[0]).array
    assert np.array_equal(load_series(scan(str(folder / "SC_rgb_expb.dcm")).series[0]).array, rgb)


def test_deflated_and_float_objects():
    folder = data_path("dicom-objects")
    (entry,) = scan(str(folder / "parametric_map_double_float.dcm")).series
    assert load_series(entry).array.dtype == np.float64
