"""Variable slice spacing is resampled, never refused (issue 15, part 4).

A GE head CT at 4 mm, then 7 mm, was refused ("slice spacing is too irregular to resample"). Such a series now
opens on a regular grid at the smallest native spacing, with a warning. Checked from first principles (as in
test_odd_series.py): each original pixel is looked up at the physical position its own ImagePositionPatient,
ImageOrientationPatient and PixelSpacing give. A slice that lies on a grid plane is that plane, unchanged; every
other plane is the linear interpolation of the two nearest original slices, weighted by their true distances.

The series are written with pydicom from real pixels of ct-pancreas-tcia.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from reference import data_path

from viewer.io.dicom_index import scan
from viewer.io.series_loader import load_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _write_series(folder, steps_mm: list[float], top_z: float = 120.0) -> None:
    """One slice per position: ``top_z``, then down by each step (a head CT from the vertex, GE-like)."""
    sources = sorted(data_path("ct-pancreas-tcia").glob("*.dcm"))
    folder.mkdir()
    series, z = generate_uid(), top_z
    for k in range(len(steps_mm) + 1):
        ds = pydicom.dcmread(sources[(7 * k) % len(sources)])  # real pixels, a different slice each time
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-275.0, -178.1, round(z, 3)]
        ds.SliceThickness = steps_mm[min(k, len(steps_mm) - 1)]
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.save_as(folder / f"IM{k:04d}.dcm")
        if k < len(steps_mm):
            z -= steps_mm[k]


def _originals(folder):
    """(modality values, IPP, IOP, PixelSpacing) of every file, straight from pydicom."""
    out = []
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        out.append((arr, np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float),
                    np.array(ds.PixelSpacing, float)))
    return out


def _check_first_principles(vol, originals, rng) -> int:
    """Every original pixel at its own position; every plane the interpolation of its two nearest originals.
    Returns how many originals lie on a grid plane."""
    g = vol.geometry
    n = g.direction_matrix[:, 2]
    iop = originals[0][2]
    assert np.allclose(n, np.cross(iop[:3], iop[3:]), atol=1e-9)
    on_grid = 0
    for arr, ipp, iop, spacing in originals:
        rows, cols = rng.integers(0, arr.shape[0], 500), rng.integers(0, arr.shape[1], 500)
        world = ipp + np.outer(cols * spacing[1], iop[:3]) + np.outer(rows * spacing[0], iop[3:])
        k = g.world_to_index(world)
        if abs(k[0, 0] - round(k[0, 0])) < 1e-3 and 0 <= round(k[0, 0]) < g.shape_zyx[0]:
            on_grid += 1
            idx = np.rint(k).astype(int)
            assert np.allclose(k, idx, atol=1e-3)
            np.testing.assert_array_equal(vol.array[tuple(idx.T)], arr[rows, cols])
    t = np.array([ipp @ n for _, ipp, _, _ in originals])
    order = np.argsort(t)
    t = t[order]
    for z in range(g.shape_zyx[0]):
        idx = np.c_[np.full(300, z), rng.integers(0, vol.array.shape[1], 300), rng.integers(0, vol.array.shape[2], 300)]
        world = g.index_to_world(idx)
        tz = float(world[0] @ n)
        assert t[0] - 1e-6 <= tz <= t[-1] + 1e-6, "the grid never extrapolates beyond the original slices"
        j = int(np.clip(np.searchsorted(t, tz, side="right") - 1, 0, len(t) - 2))
        values = []
        for m in (j, j + 1):
            arr, ipp, iop, spacing = originals[order[m]]
            rel = world - ipp
            col = np.rint(rel @ iop[:3] / spacing[1]).astype(int)
            row = np.rint(rel @ iop[3:] / spacing[0]).astype(int)
            values.append(arr[row, col])
        w = (tz - t[j]) / (t[j + 1] - t[j])
        expected = values[0] * (1 - w) + values[1] * w
        ours = vol.array[tuple(idx.T)].astype(float)
        assert np.max(np.abs(ours - expected)) <= 0.5 + 1e-6, f"plane {z}"  # integer output rounds
    return on_grid


def test_ge_head_ct_4mm_then_7mm_opens_resampled_at_4mm(tmp_path):
    folder = tmp_path / "head"
    _write_series(folder, [4.0] * 11 + [7.0] * 12)
    (entry,) = scan(str(folder)).series
    assert entry.loadable, entry.refusal
    (warning,) = [w for w in entry.warnings if "slice spacing" in w]
    assert "variable slice spacing (4.00 to 7.00 mm): resampled onto a regular 4.00 mm grid" in warning
    vol = load_series(entry)
    assert vol.array.dtype == np.int16 and warning in vol.warnings
    assert np.isclose(vol.spacing_zyx[0], 4.0) and vol.spacing_zyx[1:] == (1.07421875, 1.07421875)
    originals = _originals(folder)
    span = 4.0 * 11 + 7.0 * 12
    assert vol.array.shape[0] == int(span // 4) + 1
    on_grid = _check_first_principles(vol, originals, np.random.default_rng(4))
    # every 4 mm slice, and the 7 mm slices 28 mm apart, lie on the grid: kept exactly, not interpolated
    assert on_grid >= 12 + 3 and f"{on_grid} of 24 slices lie on it unchanged" in warning


def test_4mm_then_8mm_is_resampled_not_shown_with_empty_slices(tmp_path):
    """Steps of twice the spacing, in a run, are a section at 8 mm — not a slice missing every other position."""
    folder = tmp_path / "four-eight"
    _write_series(folder, [4.0] * 10 + [8.0] * 6)
    (entry,) = scan(str(folder)).series
    assert not any("missing" in w for w in entry.warnings)
    vol = load_series(entry)
    assert np.isclose(vol.spacing_zyx[0], 4.0) and not entry.plan.missing
    assert _check_first_principles(vol, _originals(folder), np.random.default_rng(8)) == 17
    assert all(vol.array[z].std() > 0 for z in range(vol.array.shape[0]))  # no empty plane


def test_one_odd_step_where_the_sections_meet_does_not_set_the_grid(tmp_path):
    """4 mm, then 7 mm, the second section starting 0.5 mm after the first ends: this was refused ("slice spacing
    is too irregular to resample": a 0.5 mm grid would have needed 258 slices for 25 images). A one-off step is
    not a native spacing: the grid is 4 mm."""
    folder = tmp_path / "overlap"
    _write_series(folder, [4.0] * 11 + [0.5] + [7.0] * 12)
    (entry,) = scan(str(folder)).series
    assert entry.loadable, entry.refusal
    assert any("variable slice spacing (0.50 to 7.00 mm): resampled onto a regular 4.00 mm grid" in w
               for w in entry.warnings)
    vol = load_series(entry)
    assert np.isclose(vol.spacing_zyx[0], 4.0)
    assert _check_first_principles(vol, _originals(folder), np.random.default_rng(5)) >= 12


def test_a_stray_slice_far_away_is_dropped_not_a_refusal(tmp_path):
    """One slice 900 mm from the rest (a position typed wrong) used to make the plan refuse or span thousands of
    empty slices; it is dropped with its reason, and the rest opens as the regular stack it is."""
    folder = tmp_path / "stray"
    _write_series(folder, [3.0] * 9 + [900.0])
    (entry,) = scan(str(folder)).series
    assert entry.loadable and entry.n_images == 10
    (warning,) = entry.warnings
    assert warning.startswith("1 slice of 11 dropped (IM0010.dcm: lies 900 mm away from the rest of the stack")
    vol = load_series(entry)
    assert vol.array.shape[0] == 10 and np.isclose(vol.spacing_zyx[0], 3.0)
